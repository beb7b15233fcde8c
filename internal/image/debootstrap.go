package image

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// debootstrap runs debootstrap for r into target, logging its output line by line at Debug. On
// cancellation the whole process group (debootstrap, dpkg, chroot...) is killed.
func (b *Builder) debootstrap(ctx context.Context, log *slog.Logger, r Recipe, target, mirror string) error {
	bin := b.Debootstrap
	if bin == "" {
		bin = "debootstrap"
		if p, err := exec.LookPath(bin); err == nil {
			bin = p
		} else if _, err := os.Stat("/usr/sbin/debootstrap"); err == nil {
			bin = "/usr/sbin/debootstrap"
		} else {
			return fmt.Errorf("debootstrap not installed (apt-get install debootstrap): %w", err)
		}
	}
	args := []string{}
	if r.Variant != "" {
		args = append(args, "--variant="+r.Variant)
	}
	if len(r.Packages) > 0 {
		args = append(args, "--include="+strings.Join(r.Packages, ","))
	}
	// Recipe.Validate makes sure no name starts with a dash (debootstrap has no "--").
	args = append(args, r.Suite, target, mirror)

	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(),
		"DEBIAN_FRONTEND=noninteractive", "LC_ALL=C", "LANG=C",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	cmd.Stdin = nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	out := &lineLogger{log: log}
	cmd.Stdout = out
	cmd.Stderr = out
	err := cmd.Run()
	out.flush()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("debootstrap: %w", ctx.Err())
		}
		return fmt.Errorf("debootstrap %s: %w; last output:\n%s", strings.Join(args, " "), err, out.tail())
	}
	return nil
}

// lineLogger turns a process's output into one Debug record per line and keeps the last lines
// for an error message.
type lineLogger struct {
	log  *slog.Logger
	mu   sync.Mutex
	buf  []byte
	last []string
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.line(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

func (l *lineLogger) line(s string) {
	s = strings.TrimRight(s, "\r")
	if s == "" {
		return
	}
	l.log.Debug("debootstrap", "line", s)
	l.last = append(l.last, s)
	if len(l.last) > 20 {
		l.last = l.last[1:]
	}
}

func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.line(string(l.buf))
		l.buf = nil
	}
}

func (l *lineLogger) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.last, "\n")
}

