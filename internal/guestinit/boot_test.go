package guestinit

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestUpdateHosts(t *testing.T) {
	tests := []struct {
		name, hosts, want string
	}{
		{
			name:  "Debian's",
			hosts: "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n",
			want:  "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n172.31.5.9\tip-172-31-5-9.ec2.internal ip-172-31-5-9\n",
		},
		{
			name:  "none",
			hosts: "",
			want:  defaultHosts + "172.31.5.9\tip-172-31-5-9.ec2.internal ip-172-31-5-9\n",
		},
		{
			name:  "idempotent",
			hosts: "127.0.0.1\tlocalhost\n172.31.5.9\tip-172-31-5-9.ec2.internal ip-172-31-5-9\n",
			want:  "127.0.0.1\tlocalhost\n172.31.5.9\tip-172-31-5-9.ec2.internal ip-172-31-5-9\n",
		},
		{
			name:  "an old address and 127.0.1.1 go, other names and comments stay",
			hosts: "# static\n127.0.0.1 localhost ip-172-31-5-9\n127.0.1.1 ip-172-31-5-9\n10.0.0.1 ip-172-31-5-9.ec2.internal db # the db\n",
			want:  "# static\n127.0.0.1\tlocalhost\n10.0.0.1\tdb # the db\n172.31.5.9\tip-172-31-5-9.ec2.internal ip-172-31-5-9\n",
		},
		{
			name:  "no final newline",
			hosts: "127.0.0.1 localhost",
			want:  "127.0.0.1 localhost\n172.31.5.9\tip-172-31-5-9.ec2.internal ip-172-31-5-9\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(updateHosts([]byte(tt.hosts), "172.31.5.9", "ip-172-31-5-9.ec2.internal", "ip-172-31-5-9"))
			if got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestHostnameAndRun(t *testing.T) {
	root := newRoot(t, testConfig, nil)
	os.MkdirAll(filepath.Join(root, "var"), 0o755)
	b := newTestBoot(t, root, &syncBuffer{})
	for _, step := range []func() error{b.setupRun, b.writeHostname} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	if got := readTestFile(t, filepath.Join(root, "/etc/hostname")); got != "ip-172-31-5-9\n" {
		t.Errorf("hostname %q", got)
	}
	mustContain(t, "hosts", readTestFile(t, filepath.Join(root, "/etc/hosts")), "172.31.5.9\tip-172-31-5-9.ec2.internal ip-172-31-5-9\n", "127.0.0.1\tlocalhost\n")
	for p, mode := range map[string]os.FileMode{
		"/run/sshd": os.ModeDir | 0o755,
		"/run/lock": os.ModeDir | os.ModeSticky | 0o777,
		"/run/user": os.ModeDir | 0o755,
		"/run/utmp": 0o664,
	} {
		fi, err := os.Stat(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), mode)
		}
	}
	if target, err := os.Readlink(filepath.Join(root, "/var/run")); err != nil || target != "/run" {
		t.Errorf("/var/run -> %q %v", target, err)
	}
}

func TestCheckConfig(t *testing.T) {
	cfg := Config{InstanceID: "../../etc", DefaultUser: "root:x", Hostname: "a b", Domain: "ok.example", PrivateIP: "1.2.3.4 evil"}
	b := &boot{root: "/tmp/x", cfg: cfg}
	err := b.checkConfig()
	if err == nil {
		t.Fatal("no error")
	}
	if c := b.cfg; c.InstanceID != "" || c.DefaultUser != "" || c.Hostname != "" || c.PrivateIP != "" || c.Domain != "ok.example" {
		t.Errorf("config kept bad values: %+v", b.cfg)
	}
}

func TestLinkPowerCommands(t *testing.T) {
	root := newRoot(t, testConfig, nil)
	// /sbin -> usr/sbin as in Debian; halt is the image's own, reboot systemd's.
	os.MkdirAll(filepath.Join(root, "usr/sbin"), 0o755)
	os.Symlink("usr/sbin", filepath.Join(root, "sbin"))
	writeTestFile(t, filepath.Join(root, "usr/sbin/halt"), "#!/bin/sh\n")
	os.Symlink("/bin/systemctl", filepath.Join(root, "usr/sbin/reboot"))
	b := newTestBoot(t, root, &syncBuffer{})
	for i := 0; i < 2; i++ {
		if err := b.linkPowerCommands(); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]string{"shutdown": BinaryPath, "poweroff": BinaryPath, "reboot": BinaryPath, "halt": ""} {
		got, _ := os.Readlink(filepath.Join(root, "usr/local/sbin", name))
		if got != want {
			t.Errorf("%s -> %q, want %q", name, got, want)
		}
	}
}

func TestHostKeyBlock(t *testing.T) {
	dir := t.TempDir()
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	for name, key := range map[string]any{"ed25519": edKey, "ecdsa": ecKey, "rsa": rsaKey} {
		signer, err := ssh.NewSignerFromKey(key)
		if err != nil {
			t.Fatal(err)
		}
		line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " root@ip-172-31-5-9\n"
		writeTestFile(t, filepath.Join(dir, "ssh_host_"+name+"_key.pub"), line)
	}
	writeTestFile(t, filepath.Join(dir, "ssh_host_dsa_key.pub"), "ssh-dss AAAAB3NzaC1kc3MAAACBAP root@x\n")
	block, err := hostKeyBlock(dir)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(block, "\n")
	if len(lines) != 14 || lines[0] != "" || lines[1] != strings.Repeat("#", 61) ||
		lines[2] != "-----BEGIN SSH HOST KEY FINGERPRINTS-----" || lines[6] != "-----END SSH HOST KEY FINGERPRINTS-----" ||
		lines[7] != lines[1] || lines[8] != "-----BEGIN SSH HOST KEY KEYS-----" ||
		!strings.HasPrefix(lines[9], "ecdsa-sha2-nistp256 ") || lines[12] != "-----END SSH HOST KEY KEYS-----" || lines[13] != "" {
		t.Fatalf("block:\n%s", block)
	}
	for i, typ := range []string{"256 SHA256:.* root@ip-172-31-5-9 (ECDSA)", "256 SHA256:.* root@ip-172-31-5-9 (ED25519)", "2048 SHA256:.* root@ip-172-31-5-9 (RSA)"} {
		prefix, suffix, _ := strings.Cut(typ, ".*")
		if l := lines[3+i]; !strings.HasPrefix(l, prefix) || !strings.HasSuffix(l, suffix) {
			t.Errorf("fingerprint line %q, want %s", l, typ)
		}
	}
	// The same lines as `ssh-keygen -l -f`, where the host has it.
	if keygen, err := exec.LookPath("ssh-keygen"); err == nil {
		for i, name := range []string{"ecdsa", "ed25519", "rsa"} {
			out, err := exec.Command(keygen, "-l", "-f", filepath.Join(dir, "ssh_host_"+name+"_key.pub")).Output()
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(out)); got != lines[3+i] {
				t.Errorf("ssh-keygen -l: %q, ours %q", got, lines[3+i])
			}
		}
	}
	if empty, err := hostKeyBlock(t.TempDir()); err != nil || empty != "" {
		t.Errorf("no keys: %q %v", empty, err)
	}
}

