package image

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nubis/nubis/internal/mountinfo"
	"github.com/nubis/nubis/internal/testenv"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestHashStable(t *testing.T) {
	a := Recipe{Name: "x", Suite: "bookworm", Variant: "minbase", Packages: []string{"b", "a", "a"}}
	b := Recipe{Name: "x", Suite: "bookworm", Variant: "minbase", Packages: []string{"a", "b"}}
	if a.Hash() != b.Hash() {
		t.Errorf("package order or duplicates changed the hash: %s vs %s", a.Hash(), b.Hash())
	}
	c := b
	c.Packages = []string{"a", "b", "c"}
	if c.Hash() == b.Hash() {
		t.Error("adding a package did not change the hash")
	}
	d := b
	d.Suite = "trixie"
	if d.Hash() == b.Hash() {
		t.Error("changing the suite did not change the hash")
	}
	if len(a.Hash()) != 16 {
		t.Errorf("hash %q: want 16 hex digits", a.Hash())
	}
	// Golden: the hash of LambdaRuntime names the shared cache entry; it changes only on purpose
	// (a recipe change or a formatVersion bump), never by accident.
	if got, want := LambdaRuntime.ID(), "lambda-runtime-"+LambdaRuntime.Hash(); got != want {
		t.Errorf("ID %q, want %q", got, want)
	}
}

func TestValidate(t *testing.T) {
	if err := LambdaRuntime.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []Recipe{
		{Name: "", Suite: "bookworm"},
		{Name: "Upper", Suite: "bookworm"},
		{Name: "x", Suite: "--foreign"},
		{Name: "x", Suite: "bookworm", Packages: []string{"--include=evil"}},
		{Name: "x", Suite: "bookworm", Packages: []string{"a,b"}},
		{Name: "x", Suite: "bookworm", Variant: "-x"},
		{Name: "x", Suite: "bookworm", Users: []User{{Name: "root", UID: 0, GID: 0, Home: "/"}}},
		{Name: "x", Suite: "bookworm", Users: []User{{Name: "u:x", UID: 5, GID: 5, Home: "/"}}},
		{Name: "x", Suite: "bookworm", Users: []User{{Name: "u", UID: 5, GID: 5, Home: "rel"}}},
		{Name: "x", Suite: "bookworm", Dirs: []string{"/a/../../etc"}},
		{Name: "x", Suite: "bookworm", Dirs: []string{"/"}},
	}
	for _, r := range bad {
		if err := r.Validate(); err == nil {
			t.Errorf("%+v: accepted", r)
		}
	}
}

func TestHostMirror(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sources.list.d"), 0o755)
	os.WriteFile(filepath.Join(dir, "sources.list.d", "a.list"),
		[]byte("# comment\ndeb-src http://src/ bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://other/ nodistro main\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "sources.list.d", "debian.sources"), []byte(
		"Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n"+
			"Types: deb\n# a comment\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\nComponents: main contrib\n"), 0o644)
	if got := hostMirror(dir, "bookworm"); got != "http://mirror.example/debian" {
		t.Errorf("deb822: got %q", got)
	}
	os.WriteFile(filepath.Join(dir, "sources.list"), []byte("deb [trusted=yes] http://list.example/debian bookworm main\n"), 0o644)
	if got := hostMirror(dir, "bookworm"); got != "http://list.example/debian" {
		t.Errorf("sources.list: got %q", got)
	}
	if got := hostMirror(dir, "trixie"); got != DefaultMirror {
		t.Errorf("unknown suite: got %q", got)
	}
	t.Logf("this host: %s", HostMirror("bookworm"))
}

func TestUnescapeMountinfo(t *testing.T) {
	if got := mountinfo.Unescape(`/a\040b\134c`); got != `/a b\c` {
		t.Errorf("got %q", got)
	}
	if got := mountinfo.Unescape(`/x\04`); got != `/x\04` {
		t.Errorf("got %q", got)
	}
}

