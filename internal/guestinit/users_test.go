package guestinit

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestFreeID(t *testing.T) {
	used := map[int]bool{1000: true, 1001: true, 999: true, 100: true}
	tests := []struct {
		name   string
		system bool
		want   int
		id     int
	}{
		{"first free user id", false, 0, 1002},
		{"wanted and free", false, 1500, 1500},
		{"wanted but used", false, 1000, 1002},
		{"system: highest free", true, 0, 998},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := freeID(used, tt.system, tt.want)
			if err != nil || id != tt.id {
				t.Errorf("got %d %v, want %d", id, err, tt.id)
			}
		})
	}
}

func TestDefaultUser(t *testing.T) {
	root := newRoot(t, testConfig, nil)
	console := &syncBuffer{}
	b := newTestBoot(t, root, console)
	for i := 0; i < 2; i++ { // the second boot changes nothing
		if err := b.defaultUser(); err != nil {
			t.Fatal(err)
		}
	}
	passwd := readTestFile(t, filepath.Join(root, "/etc/passwd"))
	mustContain(t, "passwd", passwd, "ec2-user:x:1000:1000:EC2 Default User:/home/ec2-user:/bin/bash\n")
	if strings.Count(passwd, "ec2-user") != 2 {
		t.Errorf("passwd:\n%s", passwd)
	}
	group := readTestFile(t, filepath.Join(root, "/etc/group"))
	mustContain(t, "group", group, "adm:x:4:ec2-user\n", "sudo:x:27:ec2-user\n", "ec2-user:x:1000:\n")
	if strings.Contains(group, "wheel") || strings.Contains(group, "systemd-journal") {
		t.Errorf("the default user's missing groups were created:\n%s", group)
	}
	mustContain(t, "gshadow", readTestFile(t, filepath.Join(root, "/etc/gshadow")), "adm:*::ec2-user\n", "ec2-user:!::\n")
	shadow := readTestFile(t, filepath.Join(root, "/etc/shadow"))
	if !strings.Contains(shadow, "\nec2-user:*:") {
		t.Errorf("shadow (want a '*' password: no password, keys allowed without PAM):\n%s", shadow)
	}
	if fi, _ := os.Stat(filepath.Join(root, "/etc/shadow")); fi.Mode().Perm() != 0o640 {
		t.Errorf("shadow mode %v", fi.Mode())
	}
	sudoers := filepath.Join(root, sudoersFile)
	s := readTestFile(t, sudoers)
	mustContain(t, "sudoers", s, "# Created by cloud-init v. ", "\n# User rules for ec2-user\nec2-user ALL=(ALL) NOPASSWD:ALL\n")
	if strings.Count(s, "NOPASSWD") != 1 {
		t.Errorf("sudoers:\n%s", s)
	}
	if fi, _ := os.Stat(sudoers); fi.Mode().Perm() != 0o440 {
		t.Errorf("sudoers mode %v", fi.Mode())
	}
	if got := readTestFile(t, filepath.Join(root, "/home/ec2-user/.bashrc")); got != "# bashrc\n" {
		t.Errorf(".bashrc from skel: %q", got)
	}
	checkKeys(t, root, "ec2-user", 1000, testKey)

	// A new key pair's key is added; the old stays.
	b.cfg.PublicKeys = []string{testKey2, testKey}
	if err := b.defaultUser(); err != nil {
		t.Fatal(err)
	}
	checkKeys(t, root, "ec2-user", 1000, testKey, testKey2)
}

// checkKeys checks ~user/.ssh/authorized_keys holds keys, in order, with sshd's modes.
func checkKeys(t *testing.T, root, user string, uid int, keys ...string) {
	t.Helper()
	dir := filepath.Join(root, "/home", user, ".ssh")
	file := filepath.Join(dir, "authorized_keys")
	if got, want := readTestFile(t, file), strings.Join(keys, "\n")+"\n"; got != want {
		t.Errorf("authorized_keys:\n%s\nwant:\n%s", got, want)
	}
	for p, mode := range map[string]os.FileMode{dir: 0o700, file: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), mode)
		}
		if os.Geteuid() == 0 && int(fi.Sys().(*syscall.Stat_t).Uid) != uid {
			t.Errorf("%s: owner %d, want %d", p, fi.Sys().(*syscall.Stat_t).Uid, uid)
		}
	}
}

