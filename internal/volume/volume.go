// Package volume is the host-side storage of EBS volumes and their snapshots.
//
// A volume is a sparse file, <Dir>/<id>.img (mode 0600), holding an ext4 file system of exactly the
// volume's size: the size is enforced because the file system cannot grow past its blocks, and the
// host only spends disk on what the guest writes (mounts use the discard option, so deleted data
// is punched out of the file again). A volume is attached by loop-mounting its file on the host
// (Mount); the caller mounts it at a directory inside an instance's root file system, from where
// mount propagation carries it into the instance.
//
// A snapshot, <Dir>/snapshots/<id>.img, is a point-in-time copy of a volume file (a reflink where
// the host file system has them, else a sparse copy); a volume created from it is another copy,
// so volumes and snapshots never depend on each other.
//
// # Loop devices
//
// Mount binds a free loop device with LOOP_CONFIGURE and LO_FLAGS_AUTOCLEAR (and direct I/O): the
// kernel frees the device when its last user goes away, so a crash between binding and mounting
// cannot leak it, and a mount that outlives nubis frees its device when it is finally unmounted,
// by anyone. Unmount detaches explicitly as well. Devices bound by other means (losetup by hand, an
// older nubis) are found from sysfs the way `losetup -j` finds them (LoopDevices) and detached by
// Cleanup, which `nubis serve` calls at start.
//
// A store needs root (CAP_SYS_ADMIN), Linux 5.8 or later, and e2fsprogs (mkfs.ext4, e2fsck,
// resize2fs) and coreutils cp on PATH.
package volume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/nubis/nubis/internal/errdefs"
	"github.com/nubis/nubis/internal/sandbox/revert"
	"golang.org/x/sys/unix"
)

const (
	// GiB is the unit of volume sizes.
	GiB = 1 << 30
	// MaxSizeGiB is the largest volume, as on AWS (16 TiB). Note that a host file system may not
	// hold a file that large: ext4 stops 4 KiB short of 16 TiB; XFS and btrfs do not.
	MaxSizeGiB = 16384
	// mountFlags are the flags of every volume mount: device nodes and set-id programs on a
	// volume are not honoured.
	mountFlags = unix.MS_NODEV | unix.MS_NOSUID
	// mountData are the ext4 options of every volume mount: discard punches the blocks the guest
	// frees out of the sparse file, so the host only keeps what the guest stores.
	mountData = "discard"
)

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// Store keeps volumes and snapshots as files under Dir. It is safe for concurrent use (within one
// process: two processes must not share a Dir); operations on the same volume or snapshot run one
// at a time. A Store must not be copied after first use.
type Store struct {
	// Dir holds the volumes, <Dir>/<id>.img, and the snapshots, <Dir>/snapshots/<id>.img. It is
	// created on first use.
	Dir string
	// Log receives what the store does on its own (Cleanup's repairs); nil discards it.
	Log *slog.Logger

	// gate is held shared by every operation and exclusively by Cleanup.
	gate  sync.RWMutex
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

func (s *Store) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.New(slog.DiscardHandler)
}

// lock takes the store's gate (shared) and the per-name locks of keys, in a fixed order, and
// returns the function that releases them all.
func (s *Store) lock(keys ...string) func() {
	s.gate.RLock()
	keys = slices.Clone(keys)
	slices.Sort(keys)
	keys = slices.Compact(keys)
	held := make([]*keyLock, 0, len(keys))
	for _, k := range keys {
		s.mu.Lock()
		if s.locks == nil {
			s.locks = map[string]*keyLock{}
		}
		l := s.locks[k]
		if l == nil {
			l = &keyLock{}
			s.locks[k] = l
		}
		l.refs++
		s.mu.Unlock()
		l.mu.Lock()
		held = append(held, l)
	}
	return func() {
		for i := len(held) - 1; i >= 0; i-- {
			held[i].mu.Unlock()
			s.mu.Lock()
			if held[i].refs--; held[i].refs == 0 {
				delete(s.locks, keys[i])
			}
			s.mu.Unlock()
		}
		s.gate.RUnlock()
	}
}

