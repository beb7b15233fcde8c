package volume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nubis/nubis/internal/errdefs"
	"github.com/nubis/nubis/internal/mountinfo"
	"golang.org/x/sys/unix"
)

// volState is how a volume file is attached now.
type volState struct {
	loops  []loopDev         // loop devices bound to the file
	mounts []mountinfo.Mount // mounts, in this mount namespace, of those devices
	idle   []loopDev         // bound devices nothing uses (leaked): safe to detach
	busy   bool              // a device is in use without a mount here (lazily unmounted, or another namespace's)
}

// mountedLoop returns the loop device of the first mount.
func (st volState) mountedLoop() loopDev {
	for _, l := range st.loops {
		if l.dev == st.mounts[0].Dev {
			return l
		}
	}
	return loopDev{}
}

// state finds how volume id is attached. probe tells whether to find out if the loop devices
// not mounted here are in use, by opening them exclusively for a moment; only a caller holding
// the volume's lock may, or it could make a concurrent Mount's mount(2) fail with EBUSY.
func (s *Store) state(id string, probe bool) (volState, error) {
	loops, err := findLoops(s.volPath(id))
	if err != nil {
		return volState{}, fmt.Errorf("volume %s: %w", id, err)
	}
	st := volState{loops: loops}
	if len(loops) == 0 {
		return st, nil
	}
	mounts, err := mountinfo.Read()
	if err != nil {
		return volState{}, err
	}
	for _, l := range loops {
		n := len(st.mounts)
		for _, m := range mounts {
			if m.Dev == l.dev {
				st.mounts = append(st.mounts, m)
			}
		}
		switch {
		case len(st.mounts) > n, !probe:
		case inUse(l):
			st.busy = true
		default:
			st.idle = append(st.idle, l)
		}
	}
	// Mounts of the whole file system first, a bind mount of a directory of it after.
	slices.SortStableFunc(st.mounts, func(a, b mountinfo.Mount) int {
		return boolInt(a.Root != "/") - boolInt(b.Root != "/")
	})
	return st, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// LoopDevices returns the loop devices (/dev/loopN) bound to volume id's file, as
// `losetup -j <file>` lists them.
func (s *Store) LoopDevices(id string) ([]string, error) {
	if err := checkID("volume", id); err != nil {
		return nil, err
	}
	loops, err := findLoops(s.volPath(id))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range loops {
		out = append(out, l.path)
	}
	return out, nil
}

// MountPoint returns where volume id is mounted now in this mount namespace, from
// /proc/self/mountinfo (the mount of a loop device bound to its file).
func (s *Store) MountPoint(id string) (string, bool) {
	if !ValidID(id) {
		return "", false
	}
	st, err := s.state(id, false)
	if err != nil || len(st.mounts) == 0 {
		return "", false
	}
	return st.mounts[0].Point, true
}

// releaseWait bounds how long an operation waits for the kernel to let go of a volume's file
// system that was unmounted a moment ago.
var releaseWait = 5 * time.Second

// settledState is the state of volume id once it is no longer busy, or releaseWait has passed.
func (s *Store) settledState(ctx context.Context, id string) (volState, error) {
	st, err := s.state(id, true)
	if err != nil {
		return st, err
	}
	return s.settle(ctx, id, st)
}

// settle waits, up to releaseWait, while volume id is busy: a file system unmounted a moment ago
// (an instance just stopped) may still be on its way out in the kernel, holding its loop device.
// It returns the volume's state then, busy or not.
func (s *Store) settle(ctx context.Context, id string, st volState) (volState, error) {
	for deadline := time.Now().Add(releaseWait); st.busy && time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		var err error
		if st, err = s.state(id, true); err != nil {
			return st, err
		}
	}
	return st, nil
}