func TestExistingDefaultUser(t *testing.T) {
	root := newRoot(t, testConfig, nil)
	// The image made the user (as nubis's image builder does) with a key already there.
	writeTestFile(t, filepath.Join(root, "/etc/passwd"), imageFiles["/etc/passwd"]+"ec2-user:x:1000:1000::/home/ec2-user:/bin/bash\n")
	writeTestFile(t, filepath.Join(root, "/home/ec2-user/.ssh/authorized_keys"), "no-pty "+testKey2)
	writeTestFile(t, filepath.Join(root, sudoersFile), "# User rules for ec2-user\nec2-user ALL=(ALL) NOPASSWD:ALL\n")
	b := newTestBoot(t, root, &syncBuffer{})
	if err := b.defaultUser(); err != nil {
		t.Fatal(err)
	}
	if got := readTestFile(t, filepath.Join(root, "/etc/passwd")); strings.Count(got, "ec2-user") != 2 {
		t.Errorf("passwd:\n%s", got)
	}
	if _, err := os.Stat(filepath.Join(root, "/home/ec2-user/.bashrc")); err == nil {
		t.Error("skel copied into an existing user's home")
	}
	checkKeys(t, root, "ec2-user", 1000, "no-pty "+testKey2, testKey)
	if got := readTestFile(t, filepath.Join(root, sudoersFile)); strings.Count(got, "NOPASSWD") != 1 {
		t.Errorf("sudo rule added twice:\n%s", got)
	}
}

func TestAuthorizedKeysSymlink(t *testing.T) {
	root := newRoot(t, testConfig, nil)
	b := newTestBoot(t, root, &syncBuffer{})
	if err := b.defaultUser(); err != nil {
		t.Fatal(err)
	}
	ssh := filepath.Join(root, "/home/ec2-user/.ssh")
	os.RemoveAll(ssh)
	target := t.TempDir()
	os.Symlink(target, ssh)
	b.cfg.PublicKeys = []string{testKey2}
	if err := b.defaultUser(); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("err %v", err)
	}
	if entries, _ := os.ReadDir(target); len(entries) != 0 {
		t.Errorf("wrote through the symlink: %v", entries)
	}
}

func TestCloudConfigUsers(t *testing.T) {
	root := newRoot(t, testConfig, nil)
	b := newTestBoot(t, root, &syncBuffer{})
	ud := parseUserData([]byte(`#cloud-config
groups:
  - devs: [root]
  - empty
users:
  - default
  - name: bob
    gecos: Bob B
    groups: [devs, docker]
    sudo: ["ALL=(ALL) /bin/ls", "ALL=(root) NOPASSWD: /bin/cat"]
    ssh_authorized_keys: [` + testKey2 + `]
  - name: svc
    system: true
    shell: /usr/sbin/nologin
  - name: carol
    uid: 2001
    lock_passwd: false
    hashed_passwd: $6$salt$hash
    homedir: /srv/carol
    sudo: false
  - name: "bad:name"
ssh_authorized_keys:
  - ` + testKey2 + `
`))
	if len(ud.warnings) > 0 {
		t.Fatal(ud.warnings)
	}
	b.step(t.Context(), "default user", b.defaultUser)
	b.applyConfig(ud.config)
	passwd := readTestFile(t, filepath.Join(root, "/etc/passwd"))
	mustContain(t, "passwd", passwd,
		"bob:x:1001:1001:Bob B:/home/bob:/bin/bash\n",
		"svc:x:996:996::/nonexistent:/usr/sbin/nologin\n",
		"carol:x:2001:2001::/srv/carol:/bin/bash\n")
	if strings.Contains(passwd, "bad") {
		t.Errorf("invalid user added:\n%s", passwd)
	}
	group := readTestFile(t, filepath.Join(root, "/etc/group"))
	mustContain(t, "group", group, "root:x:0:\n", "devs:x:999:root,bob\n", "empty:x:998:\n", "docker:x:997:bob\n")
	shadow := readTestFile(t, filepath.Join(root, "/etc/shadow"))
	mustContain(t, "shadow", shadow, "\ncarol:$6$salt$hash:", "\nbob:*:")
	mustContain(t, "sudoers", readTestFile(t, filepath.Join(root, sudoersFile)),
		"\n# User rules for bob\nbob ALL=(ALL) /bin/ls\nbob ALL=(root) NOPASSWD: /bin/cat\n")
	checkKeys(t, root, "bob", 1001, testKey2)
	checkKeys(t, root, "ec2-user", 1000, testKey, testKey2)
	if _, err := os.Stat(filepath.Join(root, "/srv/carol")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(root, "/nonexistent")); err == nil {
		t.Error("a home was made for a system user")
	}
	mustContain(t, "output log", readTestFile(t, filepath.Join(root, outputLog)), `invalid user name "bad:name"`)
}

func TestOwner(t *testing.T) {
	root := newRoot(t, testConfig, nil)
	b := newTestBoot(t, root, &syncBuffer{})
	tests := []struct {
		spec     string
		uid, gid int
		err      bool
	}{
		{"root:root", 0, 0, false},
		{"sshd", 100, 65534, false},
		{"daemon:adm", 1, 4, false},
		{"1234:5678", 1234, 5678, false},
		{":adm", 0, 4, false},
		{"nobody:nosuch", 0, 0, true},
		{"nosuch", 0, 0, true},
	}
	for _, tt := range tests {
		uid, gid, err := b.owner(tt.spec)
		if (err != nil) != tt.err || (!tt.err && (uid != tt.uid || gid != tt.gid)) {
			t.Errorf("%q: %d:%d %v", tt.spec, uid, gid, err)
		}
	}
}