func volKey(id string) string  { return "v/" + id }
func snapKey(id string) string { return "s/" + id }

// ValidID reports whether id can name a volume or snapshot: 1 to 128 letters, digits, '.', '_'
// and '-', starting with a letter or digit (AWS ids such as vol-0123456789abcdef0 are).
func ValidID(id string) bool { return idPattern.MatchString(id) }

func checkID(kind, id string) error {
	if !ValidID(id) {
		return fmt.Errorf("%s id %q: %w", kind, id, errdefs.ErrInvalidArgument)
	}
	return nil
}

func checkSize(sizeGiB int) error {
	if sizeGiB < 1 || sizeGiB > MaxSizeGiB {
		return fmt.Errorf("volume size %d GiB not in 1..%d: %w", sizeGiB, MaxSizeGiB, errdefs.ErrInvalidArgument)
	}
	return nil
}

func (s *Store) volPath(id string) string  { return filepath.Join(s.Dir, id+".img") }
func (s *Store) snapDir() string           { return filepath.Join(s.Dir, "snapshots") }
func (s *Store) snapPath(id string) string { return filepath.Join(s.snapDir(), id+".img") }

// Path returns the file that holds volume id (whether or not it exists).
func (s *Store) Path(id string) string { return s.volPath(id) }

// Exists reports whether volume id exists.
func (s *Store) Exists(id string) bool {
	if !ValidID(id) {
		return false
	}
	return isRegular(s.volPath(id))
}

// SnapshotExists reports whether snapshot id exists.
func (s *Store) SnapshotExists(id string) bool {
	if !ValidID(id) {
		return false
	}
	return isRegular(s.snapPath(id))
}

func isRegular(path string) bool {
	st, err := os.Lstat(path)
	return err == nil && st.Mode().IsRegular()
}

// SizeGiB returns the size of volume id.
func (s *Store) SizeGiB(id string) (int, error) {
	if err := checkID("volume", id); err != nil {
		return 0, err
	}
	return fileGiB("volume", id, s.volPath(id))
}

// SnapshotSizeGiB returns the size of the volume that snapshot id was taken of.
func (s *Store) SnapshotSizeGiB(id string) (int, error) {
	if err := checkID("snapshot", id); err != nil {
		return 0, err
	}
	return fileGiB("snapshot", id, s.snapPath(id))
}

func fileGiB(kind, id, path string) (int, error) {
	st, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("%s %s: %w", kind, id, errdefs.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", kind, id, err)
	}
	if !st.Mode().IsRegular() {
		return 0, fmt.Errorf("%s %s: %s is not a regular file", kind, id, path)
	}
	return int((st.Size() + GiB - 1) / GiB), nil
}

// Create makes volume id: a sparse file of sizeGiB GiB holding a fresh ext4 file system labelled
// with the id (its first 16 characters), with no blocks reserved for root so the guest can use
// the whole size. It fails with ErrAlreadyExists if the volume exists.
func (s *Store) Create(ctx context.Context, id string, sizeGiB int) error {
	if err := checkID("volume", id); err != nil {
		return err
	}
	if err := checkSize(sizeGiB); err != nil {
		return err
	}
	defer s.lock(volKey(id))()
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.Exists(id) {
		return fmt.Errorf("volume %s: %w", id, errdefs.ErrAlreadyExists)
	}
	r := revert.New()
	defer r.Fail()
	tmp, err := s.tempFile(s.Dir, id, r)
	if err != nil {
		return err
	}
	if err := truncate(tmp, int64(sizeGiB)*GiB); err != nil {
		return err
	}
	if err := mkfs(ctx, tmp, id); err != nil {
		return fmt.Errorf("create volume %s: %w", id, err)
	}
	if err := publish(tmp, s.volPath(id)); err != nil {
		return err
	}
	r.Success()
	return nil
}