func TestHostKeysGenerated(t *testing.T) {
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("no ssh-keygen")
	}
	root := newRoot(t, testConfig, nil)
	os.MkdirAll(filepath.Join(root, "etc/ssh"), 0o755)
	os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755)
	if err := os.Symlink(keygen, filepath.Join(root, keygenPath)); err != nil {
		t.Fatal(err)
	}
	console := &syncBuffer{}
	b := newTestBoot(t, root, console)
	if err := b.hostKeys(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, typ := range hostKeyTypes {
		if _, err := os.Stat(filepath.Join(root, "etc/ssh/ssh_host_"+typ+"_key")); err != nil {
			t.Error(err)
		}
	}
	out := console.String()
	mustContain(t, "console", out, "-----BEGIN SSH HOST KEY FINGERPRINTS-----", "(ED25519)", "-----BEGIN SSH HOST KEY KEYS-----\necdsa-sha2-nistp256 ")
	// The keys stay: a second boot prints the same block and makes none.
	old := readTestFile(t, filepath.Join(root, "etc/ssh/ssh_host_ed25519_key.pub"))
	console2 := &syncBuffer{}
	b.console = console2
	if err := b.hostKeys(t.Context()); err != nil {
		t.Fatal(err)
	}
	if readTestFile(t, filepath.Join(root, "etc/ssh/ssh_host_ed25519_key.pub")) != old || strings.Contains(console2.String(), "generating") {
		t.Errorf("keys made again:\n%s", console2.String())
	}
}

type readyFile struct {
	Boot int    `json:"boot"`
	Time string `json:"time"`
}

