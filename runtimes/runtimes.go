// Package runtimes holds the Lambda runtime clients that run inside nubis's sandboxes, and installs
// them on the host.
//
// The clients are small programs of our own, written against the interpreters of the runtime image
// with their standard libraries only: python/bootstrap.py for the Python runtimes and
// node/bootstrap.js for the Node.js runtimes. Each speaks the AWS Lambda Runtime API at
// AWS_LAMBDA_RUNTIME_API (GET /2018-06-01/runtime/invocation/next, then POST …/response or …/error,
// or POST /2018-06-01/runtime/init/error when the handler cannot be loaded) over one kept-alive
// connection, and gives the function what AWS's own runtime clients give it: the context object,
// the error shapes and Runtime.* error types, and the log line formats.
//
// nubis writes them into a directory with [Install] and bind-mounts that directory read-only at
// [MountPoint] in each sandbox, where a runtime is started with [Command].
package runtimes

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

//go:embed python node
var files embed.FS

// MountPoint is where the directory given to [Install] appears inside a sandbox.
const MountPoint = "/var/runtime"

// The runtime clients' paths inside a sandbox.
const (
	PythonBootstrap = MountPoint + "/python/bootstrap.py"
	NodeBootstrap   = MountPoint + "/node/bootstrap.js"
)

// Command returns the command line that starts the runtime client for an AWS runtime identifier
// ("python3.11", "nodejs18.x", …) inside a sandbox, with the working directory /var/task. It
// reports false for runtimes without a client here (the provided runtimes run the function's own
// bootstrap).
func Command(runtime string) ([]string, bool) {
	switch {
	case strings.HasPrefix(runtime, "python3"):
		return []string{"python3", PythonBootstrap}, true
	case strings.HasPrefix(runtime, "nodejs"):
		return []string{"node", NodeBootstrap}, true
	}
	return nil, false
}

// Install writes the runtime clients into dir (dir/python/bootstrap.py, dir/node/bootstrap.js),
// creating the directories with mode 0755 and the files with mode 0755. A file already there with
// the same content and mode is left alone; any other is replaced by writing a temporary file beside
// it and renaming it over, so a sandbox starting meanwhile sees the old file or the new one, never
// half of one. Install is safe to call at every start.
func Install(dir string) error {
	return fs.WalkDir(files, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		if d.IsDir() {
			if err := os.MkdirAll(target, 0o755); err != nil {
				return fmt.Errorf("install runtimes: %w", err)
			}
			// MkdirAll leaves an existing directory's mode alone, and the umask trims a new one.
			if err := os.Chmod(target, 0o755); err != nil {
				return fmt.Errorf("install runtimes: %w", err)
			}
			return nil
		}
		data, err := files.ReadFile(name)
		if err != nil {
			return err
		}
		if err := writeFile(target, data); err != nil {
			return fmt.Errorf("install runtimes: %s: %w", name, err)
		}
		return nil
	})
}

// writeFile puts data at target with mode 0755 unless it is there already.
func writeFile(target string, data []byte) error {
	if fi, err := os.Lstat(target); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm() == 0o755 {
		if old, err := os.ReadFile(target); err == nil && bytes.Equal(old, data) {
			return nil
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".*")
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Chmod(0o755); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return err
	}
	done = true
	return nil
}