// Mount loop-mounts volume id's ext4 file system at target, an existing directory, with nodev
// and nosuid. It is a plain mount(2) in the caller's (the host's) mount namespace, leaving
// propagation as target's parent mount has it: mounted inside an instance's root, it reaches the
// instance through that mount's propagation. Mounting where it is mounted already does nothing;
// a volume mounted elsewhere, or still in use through a lazy unmount, is ErrConflict (a volume
// attaches to one instance). mount(2) follows symbolic links, so target must be a path the
// guest cannot change (a directory nubis made, not one inside a running guest's root).
func (s *Store) Mount(ctx context.Context, id, target string) error {
	if err := checkID("volume", id); err != nil {
		return err
	}
	defer s.lock(volKey(id))()
	if err := ctx.Err(); err != nil {
		return err
	}
	if !s.Exists(id) {
		return fmt.Errorf("volume %s: %w", id, errdefs.ErrNotFound)
	}
	target, err := resolveTarget(target)
	if err != nil {
		return fmt.Errorf("mount volume %s: %w", id, err)
	}
	st, err := s.state(id, true)
	if err != nil {
		return err
	}
	for _, m := range st.mounts {
		if m.Point == target && m.Root == "/" {
			return nil
		}
	}
	if len(st.mounts) > 0 {
		return fmt.Errorf("mount volume %s at %s: mounted at %s: %w", id, target, st.mounts[0].Point, errdefs.ErrConflict)
	}
	if st, err = s.settle(ctx, id, st); err != nil {
		return err
	}
	if st.busy {
		return fmt.Errorf("mount volume %s at %s: still in use by a lazily unmounted file system: %w", id, target, errdefs.ErrConflict)
	}
	if err := detachAll(st.idle); err != nil {
		return err
	}
	dev, l, err := attachLoop(s.volPath(id))
	if err != nil {
		return fmt.Errorf("mount volume %s: %w", id, err)
	}
	// Closing dev unbinds the device (autoclear) unless the mount holds it by then.
	defer dev.Close()
	if err := unix.Mount(l.path, target, "ext4", mountFlags, mountData); err != nil {
		return fmt.Errorf("mount volume %s (%s) at %s: %w", id, l.path, target, err)
	}
	return nil
}