func readReady(t *testing.T, root string) readyFile {
	t.Helper()
	var r readyFile
	if err := json.Unmarshal([]byte(readTestFile(t, filepath.Join(root, StateDir, ReadyFile))), &r); err != nil {
		t.Fatal(err)
	}
	if _, err := time.Parse(time.RFC3339, r.Time); err != nil {
		t.Errorf("ready time: %v", err)
	}
	return r
}

func TestUserDataScriptOncePerInstance(t *testing.T) {
	root := t.TempDir()
	counter := filepath.Join(root, "count")
	script := "#!/bin/sh\necho \"hello from $(pwd) as $(id -u)\"\necho ran >> " + counter + "\necho to stderr >&2\n"
	root = newRootAt(t, root, testConfig, gz(t, script))
	out := runBoot(t, root)
	mustContain(t, "console", out, "running 'init'", "hello from ", "to stderr", "finished at ", "Datasource DataSourceEc2Local.  Up ")
	if got := readTestFile(t, counter); got != "ran\n" {
		t.Fatalf("count %q", got)
	}
	inst := filepath.Join(root, cloudDir, "instances", testConfig.InstanceID)
	if got := readTestFile(t, filepath.Join(inst, "scripts/part-001")); got != script {
		t.Errorf("part-001 %q", got)
	}
	if fi, _ := os.Stat(filepath.Join(inst, "scripts/part-001")); fi.Mode().Perm() != 0o700 {
		t.Errorf("part-001 mode %v", fi.Mode())
	}
	if target, _ := os.Readlink(filepath.Join(root, instanceLink)); target != "instances/"+testConfig.InstanceID {
		t.Errorf("instance link -> %q", target)
	}
	mustContain(t, "boot-finished", readTestFile(t, filepath.Join(inst, "boot-finished")), " - v. "+ciVersion)
	log := readTestFile(t, filepath.Join(root, outputLog))
	mustContain(t, "output log", log, "Cloud-init v. "+ciVersion+" running 'modules:final' at ",
		"hello from "+root+" as ", "to stderr\n", "Cloud-init v. "+ciVersion+" finished at ")
	if fi, _ := os.Stat(filepath.Join(root, outputLog)); fi.Mode().Perm() != 0o640 {
		t.Errorf("output log mode %v", fi.Mode())
	}
	if r := readReady(t, root); r.Boot != 1 {
		t.Errorf("ready %+v", r)
	}

	// Same instance, next start: not again.
	runBoot(t, root)
	if got := readTestFile(t, counter); got != "ran\n" {
		t.Fatalf("second boot ran the user data again: %q", got)
	}
	// A new instance (an image made from this disk): again.
	cfg := testConfig
	cfg.InstanceID = "i-0fedcba9876543210"
	setConfig(t, root, cfg)
	runBoot(t, root)
	if got := readTestFile(t, counter); got != "ran\nran\n" {
		t.Fatalf("a new instance did not run the user data: %q", got)
	}
	if target, _ := os.Readlink(filepath.Join(root, instanceLink)); target != "instances/"+cfg.InstanceID {
		t.Errorf("instance link -> %q", target)
	}
}