// finalize turns a fresh debootstrap tree into a cache entry: no mounts left in it, no package
// caches, nothing of the host (debootstrap copies the host's /etc/resolv.conf and /etc/hostname),
// no build logs, and the recipe's users. Files are replaced, never written through, so a symlink
// in the new root cannot redirect a write to the host.
func finalize(root string, r Recipe) error {
	if mps, err := mountsUnder(root); err != nil {
		return err
	} else if len(mps) > 0 {
		return fmt.Errorf("debootstrap left mounts behind: %v", mps)
	}
	if _, err := os.Stat(filepath.Join(root, "debootstrap")); err == nil {
		return fmt.Errorf("debootstrap did not finish (its /debootstrap dir is still there)")
	}
	// Package caches and lists: apt can fetch them again if anyone ever needs them.
	for _, pattern := range []string{
		"var/cache/apt/archives/*.deb",
		"var/cache/apt/archives/partial/*",
		"var/cache/apt/*.bin",
		"var/lib/apt/lists/*",
		"var/log/*.log",
		"var/log/apt/*",
	} {
		matches, _ := filepath.Glob(filepath.Join(root, pattern))
		for _, m := range matches {
			if filepath.Base(m) == "partial" || filepath.Base(m) == "lock" {
				continue
			}
			if err := os.RemoveAll(m); err != nil {
				return fmt.Errorf("clean %s: %w", m, err)
			}
		}
	}
	// Host files copied in by debootstrap, replaced by neutral ones. resolv.conf stays as an empty
	// file so that a sandbox can bind-mount its own over it.
	for name, content := range map[string]string{
		"etc/resolv.conf": "",
		"etc/hostname":    "localhost\n",
		"etc/hosts":       "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n",
	} {
		if err := replaceFile(filepath.Join(root, name), content, 0o644); err != nil {
			return err
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/machine-id")); err == nil {
		if err := replaceFile(filepath.Join(root, "etc/machine-id"), "", 0o444); err != nil {
			return err
		}
	}
	if !r.KeepDocs {
		if err := removeDocs(root); err != nil {
			return err
		}
	}
	// SSH host keys identify one machine: an instance makes its own at first boot.
	if keys, _ := filepath.Glob(filepath.Join(root, "etc/ssh/ssh_host_*")); len(keys) > 0 {
		for _, k := range keys {
			if err := os.Remove(k); err != nil {
				return fmt.Errorf("remove host key: %w", err)
			}
		}
	}
	for _, d := range r.Dirs {
		if err := mkdirIn(root, d); err != nil {
			return err
		}
	}
	if err := addUsers(root, r.Users); err != nil {
		return err
	}
	for _, f := range r.Files {
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		if err := mkdirIn(root, filepath.Dir(f.Path)); err != nil {
			return err
		}
		if err := replaceFile(filepath.Join(root, f.Path), f.Content, mode); err != nil {
			return err
		}
	}
	return nil
}

// slimConfig is dpkg's configuration that keeps documentation out of later installs (the same
// rules as Debian's slim container images).
const slimConfig = `# Written by nubis: no documentation in this image.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/groff/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/*
`

// removeDocs removes what slimConfig excludes and installs slimConfig.
func removeDocs(root string) error {
	for _, pattern := range []string{"usr/share/man/*", "usr/share/info/*", "usr/share/groff/*",
		"usr/share/lintian/*", "usr/share/linda/*", "usr/share/locale/*", "usr/share/doc/*/*"} {
		matches, _ := filepath.Glob(filepath.Join(root, pattern))
		for _, m := range matches {
			if b := filepath.Base(m); b == "copyright" || b == "locale.alias" {
				continue
			}
			if err := os.RemoveAll(m); err != nil {
				return fmt.Errorf("remove docs: %w", err)
			}
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "etc/dpkg/dpkg.cfg.d"), 0o755); err != nil {
		return fmt.Errorf("dpkg config: %w", err)
	}
	return replaceFile(filepath.Join(root, "etc/dpkg/dpkg.cfg.d/nubis-slim"), slimConfig, 0o644)
}

// mkdirIn creates dir (absolute, inside the new root) refusing to follow symlinks on the way, so
// that it cannot land outside root.
func mkdirIn(root, dir string) error {
	cur := root
	for _, part := range strings.Split(strings.Trim(dir, "/"), "/") {
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		switch {
		case err == nil && fi.IsDir():
			continue
		case err == nil:
			return fmt.Errorf("create %s in the image: %s is not a directory", dir, cur)
		case os.IsNotExist(err):
			if err := os.Mkdir(cur, 0o755); err != nil {
				return fmt.Errorf("create %s in the image: %w", dir, err)
			}
		default:
			return fmt.Errorf("create %s in the image: %w", dir, err)
		}
	}
	return nil
}

// replaceFile removes path (whatever it is, a symlink included) and creates it anew.
func replaceFile(path, content string, mode os.FileMode) error {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, mode)
	if err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	if _, err := io.WriteString(f, content); err != nil {
		f.Close()
		return fmt.Errorf("replace %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil { // umask-proof
		f.Close()
		return fmt.Errorf("replace %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}

// addUsers appends users and their groups to etc/passwd, etc/group and etc/shadow (locked
// password), skipping names or ids that exist already.
func addUsers(root string, users []User) error {
	if len(users) == 0 {
		return nil
	}
	files := map[string]string{}
	for _, name := range []string{"passwd", "group", "shadow"} {
		b, err := os.ReadFile(filepath.Join(root, "etc", name))
		if err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("read /etc/%s: %w", name, err)
		}
		files[name] = string(b)
	}
	for _, u := range users {
		if hasEntry(files["passwd"], u.Name, u.UID) {
			return fmt.Errorf("user %s or uid %d exists in the image already", u.Name, u.UID)
		}
		shell := u.Shell
		if shell == "" {
			shell = "/usr/sbin/nologin"
		}
		files["passwd"] += fmt.Sprintf("%s:x:%d:%d::%s:%s\n", u.Name, u.UID, u.GID, u.Home, shell)
		files["shadow"] += u.Name + ":*:19000:0:99999:7:::\n"
		if !hasEntry(files["group"], u.Name, u.GID) {
			files["group"] += fmt.Sprintf("%s:x:%d:\n", u.Name, u.GID)
		}
		for _, g := range u.Groups {
			var err error
			if files["group"], err = addMember(files["group"], g, u.Name); err != nil {
				return err
			}
		}
	}
	for name, mode := range map[string]os.FileMode{"passwd": 0o644, "group": 0o644, "shadow": 0o640} {
		if err := replaceFile(filepath.Join(root, "etc", name), files[name], mode); err != nil {
			return err
		}
	}
	for _, u := range users {
		if !u.CreateHome {
			continue
		}
		home := filepath.Join(root, u.Home)
		if err := mkdirIn(root, u.Home); err != nil {
			return err
		}
		if err := mkdirIn(root, filepath.Join(u.Home, ".ssh")); err != nil {
			return err
		}
		for _, d := range []string{home, filepath.Join(home, ".ssh")} {
			if err := os.Chmod(d, 0o700); err != nil {
				return fmt.Errorf("home of %s: %w", u.Name, err)
			}
			if err := os.Lchown(d, u.UID, u.GID); err != nil {
				return fmt.Errorf("home of %s: %w", u.Name, err)
			}
		}
		// The shell's start files, as useradd copies them from /etc/skel.
		skel, _ := filepath.Glob(filepath.Join(root, "etc/skel/.*"))
		for _, s := range skel {
			b, err := os.ReadFile(s)
			if err != nil {
				continue
			}
			dst := filepath.Join(home, filepath.Base(s))
			if err := replaceFile(dst, string(b), 0o644); err != nil {
				return err
			}
			if err := os.Lchown(dst, u.UID, u.GID); err != nil {
				return fmt.Errorf("home of %s: %w", u.Name, err)
			}
		}
	}
	// shadow is root:shadow in Debian.
	if gid := lookupGroup(files["group"], "shadow"); gid >= 0 {
		if err := os.Lchown(filepath.Join(root, "etc/shadow"), 0, gid); err != nil {
			return fmt.Errorf("chown /etc/shadow: %w", err)
		}
	}
	return nil
}

// addMember adds user to the member list of group in a group-format file.
func addMember(file, group, user string) (string, error) {
	lines := strings.SplitAfter(file, "\n")
	for i, l := range lines {
		f := strings.Split(strings.TrimSuffix(l, "\n"), ":")
		if len(f) != 4 || f[0] != group {
			continue
		}
		if f[3] == "" {
			f[3] = user
		} else {
			f[3] += "," + user
		}
		lines[i] = strings.Join(f, ":") + "\n"
		return strings.Join(lines, ""), nil
	}
	return "", fmt.Errorf("group %s for user %s does not exist in the image", group, user)
}

// hasEntry reports whether a passwd- or group-format file has an entry with name or id.
func hasEntry(file, name string, id int) bool {
	sc := bufio.NewScanner(strings.NewReader(file))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) >= 3 && (f[0] == name || f[2] == strconv.Itoa(id)) {
			return true
		}
	}
	return false
}

func lookupGroup(file, name string) int {
	sc := bufio.NewScanner(strings.NewReader(file))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) >= 3 && f[0] == name {
			if n, err := strconv.Atoi(f[2]); err == nil {
				return n
			}
		}
	}
	return -1
}
