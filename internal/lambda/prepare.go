package lambda

import (
	"archive/zip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nubis/nubis/internal/image"
	"github.com/nubis/nubis/internal/store"
)

// The asynchronous part of creating a function or updating its code: the zip is unpacked once per
// code hash into <DataDir>/lambda/task/<hex>, the read-only /var/task of its sandboxes, and then
// the function becomes Active (LastUpdateStatus Successful). Until then it is Pending (InProgress),
// as on AWS, and the SDKs' function-active and function-updated waiters wait for it.

// taskDir is where the unpacked code of a blob lives.
func (s *Service) taskDir(hexSum string) string {
	return filepath.Join(s.cfg.DataDir, "lambda", "task", hexSum)
}

// prepareAsync prepares the version stored at key in the background; rev is the RevisionId that
// asked for it, so that a newer change is never overwritten.
func (s *Service) prepareAsync(key, rev string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := s.prepare(ctx, key, rev); err != nil {
			s.log.Error("preparing function", "key", key, "err", err)
		}
	}()
}

func (s *Service) prepare(ctx context.Context, key, rev string) error {
	kv, err := s.store.Get(ctx, key)
	if err != nil {
		return err
	}
	var v version
	if err := json.Unmarshal(kv.Value, &v); err != nil {
		return err
	}
	prepErr := s.unpack(v.CodeHex)
	if prepErr == nil && len(v.LayerHexes) > 0 {
		prepErr = s.unpackLayers(v.LayerHexes)
	}
	if prepErr == nil {
		prepErr = s.ensureImage(ctx)
	}
	return s.store.Update(ctx, func(tx store.Tx) error {
		kvs, err := tx.List(strings.TrimSuffix(key, "$LATEST"), "", 0)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			var cur version
			if err := json.Unmarshal(kv.Value, &cur); err != nil {
				return err
			}
			latest := kv.Key == key
			if latest && cur.Config.RevisionID != rev || cur.CodeHex != v.CodeHex || !slices.Equal(cur.LayerHexes, v.LayerHexes) {
				continue // changed again meanwhile; that change prepares itself
			}
			if !latest && cur.Config.State != StatePending && cur.Config.LastUpdateStatus != UpdateRunning {
				continue
			}
			c := &cur.Config
			c.StateReason, c.StateReasonCode, c.LastUpdateReason, c.LastUpdateCode = "", "", "", ""
			switch {
			case prepErr != nil && c.State == StatePending:
				c.State, c.StateReason, c.StateReasonCode = StateFailed, "The function could not be prepared: "+prepErr.Error(), "InternalError"
				c.LastUpdateStatus, c.LastUpdateReason, c.LastUpdateCode = UpdateFailed, c.StateReason, "InternalError"
			case prepErr != nil:
				// A failed update leaves the function Active, as on AWS.
				c.LastUpdateStatus, c.LastUpdateReason, c.LastUpdateCode = UpdateFailed, "The function could not be updated: "+prepErr.Error(), "InternalError"
			default:
				c.State, c.LastUpdateStatus = StateActive, UpdateOK
			}
			if err := store.PutJSON(tx, kv.Key, cur); err != nil {
				return err
			}
		}
		return nil
	})
}

// unpack extracts a code zip into its task dir, once: into a temporary dir, then renamed.
func (s *Service) unpack(hexSum string) error {
	return s.unzipOnce(s.taskDir(hexSum), hexSum)
}

// unpackLayers merges layer zips, in order (a later layer's files win), into their /opt dir, once.
func (s *Service) unpackLayers(hexes []string) error {
	return s.unzipOnce(s.optDir(hexes), hexes...)
}

// unzipOnce extracts code zips, in order, into dst unless it is there: into a temporary dir,
// then renamed.
func (s *Service) unzipOnce(dst string, hexes ...string) error {
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".unpack-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, hexSum := range hexes {
		if err := s.extractZip(tmp, hexSum); err != nil {
			return err
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil && !os.IsExist(err) {
		if _, statErr := os.Stat(dst); statErr != nil {
			return err
		}
	}
	return nil
}

func (s *Service) extractZip(dir, hexSum string) error {
	zr, err := zip.OpenReader(s.code.path(hexSum))
	if err != nil {
		return fmt.Errorf("open code: %w", err)
	}
	defer zr.Close()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, f := range zr.File {
		if err := extract(root, f); err != nil {
			return fmt.Errorf("unpack %s: %w", f.Name, err)
		}
	}
	return nil
}

// extract writes one entry below root: through an os.Root, so that no symbolic link in the zip
// (or in a layer unpacked before it) leads a write outside the directory. What an earlier layer
// left at the entry's path is replaced unless both are directories.
func extract(root *os.Root, f *zip.File) error {
	if err := checkEntryName(f.Name); err != nil {
		return err
	}
	name := path.Clean(f.Name)
	mode := f.Mode()
	if fi, err := root.Lstat(name); err == nil && !(fi.IsDir() && mode.IsDir()) && !(fi.Mode().IsRegular() && mode.IsRegular()) {
		if err := root.RemoveAll(name); err != nil {
			return err
		}
	}
	if mode.IsDir() {
		return root.MkdirAll(name, 0o755)
	}
	if dir := path.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if mode&os.ModeSymlink != 0 {
		dest, err := readAll(f, 4096)
		if err != nil {
			return err
		}
		return root.Symlink(string(dest), name)
	}
	perm := os.FileMode(0o644)
	if mode&0o111 != 0 {
		perm = 0o755
	}
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	out, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, io.LimitReader(rc, maxUnzippedBytes+1)); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// ensureImage builds (once; later from the cache) the root filesystem environments run on.
func (s *Service) ensureImage(ctx context.Context) error {
	if s.cfg.Sandboxes == nil {
		return nil
	}
	s.imageMu.Lock()
	defer s.imageMu.Unlock()
	if s.rootfs != "" {
		return nil
	}
	s.log.Info("preparing the Lambda runtime image (built from Debian packages once, then cached)")
	rootfs, err := s.cfg.Images.Ensure(ctx, image.LambdaRuntime)
	if err != nil {
		return fmt.Errorf("runtime image: %w", err)
	}
	s.rootfs, s.imageID = rootfs, image.LambdaRuntime.ID()
	return nil
}
