// Package netnstest makes network namespaces for tests, and netlink handles inside them, that are
// gone when the test ends.
package netnstest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"

	"github.com/nubis/nubis/internal/netns"
)

// New makes a network namespace, released at the end of the test.
func New(t testing.TB) *netns.NS {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "netns")
	ns, err := netns.New(context.Background(), dir)
	t.Cleanup(func() { netns.Release(dir) })
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// Handle is a netlink handle inside ns, closed at the end of the test.
func Handle(t testing.TB, ns *netns.NS) *netlink.Handle {
	t.Helper()
	fd, err := vnetns.GetFromPath(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	h, err := netlink.NewHandleAt(fd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}
