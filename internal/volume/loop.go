package volume

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// loopDev is a bound loop device.
type loopDev struct {
	path    string // /dev/loopN
	dev     string // major:minor, as /proc/self/mountinfo shows it
	backing string // the backing file, as sysfs shows it
	deleted bool   // the backing file has been unlinked
	// fileDev and ino identify the backing file (LOOP_GET_STATUS64), so that a device unbound
	// and bound again to another file since it was listed is not mistaken for this one.
	fileDev, ino uint64
}

// listLoops lists the bound loop devices whose backing file match accepts, from sysfs, as
// `losetup -j` does.
func listLoops(match func(backing string, deleted bool) bool) ([]loopDev, error) {
	ents, err := os.ReadDir("/sys/block")
	if err != nil {
		return nil, fmt.Errorf("list loop devices: %w", err)
	}
	var out []loopDev
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, "loop") {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/sys/block", name, "loop", "backing_file"))
		if err != nil {
			continue // not bound
		}
		l := loopDev{path: "/dev/" + name, backing: strings.TrimSuffix(string(b), "\n")}
		l.backing, l.deleted = strings.CutSuffix(l.backing, " (deleted)")
		if !match(l.backing, l.deleted) {
			continue
		}
		d, err := os.ReadFile(filepath.Join("/sys/block", name, "dev"))
		if err != nil {
			continue
		}
		l.dev = strings.TrimSpace(string(d))
		info, err := loopStatus(l.path)
		if err != nil {
			continue // unbound meanwhile
		}
		l.fileDev, l.ino = info.Device, info.Inode
		out = append(out, l)
	}
	return out, nil
}

func loopStatus(path string) (*unix.LoopInfo64, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return unix.IoctlLoopGetStatus64(int(f.Fd()))
}

// findLoops lists the loop devices bound to file (not to an unlinked file that had its name).
func findLoops(file string) ([]loopDev, error) {
	real, err := filepath.EvalSymlinks(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Stat(real, &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", real, err)
	}
	loops, err := listLoops(func(b string, deleted bool) bool { return b == real && !deleted })
	if err != nil {
		return nil, err
	}
	out := loops[:0]
	for _, l := range loops {
		if l.fileDev == st.Dev && l.ino == st.Ino {
			out = append(out, l)
		}
	}
	return out, nil
}

// attachLoop binds a free loop device to file, with LO_FLAGS_AUTOCLEAR (the kernel unbinds it
// when its last user closes it) and direct I/O where the host file system allows it. It returns
// the device open: the caller mounts it, then closes it (or, on failure, just closes it).
func attachLoop(file string) (*os.File, loopDev, error) {
	backing, err := os.OpenFile(file, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, loopDev{}, fmt.Errorf("attach %s: %w", file, err)
	}
	defer backing.Close() // the device keeps its own reference
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, loopDev{}, fmt.Errorf("attach %s: %w", file, err)
	}
	defer ctl.Close()
	flags := uint32(unix.LO_FLAGS_AUTOCLEAR | unix.LO_FLAGS_DIRECT_IO)
	var lastErr error
	for range 64 {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, loopDev{}, fmt.Errorf("attach %s: find a free loop device: %w", file, err)
		}
		path := fmt.Sprintf("/dev/loop%d", n)
		dev, err := os.OpenFile(path, os.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, loopDev{}, fmt.Errorf("attach %s: %w", file, err)
		}
		cfg := unix.LoopConfig{Fd: uint32(backing.Fd())}
		cfg.Info.Flags = flags
		copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], file)
		err = unix.IoctlLoopConfigure(int(dev.Fd()), &cfg)
		if err == nil {
			var st unix.Stat_t
			if err := unix.Fstat(int(dev.Fd()), &st); err != nil {
				_ = unix.IoctlSetInt(int(dev.Fd()), unix.LOOP_CLR_FD, 0)
				dev.Close()
				return nil, loopDev{}, fmt.Errorf("attach %s: %w", file, err)
			}
			return dev, loopDev{
				path:    path,
				dev:     fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev)),
				backing: file,
			}, nil
		}
		dev.Close()
		lastErr = err
		switch {
		case errors.Is(err, unix.EBUSY):
			// Someone else bound it between GET_FREE and CONFIGURE: take the next.
		case errors.Is(err, unix.EINVAL) && flags&unix.LO_FLAGS_DIRECT_IO != 0:
			// The backing file system does not do direct I/O the way the loop driver needs.
			flags &^= unix.LO_FLAGS_DIRECT_IO
		default:
			return nil, loopDev{}, fmt.Errorf("attach %s to %s: %w", file, path, err)
		}
	}
	return nil, loopDev{}, fmt.Errorf("attach %s: no free loop device: %w", file, lastErr)
}

