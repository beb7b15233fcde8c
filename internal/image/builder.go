package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nubis/nubis/internal/sandbox/revert"
)

// DefaultCacheDir is where built roots are kept when Builder.CacheDir is empty.
const DefaultCacheDir = "/var/cache/nubis/images"

// Builder builds recipes into a cache directory, one build per recipe hash per machine. It is safe
// for concurrent use, and several processes may share one CacheDir: a build holds an flock on
// <CacheDir>/<id>.lock, and other callers wait for it instead of building the same root again.
//
// The cache holds, per recipe, <CacheDir>/<name>-<hash>/rootfs (the tree, owned by root, meant to
// be mounted read-only) and recipe.json beside it (what was built, from where, when, how big).
// Entries are immutable; nothing in them is ever modified after the atomic rename that publishes
// them.
type Builder struct {
	// CacheDir holds the built roots; DefaultCacheDir when empty.
	CacheDir string
	// Mirror is the Debian mirror to bootstrap from; when empty, HostMirror(suite): the one this
	// host's apt uses, else DefaultMirror.
	Mirror string
	// Debootstrap is the debootstrap binary; "debootstrap" (found in PATH, /usr/sbin) when empty.
	Debootstrap string
	// Log receives stage messages at Info and debootstrap's output at Debug; slog.Default() when nil.
	Log *slog.Logger
}

// Manifest is what recipe.json beside a built root records.
type Manifest struct {
	Recipe    Recipe
	Hash      string
	Mirror    string
	BuiltAt   time.Time
	BuildTime string
	SizeBytes int64
}

func (b *Builder) cacheDir() string {
	if b.CacheDir != "" {
		return b.CacheDir
	}
	return DefaultCacheDir
}

func (b *Builder) log() *slog.Logger {
	if b.Log != nil {
		return b.Log
	}
	return slog.Default()
}

// Path returns where the root of r is (or will be) kept: <CacheDir>/<name>-<hash>/rootfs.
func (b *Builder) Path(r Recipe) string {
	return filepath.Join(b.cacheDir(), r.ID(), "rootfs")
}

// Ensure returns the root filesystem of r, building it first if the cache does not have it. A
// build runs debootstrap into a temporary directory of the cache, cleans it (apt caches and
// lists, the host's resolv.conf and hostname, logs), adds the recipe's users and publishes it with
// an atomic rename. Callers that find a build of the same recipe in progress, in this process or
// another, wait for it (or for ctx).
func (b *Builder) Ensure(ctx context.Context, r Recipe) (rootfs string, err error) {
	if err := r.Validate(); err != nil {
		return "", err
	}
	final := b.Path(r)
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}
	cache := b.cacheDir()
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", fmt.Errorf("image cache: %w", err)
	}
	unlock, err := b.lock(ctx, filepath.Join(cache, r.ID()+".lock"), r)
	if err != nil {
		return "", err
	}
	defer unlock()
	// Another builder may have finished while we waited.
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}
	if err := b.build(ctx, r); err != nil {
		return "", fmt.Errorf("build image %s: %w", r.ID(), err)
	}
	return final, nil
}

// lock takes the exclusive flock of a recipe's build, polling so that ctx can interrupt the wait.
// flock conflicts between open file descriptions, so goroutines of one process exclude each other
// as well as other processes; the kernel drops the lock if the holder dies.
func (b *Builder) lock(ctx context.Context, path string, r Recipe) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("image lock: %w", err)
	}
	logged := false
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("image lock %s: %w", path, err)
		}
		if !logged {
			b.log().Info("waiting for another build of the image", "image", r.ID())
			logged = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("wait for image %s: %w", r.ID(), ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// build runs while holding the recipe's lock.
func (b *Builder) build(ctx context.Context, r Recipe) error {
	cache := b.cacheDir()
	log := b.log().With("image", r.ID())
	// Whatever temporary trees of this recipe exist are left by a build that died: we hold the lock.
	stale, _ := filepath.Glob(filepath.Join(cache, "."+r.ID()+".build-*"))
	for _, s := range stale {
		log.Info("removing the leftovers of an interrupted build", "dir", s)
		if err := removeTree(s); err != nil {
			return err
		}
	}

	rev := revert.New()
	defer rev.Fail()
	tmp, err := os.MkdirTemp(cache, "."+r.ID()+".build-")
	if err != nil {
		return fmt.Errorf("temporary dir: %w", err)
	}
	rev.Add(func() {
		if err := removeTree(tmp); err != nil {
			log.Warn("could not remove a failed build", "dir", tmp, "err", err)
		}
	})
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("temporary dir: %w", err)
	}
	target := filepath.Join(tmp, "rootfs")

	mirror := b.Mirror
	if mirror == "" {
		mirror = HostMirror(r.Suite)
	}
	start := time.Now()
	log.Info("building image with debootstrap", "suite", r.Suite, "variant", r.Variant,
		"packages", strings.Join(r.Packages, ","), "mirror", mirror)
	if err := b.debootstrap(ctx, log, r, target, mirror); err != nil {
		return err
	}
	log.Info("debootstrap finished", "elapsed", time.Since(start).Round(time.Millisecond))
	if err := finalize(target, r); err != nil {
		return fmt.Errorf("finish root: %w", err)
	}
	size, err := diskUsage(target)
	if err != nil {
		return err
	}
	m := Manifest{Recipe: r, Hash: r.Hash(), Mirror: mirror, BuiltAt: time.Now().UTC(),
		BuildTime: time.Since(start).Round(time.Millisecond).String(), SizeBytes: size}
	mb, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, "recipe.json"), append(mb, '\n'), 0o644); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	// Everything written, not just the directory entry, must be durable before the rename
	// publishes the tree as complete.
	if err := syncFS(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(cache, r.ID())); err != nil {
		return fmt.Errorf("publish image: %w", err)
	}
	rev.Success()
	_ = syncDir(cache)
	log.Info("image ready", "rootfs", b.Path(r), "build_time", m.BuildTime, "size_mb", size>>20)
	return nil
}

// ReadManifest returns the recipe.json of a built root.
func (b *Builder) ReadManifest(r Recipe) (Manifest, error) {
	var m Manifest
	data, err := os.ReadFile(filepath.Join(b.cacheDir(), r.ID(), "recipe.json"))
	if err != nil {
		return m, fmt.Errorf("image manifest: %w", err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("image manifest: %w", err)
	}
	return m, nil
}

// diskUsage adds up the blocks of a tree, counting hard-linked files once.
func diskUsage(dir string) (int64, error) {
	type ino struct{ dev, ino uint64 }
	seen := map[ino]bool{}
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		k := ino{uint64(st.Dev), st.Ino}
		if st.Nlink > 1 && seen[k] {
			return nil
		}
		seen[k] = true
		total += st.Blocks * 512
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measure %s: %w", dir, err)
	}
	return total, nil
}

// syncFS flushes the whole file system that holds dir (syncfs(2)).
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