// CreateFromSnapshot makes volume id as a copy of snapshot snapshotID, its file system grown to
// sizeGiB when that is larger than the snapshot's volume was. A size smaller than the snapshot's
// is ErrInvalidArgument; a missing snapshot ErrNotFound; an existing volume ErrAlreadyExists. The
// copy keeps the file system's label and UUID, as a block copy on AWS does.
func (s *Store) CreateFromSnapshot(ctx context.Context, id, snapshotID string, sizeGiB int) error {
	if err := checkID("volume", id); err != nil {
		return err
	}
	if err := checkID("snapshot", snapshotID); err != nil {
		return err
	}
	if err := checkSize(sizeGiB); err != nil {
		return err
	}
	defer s.lock(volKey(id), snapKey(snapshotID))()
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.Exists(id) {
		return fmt.Errorf("volume %s: %w", id, errdefs.ErrAlreadyExists)
	}
	snapGiB, err := fileGiB("snapshot", snapshotID, s.snapPath(snapshotID))
	if err != nil {
		return err
	}
	if sizeGiB < snapGiB {
		return fmt.Errorf("volume size %d GiB is smaller than snapshot %s (%d GiB): %w",
			sizeGiB, snapshotID, snapGiB, errdefs.ErrInvalidArgument)
	}
	r := revert.New()
	defer r.Fail()
	tmp, err := s.tempFile(s.Dir, id, r)
	if err != nil {
		return err
	}
	if err := copyFile(ctx, s.snapPath(snapshotID), tmp); err != nil {
		return fmt.Errorf("create volume %s from snapshot %s: %w", id, snapshotID, err)
	}
	if sizeGiB > snapGiB {
		if err := truncate(tmp, int64(sizeGiB)*GiB); err != nil {
			return err
		}
		if err := fsck(ctx, tmp); err != nil {
			return fmt.Errorf("create volume %s from snapshot %s: %w", id, snapshotID, err)
		}
		if _, err := run(ctx, "resize2fs", tmp); err != nil {
			return fmt.Errorf("create volume %s from snapshot %s: %w", id, snapshotID, err)
		}
	}
	if err := syncFile(tmp); err != nil {
		return err
	}
	if err := publish(tmp, s.volPath(id)); err != nil {
		return err
	}
	r.Success()
	return nil
}

// Snapshot copies volume volumeID to snapshot snapshotID as it is at one point in time.
//
// If the volume is mounted, its file system is frozen (FIFREEZE, which first writes everything
// out and empties the journal) for as long as the copy takes, and thawed after: the snapshot is
// a clean file system as of that moment, better than crash-consistent (it includes what the
// guest had written but not synced), though like an EBS snapshot it lacks what applications
// still hold in their own memory. Writers
// on the volume wait while it is frozen: an instant where the host file system makes reflinks
// (btrfs, XFS), else as long as copying the data the volume holds takes (holes are not copied).
// A volume in use through a lazily unmounted file system that cannot be frozen is ErrConflict.
func (s *Store) Snapshot(ctx context.Context, volumeID, snapshotID string) error {
	if err := checkID("volume", volumeID); err != nil {
		return err
	}
	if err := checkID("snapshot", snapshotID); err != nil {
		return err
	}
	defer s.lock(volKey(volumeID), snapKey(snapshotID))()
	if err := ctx.Err(); err != nil {
		return err
	}
	if !s.Exists(volumeID) {
		return fmt.Errorf("volume %s: %w", volumeID, errdefs.ErrNotFound)
	}
	if s.SnapshotExists(snapshotID) {
		return fmt.Errorf("snapshot %s: %w", snapshotID, errdefs.ErrAlreadyExists)
	}
	if err := os.MkdirAll(s.snapDir(), 0o700); err != nil {
		return fmt.Errorf("snapshot %s: %w", snapshotID, err)
	}
	st, err := s.settledState(ctx, volumeID)
	if err != nil {
		return err
	}
	if st.busy {
		return fmt.Errorf("snapshot of volume %s: in use by a lazily unmounted file system: %w", volumeID, errdefs.ErrConflict)
	}
	r := revert.New()
	defer r.Fail()
	tmp, err := s.tempFile(s.snapDir(), snapshotID, r)
	if err != nil {
		return err
	}
	if err := detachAll(st.idle); err != nil {
		return err
	}
	err = func() error {
		if len(st.mounts) > 0 {
			thaw, err := freeze(st.mounts[0].Point, st.mounts[0].Dev)
			if err != nil {
				return err
			}
			defer thaw()
		}
		return copyFile(ctx, s.volPath(volumeID), tmp)
	}()
	if err != nil {
		return fmt.Errorf("snapshot of volume %s: %w", volumeID, err)
	}
	if err := syncFile(tmp); err != nil {
		return err
	}
	if err := publish(tmp, s.snapPath(snapshotID)); err != nil {
		return err
	}
	r.Success()
	return nil
}