// newRootAt is newRoot in a directory the test already made.
func newRootAt(t *testing.T, root string, cfg Config, userData []byte) string {
	t.Helper()
	r := newRoot(t, cfg, userData)
	entries, _ := os.ReadDir(r)
	for _, e := range entries {
		if err := os.Rename(filepath.Join(r, e.Name()), filepath.Join(root, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestUserDataScriptFails(t *testing.T) {
	root := newRoot(t, testConfig, []byte("#!/bin/sh\necho failing\nexit 3\n"))
	out := runBoot(t, root)
	log := readTestFile(t, filepath.Join(root, outputLog))
	for _, s := range []string{out, log} {
		mustContain(t, "log", s, "failing", "Failed running /var/lib/cloud/instance/scripts/part-001 [3]",
			"Failed to run module scripts-user (scripts in /var/lib/cloud/instance/scripts)", "finished at ")
	}
	readReady(t, root)
}

func TestUnsupportedUserData(t *testing.T) {
	root := newRoot(t, testConfig, []byte("Content-Type: multipart/mixed; boundary=x\n\n--x\n"))
	runBoot(t, root)
	mustContain(t, "output log", readTestFile(t, filepath.Join(root, outputLog)), "Unhandled user data (MIME multi-part archive)", "finished at ")
}

func TestCloudConfigBoot(t *testing.T) {
	root := t.TempDir()
	marks := filepath.Join(root, "marks")
	cc := `#cloud-config
bootcmd:
  - echo "boot $INSTANCE_ID" >> ` + marks + `
runcmd:
  - echo "runcmd $(cat ` + root + `/etc/app.conf)" >> ` + marks + `
  - [sh, -c, "echo 'list form' >> ` + marks + `"]
  - exit 5
users:
  - default
  - name: app
write_files:
  - path: /etc/app.conf
    content: configured
    permissions: '0600'
  - path: /home/app/deferred
    content: ZGVmZXJyZWQ=
    encoding: base64
    owner: app:app
    defer: true
  - path: /etc/appended
    content: "more\n"
    append: true
  - path: /etc/binary
    content: !!binary aGVsbG8=
packages: [jq, curl]
hostname: other
frobnicate: 1
final_message: "all done in $UPTIME seconds"
`
	root = newRootAt(t, root, testConfig, []byte(cc))
	writeTestFile(t, filepath.Join(root, "/etc/appended"), "first\n")
	out := runBoot(t, root)
	if got := readTestFile(t, marks); got != "boot "+testConfig.InstanceID+"\nruncmd configured\nlist form\n" {
		t.Errorf("marks %q", got)
	}
	if got := readTestFile(t, filepath.Join(root, "/etc/appended")); got != "first\nmore\n" {
		t.Errorf("appended %q", got)
	}
	if got := readTestFile(t, filepath.Join(root, "/etc/binary")); got != "hello" {
		t.Errorf("binary %q", got)
	}
	if fi, _ := os.Stat(filepath.Join(root, "/etc/app.conf")); fi.Mode().Perm() != 0o600 {
		t.Errorf("app.conf mode %v", fi.Mode())
	}
	deferred := filepath.Join(root, "/home/app/deferred")
	if got := readTestFile(t, deferred); got != "deferred" {
		t.Errorf("deferred %q", got)
	}
	if fi, _ := os.Stat(deferred); os.Geteuid() == 0 && fi.Sys().(*syscall.Stat_t).Uid != 1001 {
		t.Errorf("deferred file owned by %d, want app (1001)", fi.Sys().(*syscall.Stat_t).Uid)
	}
	mustContain(t, "runcmd script", readTestFile(t, filepath.Join(root, cloudDir, "instances", testConfig.InstanceID, "scripts/runcmd")),
		"#!/bin/sh\necho \"runcmd $(cat "+root+"/etc/app.conf)\" >> ")
	log := readTestFile(t, filepath.Join(root, outputLog))
	mustContain(t, "output log", log,
		"skipping unknown module 'frobnicate'",
		"hostname/fqdn: the host name cannot be changed",
		"package installation is not available offline; not installing: jq curl",
		"Failed running /var/lib/cloud/instance/scripts/runcmd [5]",
		"all done in ")
	mustContain(t, "console", out, "all done in ")

	// Second boot: bootcmd again, the rest not.
	runBoot(t, root)
	if got := readTestFile(t, marks); got != "boot "+testConfig.InstanceID+"\nruncmd configured\nlist form\nboot "+testConfig.InstanceID+"\n" {
		t.Errorf("marks after the second boot %q", got)
	}
	if got := readTestFile(t, filepath.Join(root, "/etc/appended")); got != "first\nmore\n" {
		t.Errorf("appended again: %q", got)
	}
}

func TestMalformedCloudConfigBoots(t *testing.T) {
	root := newRoot(t, testConfig, []byte("#cloud-config\nruncmd: [unclosed\n"))
	runBoot(t, root)
	mustContain(t, "output log", readTestFile(t, filepath.Join(root, outputLog)), "Failed loading yaml blob", "finished at ")
	readReady(t, root)
	checkKeys(t, root, "ec2-user", 1000, testKey)
}

func TestBootWithoutConfig(t *testing.T) {
	root := newRoot(t, testConfig, nil)
	os.Remove(filepath.Join(root, ConfigPath))
	console := &syncBuffer{}
	p := &pid1{root: root, console: console, procs: testReaper(t), sshAddr: "127.0.0.1:1", start: time.Now()}
	b := p.newBoot(1)
	b.run(t.Context())
	mustContain(t, "console", console.String(), "read instance config", "finished at ")
	readReady(t, root)
}
