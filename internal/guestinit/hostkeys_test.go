package guestinit

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHostKeysFromNubis: host keys nubis made ahead of time are installed (no ssh-keygen run), with
// the modes sshd requires, and printed on the console.
func TestHostKeysFromNubis(t *testing.T) {
	root := newRoot(t, testConfig, nil)
	if err := os.MkdirAll(filepath.Join(root, "/etc/ssh"), 0o755); err != nil {
		t.Fatal(err)
	}
	pubs := map[string]string{
		"rsa":     "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDGbYsGmz0YjJ2w6GZLx5C+ZAHrw2dYQ4/lzL8g0Y9N7q0f9oR5zJ9KyW5yYt3aC5c0RcF0uFzQv3kF1p7nF1bEoL9cIlRfR1uV6lX5tQnK0C2eZ8r7rU1FhxuJ0b+fK7GcS4bT8e3p1Q2nXwZ5h2pLrW6m2n4g8YkP9q0Vn2c3dQ== root@ip-172-31-5-9",
		"ecdsa":   "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEj4LQKxzhi7AIo3lA0xezCVvwhIXcyOBOhfoa4QcXDFfk9QB/5+u1GXjrtST2WOZfDCuSHcRwqdlixxRE5of6c= root@ip-172-31-5-9",
		"ed25519": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIL2DxKokDDlGPCjKcRCjxjb5cJlvU71ZlebtQdp0X3u root@ip-172-31-5-9",
	}
	for typ, pub := range pubs {
		base := filepath.Join(root, HostKeysDir, "ssh_host_"+typ+"_key")
		writeTestFile(t, base, "PRIVATE "+typ+"\n")
		writeTestFile(t, base+".pub", pub+"\n")
	}
	console := &syncBuffer{}
	b := newTestBoot(t, root, console)
	if err := b.hostKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	for typ := range pubs {
		key := filepath.Join(root, "/etc/ssh/ssh_host_"+typ+"_key")
		fi, err := os.Stat(key)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", key, err, fi)
		}
		if got := readTestFile(t, key); got != "PRIVATE "+typ+"\n" {
			t.Fatalf("%s: %q", key, got)
		}
		if fi, err := os.Stat(key + ".pub"); err != nil || fi.Mode().Perm() != 0o644 {
			t.Fatalf("%s.pub: %v %v", key, err, fi)
		}
	}
	out := console.String()
	if strings.Contains(out, "ssh-keygen") || !strings.Contains(out, "BEGIN SSH HOST KEY KEYS") || !strings.Contains(out, pubs["ed25519"]) {
		t.Fatalf("console:\n%s", out)
	}
}

func TestResolvConf(t *testing.T) {
	cfg := testConfig
	cfg.Nameserver = "169.254.169.253"
	root := newRoot(t, cfg, nil)
	b := newTestBoot(t, root, &syncBuffer{})
	if err := b.writeResolvConf(); err != nil {
		t.Fatal(err)
	}
	got := readTestFile(t, filepath.Join(root, "/etc/resolv.conf"))
	if !strings.Contains(got, "search "+cfg.Domain+"\n") || !strings.HasSuffix(got, "nameserver 169.254.169.253\n") {
		t.Fatalf("resolv.conf:\n%s", got)
	}
}