// detachLoop unbinds l, at once if nothing uses it, else (the kernel marks it autoclear) when
// its last user closes it. A device already unbound, or bound since to another file, is left.
func detachLoop(l loopDev) error {
	f, err := os.OpenFile(l.path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENXIO) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("detach %s: %w", l.path, err)
	}
	defer f.Close()
	info, err := unix.IoctlLoopGetStatus64(int(f.Fd()))
	if errors.Is(err, unix.ENXIO) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("detach %s: %w", l.path, err)
	}
	if info.Device != l.fileDev || info.Inode != l.ino {
		return nil
	}
	if err := unix.IoctlSetInt(int(f.Fd()), unix.LOOP_CLR_FD, 0); err != nil && !errors.Is(err, unix.ENXIO) {
		return fmt.Errorf("detach %s: %w", l.path, err)
	}
	return nil
}

func detachAll(loops []loopDev) error {
	var errs []error
	for _, l := range loops {
		errs = append(errs, detachLoop(l))
	}
	return errors.Join(errs...)
}

// inUse reports whether something holds l exclusively: a mounted file system, visible in our
// mount table or not (lazily unmounted, or mounted in another mount namespace only).
func inUse(l loopDev) bool {
	f, err := os.OpenFile(l.path, os.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		return errors.Is(err, unix.EBUSY)
	}
	f.Close()
	return false
}

// setCapacity makes the loop device at path take the current size of its backing file.
func setCapacity(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.IoctlSetInt(int(f.Fd()), unix.LOOP_SET_CAPACITY, 0); err != nil {
		return fmt.Errorf("resize %s: %w", path, err)
	}
	return nil
}

// resizeOnline grows the ext4 file system mounted at point (on device dev) to size bytes, as
// resize2fs does for a mounted file system. The kernel wants CAP_SYS_RESOURCE for it (EPERM).
func resizeOnline(point, dev string, size int64) error {
	f, err := openMount(point, dev)
	if err != nil {
		return err
	}
	defer f.Close()
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("resize %s: %w", point, err)
	}
	blocks := uint64(size) / uint64(st.Bsize)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), ioctlEXT4ResizeFS, uintptr(unsafe.Pointer(&blocks)))
	if errno != 0 {
		if errno == unix.EPERM {
			return fmt.Errorf("resize %s: resizing a mounted ext4 takes CAP_SYS_RESOURCE: %w", point, errno)
		}
		return fmt.Errorf("resize %s to %d blocks: %w", point, blocks, errno)
	}
	return nil
}

// ioctlEXT4ResizeFS is EXT4_IOC_RESIZE_FS, _IOW('f', 16, __u64), in the generic encoding.
const ioctlEXT4ResizeFS = 0x40086610

// FIFREEZE and FITHAW are _IOWR('X', 119, int) and _IOWR('X', 120, int) in the generic ioctl
// encoding (amd64, arm64, riscv64; not mips, powerpc or sparc).
const (
	ioctlFIFREEZE = 0xC0045877
	ioctlFITHAW   = 0xC0045878
)

// freeze freezes the file system mounted at point, which must be the one on device dev
// (major:minor), and returns the function that thaws it.
func freeze(point, dev string) (func(), error) {
	f, err := openMount(point, dev)
	if err != nil {
		return nil, err
	}
	if err := unix.IoctlSetInt(int(f.Fd()), ioctlFIFREEZE, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("freeze %s: %w", point, err)
	}
	return func() {
		_ = unix.IoctlSetInt(int(f.Fd()), ioctlFITHAW, 0)
		f.Close()
	}, nil
}

// thaw thaws the file system mounted at point (on device dev) if it is frozen.
func thaw(point, dev string) error {
	f, err := openMount(point, dev)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.IoctlSetInt(int(f.Fd()), ioctlFITHAW, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("thaw %s: %w", point, err)
	}
	return nil
}

// openMount opens the root of the mount at point, checking that it is the file system on dev
// (the path may lie inside a guest's root, where the guest can change what it leads to).
func openMount(point, dev string) (*os.File, error) {
	f, err := os.OpenFile(point, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, err
	}
	if got := fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev)); got != dev {
		f.Close()
		return nil, fmt.Errorf("%s is on device %s, not %s", point, got, dev)
	}
	return f, nil
}
