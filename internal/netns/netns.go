// Package netns creates network namespaces for sandboxes and opens sockets inside them.
//
// A namespace is kept alive by a bind mount of its nsfs file onto a file in a directory of
// nubis's own (as `ip netns` does under /run/netns), so that an OCI runtime can join it by path
// and it outlives the thread that made it. Listen opens a listening socket inside a namespace and
// returns it to the caller, which serves it from the nubis process like any other: this is how the
// Lambda Runtime API appears at 127.0.0.1:9001 inside a sandbox with no proxy in between.
//
// Everything that switches namespaces runs on a dedicated, locked OS thread; a thread that cannot
// be switched back is discarded rather than returned to the Go scheduler.
package netns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/nubis/nubis/internal/sandbox/revert"
)

// filePrefix starts the name of every namespace file this package makes, so that Cleanup and
// List touch nothing else.
const filePrefix = "nubis-"

// NS is a network namespace pinned by a file. Its methods are safe for concurrent use.
type NS struct {
	path string

	mu     sync.Mutex
	handle netns.NsHandle // an open fd on the namespace; -1 once closed
}

// prepareMu serialises making a directory a shared mount point within this process.
var prepareMu sync.Mutex

// New creates a network namespace with its loopback interface up, pinned by a new file in dir.
func New(ctx context.Context, dir string) (*NS, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := prepareDir(dir); err != nil {
		return nil, err
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("netns name: %w", err)
	}
	path := filepath.Join(dir, filePrefix+hex.EncodeToString(id[:]))

	rev := revert.New()
	defer rev.Fail()
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return nil, fmt.Errorf("netns file: %w", err)
	}
	f.Close()
	rev.Add(func() { os.Remove(path) })

	err = onThread(func(tid int) error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare network namespace: %w", err)
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", tid)
		if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("pin network namespace at %s: %w", path, err)
		}
		rev.Add(func() { unix.Unmount(path, unix.MNT_DETACH) })
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("loopback in new namespace: %w", err)
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return fmt.Errorf("loopback up in new namespace: %w", err)
		}
		return nil
	}, -1)
	if err != nil {
		return nil, err
	}
	ns, err := Open(path)
	if err != nil {
		return nil, err
	}
	rev.Success()
	return ns, nil
}

// Open attaches to a namespace pinned at path by New, for example after a restart of nubis.
func Open(path string) (*NS, error) {
	h, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", path, err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(h), &st); err != nil || st.Type != unix.NSFS_MAGIC {
		h.Close()
		return nil, fmt.Errorf("open network namespace %s: not a namespace file", path)
	}
	return &NS{path: path, handle: h}, nil
}

// Path is the file that pins the namespace, for the network namespace path of an OCI spec.
func (n *NS) Path() string { return n.path }

// Do runs fn on a locked OS thread that has joined the namespace, and switches the thread back
// afterwards. Only fn's own thread is in the namespace: goroutines it starts are not, but sockets
// it creates stay in the namespace for their whole life.
func (n *NS) Do(ctx context.Context, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	if n.handle == -1 {
		n.mu.Unlock()
		return fmt.Errorf("network namespace %s: %w", n.path, net.ErrClosed)
	}
	// A duplicate keeps the namespace open for fn even if Close runs meanwhile.
	fd, err := unix.FcntlInt(uintptr(n.handle), unix.F_DUPFD_CLOEXEC, 0)
	n.mu.Unlock()
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", n.path, err)
	}
	defer unix.Close(fd)
	return onThread(func(int) error { return fn() }, fd)
}

// Listen opens a listening socket inside the namespace (for example "tcp", "127.0.0.1:9001").
// The listener is an ordinary net.Listener of this process: accept and serve it from anywhere.
func (n *NS) Listen(ctx context.Context, network, addr string) (net.Listener, error) {
	var l net.Listener
	err := n.Do(ctx, func() error {
		var err error
		l, err = (&net.ListenConfig{}).Listen(ctx, network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s %s in %s: %w", network, addr, n.path, err)
	}
	return l, nil
}

// ListenPacket opens a packet socket inside the namespace (for example "udp", "169.254.169.253:53").
func (n *NS) ListenPacket(ctx context.Context, network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := n.Do(ctx, func() error {
		var err error
		pc, err = (&net.ListenConfig{}).ListenPacket(ctx, network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s %s in %s: %w", network, addr, n.path, err)
	}
	return pc, nil
}

// Close unpins the namespace: unmounts and removes its file. The namespace itself goes away when
// nothing uses it any more (processes in it, sockets opened in it). Close is idempotent.
func (n *NS) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.handle != -1 {
		n.handle.Close()
		n.handle = -1
	}
	return unpin(n.path)
}

// List returns the namespace files in dir made by New.
func List(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("list network namespaces: %w", err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), filePrefix) && e.Type().IsRegular() {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out, nil
}

// Cleanup unpins every namespace file in dir made by New. It is meant for reconciling at
// start-up, after a crash, before this process creates namespaces of its own in dir.
func Cleanup(dir string) error {
	paths, err := List(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range paths {
		errs = append(errs, unpin(p))
	}
	return errors.Join(errs...)
}

func unpin(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount network namespace %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove network namespace %s: %w", path, err)
	}
	return nil
}

// prepareDir makes dir a mount point with shared propagation, as `ip netns` does for /run/netns:
// an unmount of a namespace file then reaches every mount namespace that copied it (such as one
// created by a container runtime meanwhile), so that no copy keeps the namespace alive.
func prepareDir(dir string) error {
	prepareMu.Lock()
	defer prepareMu.Unlock()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("netns dir: %w", err)
	}
	err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) { // not a mount point yet
		if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("netns dir %s: bind mount: %w", dir, err)
		}
		err = unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	}
	if err != nil {
		return fmt.Errorf("netns dir %s: make shared: %w", dir, err)
	}
	return nil
}

// onThread runs fn on a fresh goroutine locked to its OS thread, first joining the namespace fd
// (unless it is -1), and restores the thread's original network namespace afterwards. fn gets
// the thread id. If the thread cannot be restored it stays locked, and the Go runtime ends it
// when the goroutine returns.
func onThread(fn func(tid int) error, fd int) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if fd != -1 {
			if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
				runtime.UnlockOSThread()
				done <- fmt.Errorf("enter network namespace: %w", err)
				return
			}
		}
		ferr := fn(unix.Gettid())
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: it dies with this goroutine instead of running others
			// in the wrong namespace.
			done <- errors.Join(ferr, fmt.Errorf("restore network namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		done <- ferr
	}()
	return <-done
}

// Release unpins every namespace file in dir and unmounts dir itself, undoing what New set up;
// for a clean stop.
func Release(dir string) error {
	err := Cleanup(dir)
	if uerr := unix.Unmount(dir, unix.MNT_DETACH); uerr != nil && !errors.Is(uerr, unix.EINVAL) && !errors.Is(uerr, unix.ENOENT) {
		err = errors.Join(err, fmt.Errorf("unmount netns dir %s: %w", dir, uerr))
	}
	if err == nil {
		os.Remove(dir) // only if empty
	}
	return err
}
