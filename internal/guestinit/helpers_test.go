package guestinit

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a console that tests can read while the init writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// Files of a small Debian-like image.
var imageFiles = map[string]string{
	"/etc/passwd": "root:x:0:0:root:/root:/bin/bash\n" +
		"daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n" +
		"sshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
	"/etc/group": "root:x:0:\nadm:x:4:\nshadow:x:42:\nutmp:x:43:\nsudo:x:27:\nusers:x:100:\nnogroup:x:65534:\n",
	"/etc/shadow": "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n" +
		"sshd:!:19000::::::\nnobody:*:19000:0:99999:7:::\n",
	"/etc/gshadow":      "root:*::\nadm:*::\nshadow:*::\nutmp:*::\nsudo:*::\nusers:*::\nnogroup:*::\n",
	"/etc/skel/.bashrc": "# bashrc\n",
	"/etc/sudoers":      "root ALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n",
	"/etc/hosts":        "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n",
	"/bin/bash":         "",
}

var testConfig = Config{
	InstanceID:  "i-0123456789abcdef0",
	Hostname:    "ip-172-31-5-9",
	Domain:      "ec2.internal",
	PrivateIP:   "172.31.5.9",
	DefaultUser: "ec2-user",
	PublicKeys:  []string{testKey},
}

const (
	testKey  = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIF+R6l1aNDx0zhClnrzgwZPmaBtB4VXF0rbU9chD1u/a key-1"
	testKey2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICn85HM8Gb+zTgQ/O3cnGi+4pBC4yHv0fWEuajJZF21u key-2"
)

// newRoot makes a fake instance root with the image files, cfg as instance.json and, if
// userData is not nil, user data.
func newRoot(t *testing.T, cfg Config, userData []byte) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range imageFiles {
		writeTestFile(t, filepath.Join(root, p), content)
	}
	os.Chmod(filepath.Join(root, "/etc/shadow"), 0o640)
	if err := os.Symlink("/bin/sh", filepath.Join(root, "/bin/sh")); err != nil { // the host's shell
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, StateDir), 0o755); err != nil {
		t.Fatal(err)
	}
	setConfig(t, root, cfg)
	if userData != nil {
		writeTestFile(t, filepath.Join(root, UserDataPath), string(userData))
	}
	return root
}

func setConfig(t *testing.T, root string, cfg Config) {
	t.Helper()
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(root, ConfigPath), string(data))
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readTestFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// testReaper is a reaper for one test, waiting only for the processes it starts.
func testReaper(t *testing.T) *reaper {
	r := newReaper(false)
	t.Cleanup(r.stop)
	return r
}

// newTestBoot returns a boot of the fake root, as the init would make it.
func newTestBoot(t *testing.T, root string, console *syncBuffer) *boot {
	t.Helper()
	p := &pid1{root: root, console: console, procs: testReaper(t), sshAddr: "127.0.0.1:1", start: time.Now()}
	b := p.newBoot(1)
	if b.cfgErr != nil {
		t.Fatal(b.cfgErr)
	}
	return b
}

// runBoot runs a whole boot of root and returns the console output.
func runBoot(t *testing.T, root string) string {
	t.Helper()
	console := &syncBuffer{}
	b := newTestBoot(t, root, console)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b.run(ctx)
	cancel()
	b.wg.Wait()
	return console.String()
}

func mustContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not contain %q:\n%s", what, sub, s)
		}
	}
}
