package firewall

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/nubis/nubis/internal/errdefs"
)

// Apply installs p in the network namespace pinned at nsPath (netns.NS.Path()), replacing what
// an earlier Apply installed. It is atomic: the ruleset is one nft transaction (create the
// table if missing, flush it, refill it), so the old rules stay in force until the new ones are
// all in, and a failed Apply changes nothing.
//
// Apply is safe for concurrent use: calls for different namespaces run in parallel, calls for
// the same namespace (the same nsPath) one after the other, so the last to start is the one in
// force.
func Apply(ctx context.Context, nsPath string, p Policy) error {
	rules, err := Render(p)
	if err != nil {
		return fmt.Errorf("firewall for %s: %w", nsPath, err)
	}
	return load(ctx, nsPath, rules)
}

// Clear removes nubis's table, and so every rule Apply installed, from the namespace pinned at
// nsPath: everything is allowed again. It is no error if the table is absent.
func Clear(ctx context.Context, nsPath string) error {
	// Creating the table first makes the deletion succeed when it is absent (nft 1.0.6 has no
	// "destroy"); both happen in one transaction.
	return load(ctx, nsPath, fmt.Sprintf("table inet %[1]s\ndelete table inet %[1]s\n", Table))
}

// load runs `nft -f -` with rules on stdin inside the namespace, serialised per namespace.
func load(ctx context.Context, nsPath string, rules string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("firewall for %s: %w", nsPath, err)
	}
	unlock, err := locks.lock(ctx, filepath.Clean(nsPath))
	if err != nil {
		return fmt.Errorf("firewall for %s: %w", nsPath, err)
	}
	defer unlock()
	if err := runNft(ctx, nsPath, rules); err != nil {
		return fmt.Errorf("firewall for %s: %w", nsPath, err)
	}
	return nil
}

// runNft runs `nft -f -` inside the network namespace pinned at nsPath.
//
// How nft gets into the namespace: it is started from a goroutine locked to an OS thread that
// has joined the namespace with setns(2). A network namespace belongs to a thread, not to the
// process, and Go's exec forks (clone with CLONE_VFORK) from the thread of the goroutine that
// calls Start, so with that goroutine locked the child is born inside the namespace. (That is
// also why netns.NS.Do plus exec would work; it is not used because it needs a netns.NS, and
// netns.Open hands out one whose Close unpins the namespace, which is not ours to do.) The
// alternatives are slower or closed: `nsenter --net=PATH nft` costs a second exec (1-3 ms of
// the 10-20 ms an Apply takes, see TestApplyTiming; most of the rest is nft itself, whose
// netlink socket takes ~10 ms to close in the kernel after the transaction is committed), and
// syscall.SysProcAttr has no field for a namespace to join. Only Start runs on the switched
// thread, which is switched back right after; if that fails it stays locked, so that the Go
// runtime ends it with its goroutine instead of running other goroutines in the wrong namespace.
func runNft(ctx context.Context, nsPath, rules string) error {
	bin, err := nftPath()
	if err != nil {
		return err
	}
	nsFile, err := openNS(nsPath)
	if err != nil {
		return err
	}
	defer nsFile.Close()

	cmd := exec.CommandContext(ctx, bin, "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}

	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			started <- fmt.Errorf("current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(nsFile.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			started <- fmt.Errorf("enter network namespace %s: %w", nsPath, err)
			return
		}
		serr := cmd.Start()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Stay locked: the thread ends with this goroutine.
			started <- errors.Join(serr, fmt.Errorf("restore network namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		started <- serr
	}()
	if err := <-started; err != nil {
		if cmd.Process != nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		return fmt.Errorf("start nft: %w", err)
	}
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("nft: %w", ctx.Err())
		}
		return fmt.Errorf("nft -f: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}

// openNS opens the namespace file at path, checking that it is one.
func openNS(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("network namespace %s: %w", path, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("network namespace: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil || st.Type != unix.NSFS_MAGIC {
		f.Close()
		return nil, fmt.Errorf("network namespace %s: not a namespace file: %w", path, errdefs.ErrInvalidArgument)
	}
	return f, nil
}

// nftPath finds the nft binary: on PATH, or in the sbin directories a service's PATH may lack.
var nftPath = sync.OnceValues(func() (string, error) {
	if p, err := exec.LookPath("nft"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/nft", "/sbin/nft"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("nft not found (install nftables): %w", errdefs.ErrUnavailable)
})

// locks serialises loads per namespace.
var locks = nsLocks{m: map[string]*nsLock{}}

type nsLocks struct {
	mu sync.Mutex
	m  map[string]*nsLock
}

type nsLock struct {
	sem  chan struct{} // holds a token while a load runs
	refs int           // callers holding or waiting; the entry goes when it drops to 0
}

// lock waits for the namespace key to be free, or for ctx to end, and returns the unlock.
func (l *nsLocks) lock(ctx context.Context, key string) (func(), error) {
	l.mu.Lock()
	e := l.m[key]
	if e == nil {
		e = &nsLock{sem: make(chan struct{}, 1)}
		l.m[key] = e
	}
	e.refs++
	l.mu.Unlock()

	release := func() {
		l.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(l.m, key)
		}
		l.mu.Unlock()
	}
	select {
	case e.sem <- struct{}{}:
		return func() { <-e.sem; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
