package image

import (
	"fmt"
	"os"
	"slices"

	"github.com/nubis/nubis/internal/mountinfo"
	"golang.org/x/sys/unix"
)

// mountsUnder lists the mount points at or below dir.
func mountsUnder(dir string) ([]string, error) { return mountinfo.Under(dir) }

// removeTree unmounts whatever is mounted below dir (a killed debootstrap leaves /proc, /sys and
// possibly bind mounts of the host's /dev nodes in its target), and only then removes dir, so that
// removing a half-built root can never reach into a host file system.
func removeTree(dir string) error {
	mps, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	// Deepest first.
	slices.SortFunc(mps, func(a, b string) int { return len(b) - len(a) })
	for _, mp := range mps {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			return fmt.Errorf("unmount %s: %w", mp, err)
		}
	}
	if mps, err := mountsUnder(dir); err != nil {
		return err
	} else if len(mps) > 0 {
		return fmt.Errorf("remove %s: still mounted: %v", dir, mps)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}
