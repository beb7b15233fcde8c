// Package testenv decides what a test does when this machine lacks something it needs (root,
// runc, an interpreter, a client): skip with the reason, or, under NUBIS_REQUIRE_ALL=1 as CI runs
// (where `make deps` has installed everything), fail.
package testenv

import (
	"context"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// RequireAll reports whether a missing capability fails tests instead of skipping them.
func RequireAll() bool { return os.Getenv("NUBIS_REQUIRE_ALL") == "1" }

// Need skips the test, saying why, unless ok; under NUBIS_REQUIRE_ALL=1 it fails it instead.
func Need(t testing.TB, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if RequireAll() {
		t.Fatalf("requirement missing (NUBIS_REQUIRE_ALL=1): %s", why)
	}
	t.Skipf("skipped: %s (make deps installs what tests need; NUBIS_REQUIRE_ALL=1 makes this a failure)", why)
}

// LockInstances holds a lock, for the rest of the test, that every test running EC2 instances on
// this host takes: all of them use the default VPC's addresses (172.31.0.0/16) on the host, which
// only one VPC bridge at a time can hold, and `go test ./...` runs packages in parallel.
func LockInstances(t testing.TB) {
	t.Helper()
	if err := os.MkdirAll("/run/nubis", 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile("/run/nubis/instance-tests.lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
}

// SSH runs command on an instance as ec2-user with the real ssh client and the private key file
// key, accepting whatever host key the instance has (each instance makes its own), and returns
// what it printed (stdout and stderr) and how it ended.
func SSH(key, host, command string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ssh", "-i", key, "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
		"ec2-user@"+host, command).CombinedOutput()
	return string(out), err
}

// MustSSH is SSH that fails the test when the command does.
func MustSSH(t testing.TB, key, host, command string) string {
	t.Helper()
	out, err := SSH(key, host, command)
	if err != nil {
		t.Fatalf("ssh %s %q: %v\n%s", host, command, err, out)
	}
	return out
}
