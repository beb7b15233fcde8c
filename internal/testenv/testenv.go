// Package testenv decides what a test does when this machine lacks something it needs (root,
// runc, an interpreter, a client): skip with the reason, or, under NUBIS_REQUIRE_ALL=1 as CI runs
// (where `make deps` has installed everything), fail.
package testenv

import (
	"os"
	"syscall"
	"testing"
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