// DeleteSnapshot removes snapshot snapshotID (ErrNotFound if there is none). Volumes made from it
// are copies and stay.
func (s *Store) DeleteSnapshot(ctx context.Context, snapshotID string) error {
	if err := checkID("snapshot", snapshotID); err != nil {
		return err
	}
	defer s.lock(snapKey(snapshotID))()
	if err := ctx.Err(); err != nil {
		return err
	}
	return removeFile("snapshot", snapshotID, s.snapPath(snapshotID))
}

// Delete removes volume id: ErrNotFound if there is none, ErrConflict while it is mounted. Loop
// devices left bound to it are detached first. A file system that was lazily unmounted
// (Unmount with force) and is still in use keeps working on the deleted file until its last user
// lets go.
func (s *Store) Delete(ctx context.Context, id string) error {
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
	st, err := s.state(id, true)
	if err != nil {
		return err
	}
	if len(st.mounts) > 0 {
		return fmt.Errorf("delete volume %s: mounted at %s: %w", id, st.mounts[0].Point, errdefs.ErrConflict)
	}
	if err := detachAll(st.loops); err != nil {
		return err
	}
	return removeFile("volume", id, s.volPath(id))
}

// Grow enlarges volume id and its file system to sizeGiB, which must be larger than the volume
// is (ErrInvalidArgument otherwise), as ModifyVolume does. A mounted volume grows online (the
// guest sees the new size at once), which takes CAP_SYS_RESOURCE besides CAP_SYS_ADMIN; an
// unmounted one is checked (e2fsck) and resized offline (resize2fs). Should an online resize fail
// part way, the file keeps its new size and the file system may have grown by part of it; one
// the kernel refuses outright (no CAP_SYS_RESOURCE, say) leaves the volume as it was.
func (s *Store) Grow(ctx context.Context, id string, sizeGiB int) error {
	if err := checkID("volume", id); err != nil {
		return err
	}
	if err := checkSize(sizeGiB); err != nil {
		return err
	}
	defer s.lock(volKey(id))()
	if err := ctx.Err(); err != nil {
		return err
	}
	path := s.volPath(id)
	cur, err := fileGiB("volume", id, path)
	if err != nil {
		return err
	}
	if sizeGiB <= cur {
		return fmt.Errorf("grow volume %s: new size %d GiB is not larger than %d GiB: %w", id, sizeGiB, cur, errdefs.ErrInvalidArgument)
	}
	st, err := s.settledState(ctx, id)
	if err != nil {
		return err
	}
	if st.busy {
		return fmt.Errorf("grow volume %s: in use by a lazily unmounted file system: %w", id, errdefs.ErrConflict)
	}
	oldSize := int64(cur) * GiB
	if len(st.mounts) > 0 {
		dev, m := st.mountedLoop(), st.mounts[0]
		if err := truncate(path, int64(sizeGiB)*GiB); err != nil {
			return err
		}
		undo := func() {
			_ = truncate(path, oldSize)
			_ = setCapacity(dev.path)
		}
		if err := setCapacity(dev.path); err != nil {
			undo()
			return fmt.Errorf("grow volume %s: %w", id, err)
		}
		if err := resizeOnline(m.Point, m.Dev, int64(sizeGiB)*GiB); err != nil {
			if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTTY) {
				// Refused before it began: the file system is as it was.
				undo()
			}
			return fmt.Errorf("grow volume %s online: %w", id, err)
		}
		return nil
	}
	if err := detachAll(st.idle); err != nil {
		return err
	}
	r := revert.New()
	defer r.Fail()
	if err := truncate(path, int64(sizeGiB)*GiB); err != nil {
		return err
	}
	// resize2fs writes the new superblock last: until it succeeds the file system still ends at
	// the old size, so cutting the file back is safe.
	r.Add(func() { _ = truncate(path, oldSize) })
	if err := fsck(ctx, path); err != nil {
		return fmt.Errorf("grow volume %s: %w", id, err)
	}
	if _, err := run(ctx, "resize2fs", path); err != nil {
		return fmt.Errorf("grow volume %s: %w", id, err)
	}
	if err := syncFile(path); err != nil {
		return err
	}
	r.Success()
	return nil
}