// resolveTarget makes target absolute and free of symbolic links, as the mount table will show
// it, and checks that it is a directory.
func resolveTarget(target string) (string, error) {
	abs, err := filepath.Abs(target)
	if err != nil {
		return "", fmt.Errorf("target %q: %w: %w", target, errdefs.ErrInvalidArgument, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("target %q: %w: %w", target, errdefs.ErrInvalidArgument, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("target %q: %w: %w", target, errdefs.ErrInvalidArgument, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("target %q is not a directory: %w", target, errdefs.ErrInvalidArgument)
	}
	return real, nil
}

// Unmount unmounts volume id wherever it is mounted and frees its loop devices; a volume not
// mounted (or not existing) is no error. A busy file system is ErrConflict, unless force: then it
// is detached lazily (MNT_DETACH), disappearing from every mount namespace at once while its
// open files keep working, and its loop device is freed when the last of them is closed.
func (s *Store) Unmount(ctx context.Context, id string, force bool) error {
	if err := checkID("volume", id); err != nil {
		return err
	}
	defer s.lock(volKey(id))()
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.unmount(ctx, id, force)
}

func (s *Store) unmount(ctx context.Context, id string, force bool) error {
	st, err := s.state(id, true)
	if err != nil {
		return err
	}
	// Unmounting one mount may take propagated copies with it, so read the table again after each.
	for range 64 {
		if len(st.mounts) == 0 {
			break
		}
		if err := unmountEntry(st.mounts[0], force); err != nil {
			return fmt.Errorf("unmount volume %s: %w", id, err)
		}
		if st, err = s.state(id, true); err != nil {
			return err
		}
	}
	if len(st.mounts) > 0 {
		return fmt.Errorf("unmount volume %s: still mounted at %s", id, st.mounts[0].Point)
	}
	if err := detachAll(st.loops); err != nil {
		return err
	}
	// The kernel unbinds a device on its last close; something that opened it meanwhile (udev's
	// probing) delays that a little. A device still used after a lazy unmount stays bound until
	// its last user goes, which is not ours to wait for.
	if st.busy {
		return nil
	}
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		loops, err := findLoops(s.volPath(id))
		if err != nil || len(loops) == 0 {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// unmountEntry unmounts m. A mount covered by another one at the same place cannot be named by
// its path without unmounting the one on top, which is not ours: that is ErrConflict.
func unmountEntry(m mountinfo.Mount, force bool) error {
	mounts, err := mountinfo.Read()
	if err != nil {
		return err
	}
	for _, o := range mounts {
		if o.Parent == m.ID && o.Point == m.Point {
			return fmt.Errorf("%s is covered by another mount (%s %s): %w", m.Point, o.FSType, o.Source, errdefs.ErrConflict)
		}
	}
	err = unix.Unmount(m.Point, 0)
	if errors.Is(err, unix.EBUSY) && force {
		err = unix.Unmount(m.Point, unix.MNT_DETACH)
	}
	switch {
	case err == nil, errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
		// EINVAL, ENOENT: no longer a mount point (gone with a propagated unmount).
		return nil
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("%s: %w: %w", m.Point, errdefs.ErrConflict, err)
	default:
		return fmt.Errorf("%s: %w", m.Point, err)
	}
}

// Cleanup repairs what a crash or a restart of nubis left, and is meant for start, before the
// store serves: it removes half-built files, detaches loop devices bound to the store's files
// that nothing uses (leaked), thaws mounted volumes a Snapshot interrupted mid-copy left frozen,
// and unmounts (lazily if busy) the mounted volumes for which keep(id) is false, such as those
// of instances that no longer exist. A nil keep keeps every mount. It waits for operations in
// flight and holds others off until done. The errors of the parts that failed are joined.
func (s *Store) Cleanup(ctx context.Context, keep func(id string) bool) error {
	s.gate.Lock()
	defer s.gate.Unlock()
	log := s.log()
	var errs []error
	for _, dir := range []string{s.Dir, s.snapDir()} {
		ents, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		for _, e := range ents {
			if n := e.Name(); strings.HasPrefix(n, ".") && strings.HasSuffix(n, tmpSuffix) && e.Type().IsRegular() {
				if err := os.Remove(filepath.Join(dir, n)); err != nil {
					errs = append(errs, err)
				} else {
					log.Info("removed a half-built file", "file", filepath.Join(dir, n))
				}
			}
		}
	}
	dir, err := filepath.EvalSymlinks(s.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return errors.Join(errs...)
	}
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	loops, err := listLoops(func(b string, _ bool) bool {
		d := filepath.Dir(b)
		return d == dir || d == filepath.Join(dir, "snapshots")
	})
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	mounts, err := mountinfo.Read()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, l := range loops {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		id := ""
		if filepath.Dir(l.backing) == dir && !l.deleted {
			id, _ = strings.CutSuffix(filepath.Base(l.backing), ".img")
		}
		var ms []mountinfo.Mount
		for _, m := range mounts {
			if m.Dev == l.dev {
				ms = append(ms, m)
			}
		}
		switch {
		case len(ms) == 0:
			// Not mounted here: leaked, or in use after a lazy unmount, in which case detaching
			// only marks it to be freed with its last user.
			if err := detachLoop(l); err != nil {
				errs = append(errs, err)
				continue
			}
			log.Info("detached a loop device nothing had mounted", "device", l.path, "file", l.backing)
		case keep != nil && (id == "" || !ValidID(id) || !keep(id)):
			if id != "" && ValidID(id) {
				err = s.unmount(ctx, id, true)
			} else {
				for _, m := range ms {
					errs = append(errs, unmountEntry(m, true))
				}
				err = detachLoop(l)
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			log.Info("unmounted a volume no longer kept", "volume", id, "device", l.path, "file", l.backing)
		default:
			for _, m := range ms {
				if m.Root == "/" {
					if err := thaw(m.Point, m.Dev); err != nil {
						errs = append(errs, err)
					}
				}
			}
		}
	}
	return errors.Join(errs...)
}