// TestEnsureOnce runs concurrent Ensure calls against a stand-in debootstrap (a shell script that
// writes a tiny tree slowly) to check that exactly one build happens, that the result is
// published atomically and cleaned, and that a failed build leaves nothing behind.
func TestEnsureOnce(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	script := filepath.Join(dir, "fake-debootstrap")
	os.WriteFile(script, []byte(`#!/bin/sh
set -e
echo run >> `+count+`
for a; do suite=$target; target=$mirror; mirror=$a; done
[ "$suite" = fail ] && { echo "E: no such suite" >&2; exit 1; }
mkdir -p "$target/etc" "$target/var/cache/apt/archives/partial" "$target/var/lib/apt/lists/partial" "$target/usr/bin"
echo host-dns > "$target/etc/resolv.conf"
echo host > "$target/etc/hostname"
echo "root:x:0:0:root:/root:/bin/bash" > "$target/etc/passwd"
echo "root:x:0:" > "$target/etc/group"
touch "$target/var/cache/apt/archives/x.deb" "$target/var/lib/apt/lists/deb.debian.org_Packages" "$target/usr/bin/python3"
echo "I: Base system installed successfully."
sleep 1
`), 0o755)
	b := &Builder{CacheDir: filepath.Join(dir, "cache"), Debootstrap: script, Log: testLogger(t), Mirror: "http://mirror.invalid/debian"}
	r := Recipe{Name: "fake", Suite: "bookworm", Variant: "minbase", Packages: []string{"python3"}, Dirs: []string{"/var/task"},
		Users: []User{{Name: "sbx", UID: 993, GID: 990, Home: "/home/sbx"}}}
	var wg sync.WaitGroup
	paths := make([]string, 4)
	errs := make([]error, 4)
	for i := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			paths[i], errs[i] = b.Ensure(context.Background(), r)
		}()
	}
	wg.Wait()
	for i := range paths {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if paths[i] != b.Path(r) {
			t.Errorf("path %q, want %q", paths[i], b.Path(r))
		}
	}
	if n, _ := os.ReadFile(count); strings.Count(string(n), "run") != 1 {
		t.Errorf("debootstrap ran %d times, want once", strings.Count(string(n), "run"))
	}
	root := b.Path(r)
	check := func(name, want string) {
		t.Helper()
		got, err := os.ReadFile(filepath.Join(root, name))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
	check("etc/resolv.conf", "")
	if fi, err := os.Stat(filepath.Join(root, "var/task")); err != nil || !fi.IsDir() {
		t.Errorf("var/task: %v", err)
	}
	check("etc/hostname", "localhost\n")
	check("etc/passwd", "root:x:0:0:root:/root:/bin/bash\nsbx:x:993:990::/home/sbx:/usr/sbin/nologin\n")
	for _, gone := range []string{"var/cache/apt/archives/x.deb", "var/lib/apt/lists/deb.debian.org_Packages"} {
		if _, err := os.Stat(filepath.Join(root, gone)); err == nil {
			t.Errorf("%s left in the image", gone)
		}
	}
	if m, err := b.ReadManifest(r); err != nil || m.Hash != r.Hash() || m.Mirror != "http://mirror.invalid/debian" {
		t.Errorf("manifest %+v, %v", m, err)
	}

	// A failing build returns the tool's words and leaves no temporary tree.
	fail := Recipe{Name: "fake", Suite: "fail"}
	if _, err := b.Ensure(context.Background(), fail); err == nil || !strings.Contains(err.Error(), "no such suite") {
		t.Errorf("failed build: err %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(b.CacheDir, ".*build*"))
	if len(left) > 0 {
		t.Errorf("failed build left %v", left)
	}
}

// TestLambdaRuntime builds (once per machine; later runs reuse the cache) the root the Lambda
// runtimes use, and checks the interpreters are in it and nothing of the host is.
func TestLambdaRuntime(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: builds a Debian root")
	}
	testenv.Need(t, os.Geteuid() == 0, "debootstrap needs root")
	_, err := exec.LookPath("debootstrap")
	if err != nil {
		_, err = os.Stat("/usr/sbin/debootstrap")
	}
	testenv.Need(t, err == nil, "debootstrap is not installed (apt-get install debootstrap)")

	b := &Builder{CacheDir: os.Getenv("NUBIS_IMAGE_CACHE"), Log: testLogger(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	root, err := b.Ensure(ctx, LambdaRuntime)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Ensure took %v: %s", time.Since(start).Round(time.Millisecond), root)
	if m, err := b.ReadManifest(LambdaRuntime); err == nil {
		t.Logf("built %s in %s from %s, %d MB", m.BuiltAt.Format(time.RFC3339), m.BuildTime, m.Mirror, m.SizeBytes>>20)
	}
	for _, f := range []string{"usr/bin/python3", "usr/bin/node", "etc/ssl/certs/ca-certificates.crt", "var/task", "opt"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/resolv.conf")); len(b) != 0 {
		t.Errorf("etc/resolv.conf not empty: %q", b)
	}
	host, _ := os.Hostname()
	if b, _ := os.ReadFile(filepath.Join(root, "etc/hostname")); strings.Contains(string(b), host) && host != "localhost" {
		t.Errorf("etc/hostname has the host's name: %q", b)
	}
	if debs, _ := filepath.Glob(filepath.Join(root, "var/cache/apt/archives/*.deb")); len(debs) > 0 {
		t.Errorf("%d .deb files left in the image", len(debs))
	}
	if docs, _ := filepath.Glob(filepath.Join(root, "usr/share/man/*")); len(docs) > 0 {
		t.Errorf("man pages left: %v", docs)
	}
	if pw, _ := os.ReadFile(filepath.Join(root, "etc/passwd")); !strings.Contains(string(pw), "sbx_user1051:x:993:990:") {
		t.Errorf("etc/passwd lacks sbx_user1051")
	}
	if fi, err := os.Stat(filepath.Join(root, "etc/shadow")); err != nil || fi.Mode().Perm() != 0o640 ||
		fi.Sys().(*syscall.Stat_t).Gid != 42 {
		t.Errorf("etc/shadow: %v %v, want 0640 root:shadow", fi.Mode(), err)
	}
}