// tempFile creates an empty file, 0600, in dir for building name; r removes it on failure.
// Cleanup removes those a crash left behind.
func (s *Store) tempFile(dir, name string, r *revert.Reverter) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, "."+name+".*"+tmpSuffix)
	if err != nil {
		return "", err
	}
	f.Close()
	r.Add(func() { os.Remove(f.Name()) })
	return f.Name(), nil
}

const tmpSuffix = ".tmp"

// publish renames a finished temporary file to its name and makes the rename durable.
func publish(tmp, path string) error {
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func removeFile(kind, id, path string) error {
	if !isRegular(path) {
		return fmt.Errorf("%s %s: %w", kind, id, errdefs.ErrNotFound)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("delete %s %s: %w", kind, id, err)
	}
	return syncDir(filepath.Dir(path))
}

func truncate(path string, size int64) error {
	if err := os.Truncate(path, size); err != nil {
		if errors.Is(err, unix.EFBIG) {
			return fmt.Errorf("the host file system cannot hold a %d GiB file: %w: %w", size/GiB, errdefs.ErrInvalidArgument, err)
		}
		return err
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// mkfs makes an ext4 file system filling file, labelled id. The file is fresh and sparse, so it
// reads as zeros: mke2fs need not zero the inode tables and journal, nor the kernel later.
func mkfs(ctx context.Context, file, id string) error {
	label := id
	if len(label) > 16 {
		label = label[:16]
	}
	opts := "lazy_itable_init=1,lazy_journal_init=1,nodiscard"
	args := func(extended string) []string {
		return []string{"-q", "-F", "-t", "ext4", "-m", "0", "-L", label, "-E", extended, file}
	}
	out, err := run(ctx, "mkfs.ext4", args(opts+",assume_storage_prezeroed=1")...)
	if err != nil && ctx.Err() == nil && strings.Contains(string(out), "assume_storage_prezeroed") {
		// e2fsprogs before 1.47 lacks the option; the kernel then zeroes the tables lazily.
		_, err = run(ctx, "mkfs.ext4", args(opts)...)
	}
	return err
}

// fsck checks and repairs the file system in file, as resize2fs requires before an offline resize.
func fsck(ctx context.Context, file string) error {
	_, err := run(ctx, "e2fsck", "-f", "-y", file)
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 1 && ctx.Err() == nil {
		return nil // errors were corrected
	}
	return err
}

// copyFile copies src to dst (which exists), sharing blocks where the file system can (reflink)
// and leaving holes where src has them.
func copyFile(ctx context.Context, src, dst string) error {
	_, err := run(ctx, "cp", "--reflink=auto", "--sparse=always", "--", src, dst)
	return err
}

// run runs a command and returns its combined output; a failure carries the output.
func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return out, fmt.Errorf("%s: %w", name, cerr)
		}
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}
