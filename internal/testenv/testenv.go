// Package testenv decides what a test does when this machine lacks something it needs (root,
// runc, an interpreter, a client): skip with the reason, or, under NUBIS_REQUIRE_ALL=1 as CI runs
// (where `make deps` has installed everything), fail.
package testenv

import (
	"os"
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
