package lambda

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/nubis/nubis/internal/awsproto"
)

// Lambda's code limits.
const (
	maxZippedBytes   = 50 << 20  // a ZipFile of at most 50 MB
	maxUnzippedBytes = 250 << 20 // unzipped code of at most 250 MB
)

// codeInfo describes a validated code zip.
type codeInfo struct {
	Hex      string // hex SHA-256: the blob's name
	Sha256   string // base64 SHA-256: the API's CodeSha256
	Size     int64
	Unzipped int64 // the entries' uncompressed size
}

// checkZip validates a deployment package as Lambda does: a real zip, within the size limits, whose
// entries stay inside the code root (no absolute paths, no "..", no symlink that points outside).
func checkZip(b []byte) (codeInfo, error) {
	if len(b) > maxZippedBytes {
		return codeInfo{}, awsproto.Errorf(413, "RequestEntityTooLargeException",
			"Zipped file size (%d bytes) exceeds the maximum of %d bytes", len(b), maxZippedBytes)
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return codeInfo{}, invalidParam("Could not unzip uploaded file. Please check your file, then try to upload again.")
	}
	var total uint64
	for _, f := range zr.File {
		if err := checkEntryName(f.Name); err != nil {
			return codeInfo{}, err
		}
		total += f.UncompressedSize64
		if total > maxUnzippedBytes {
			return codeInfo{}, invalidParam("Unzipped size must be smaller than %d bytes", maxUnzippedBytes)
		}
		if f.Mode()&os.ModeSymlink != 0 {
			target, err := readAll(f, 4096)
			if err != nil {
				return codeInfo{}, invalidParam("Could not unzip uploaded file. Please check your file, then try to upload again.")
			}
			dest := string(target)
			if path.IsAbs(dest) || !inside(path.Join(path.Dir(f.Name), dest)) {
				return codeInfo{}, invalidParam("The symbolic link %s points to %s, outside the deployment package.", f.Name, dest)
			}
		}
	}
	sum := sha256.Sum256(b)
	return codeInfo{Hex: hex.EncodeToString(sum[:]), Sha256: base64.StdEncoding.EncodeToString(sum[:]), Size: int64(len(b)),
		Unzipped: int64(total)}, nil
}

func checkEntryName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || !inside(name) ||
		strings.ContainsRune(name, 0) {
		return invalidParam("The deployment package has an entry with an invalid path: %q. Paths must be relative and stay inside the package.", name)
	}
	return nil
}

// inside reports whether a slash-separated relative path stays inside its root.
func inside(p string) bool {
	clean := path.Clean(p)
	return clean != ".." && !strings.HasPrefix(clean, "../") && !path.IsAbs(clean)
}

func readAll(f *zip.File, limit int64) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, limit))
}

// codeStore keeps code zips as content-addressed files: <dir>/<hex sha256>.zip.
type codeStore struct{ dir string }

func (c codeStore) path(hexSum string) string { return filepath.Join(c.dir, hexSum+".zip") }

// put writes a zip durably (temp file, fsync, rename) unless it is there already.
func (c codeStore) put(info codeInfo, b []byte) error {
	dst := c.path(info.Hex)
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("code store: %w", err)
	}
	f, err := os.CreateTemp(c.dir, ".upload-*")
	if err != nil {
		return fmt.Errorf("code store: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("code store: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("code store: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("code store: %w", err)
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		return fmt.Errorf("code store: %w", err)
	}
	return nil
}

// open returns the zip of a code blob.
func (c codeStore) open(hexSum string) (*os.File, error) { return os.Open(c.path(hexSum)) }
