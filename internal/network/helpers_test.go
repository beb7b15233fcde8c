package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"os"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/nubis/nubis/internal/netns"
	"github.com/nubis/nubis/internal/netns/netnstest"
	"github.com/nubis/nubis/internal/testenv"
)

func needRoot(t *testing.T) {
	t.Helper()
	testenv.Need(t, os.Geteuid() == 0, "needs root for network namespaces")
}

// uniq is a random id for names of things a test makes.
func uniq(t *testing.T) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// hostUses reports whether an address or a route (other than a default route) of the host
// overlaps p.
func hostUses(t *testing.T, p netip.Prefix) bool {
	t.Helper()
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if q, ok := prefixOf(a.IPNet); ok && q.Masked().Overlaps(p) {
			return true
		}
	}
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if q, ok := prefixOf(r.Dst); ok && q.Bits() > 0 && q.Masked().Overlaps(p) {
			return true
		}
	}
	return false
}

// testVPC picks a /16 that this host does not use: the default VPC's 172.31.0.0/16 if free.
func testVPC(t *testing.T) netip.Prefix {
	t.Helper()
	for _, s := range []string{"172.31.0.0/16", "10.251.0.0/16", "10.252.0.0/16", "10.253.0.0/16"} {
		if p := netip.MustParsePrefix(s); !hostUses(t, p) {
			return p
		}
	}
	t.Skip("the host uses every candidate test prefix")
	return netip.Prefix{}
}

// addr is the address of the VPC vpc at offset hi.lo (the last two bytes), with prefix length bits.
func addr(vpc netip.Prefix, hi, lo byte, bits int) netip.Prefix {
	b := vpc.Addr().As4()
	b[2], b[3] = hi, lo
	return netip.PrefixFrom(netip.AddrFrom4(b), bits)
}

// newBridge makes a bridge with a unique name, removed at the end of the test.
func newBridge(t *testing.T, gateways ...netip.Prefix) string {
	t.Helper()
	name := BridgeName("vpc-test-" + uniq(t))
	t.Cleanup(func() {
		if err := RemoveBridge(context.Background(), name); err != nil {
			t.Error(err)
		}
	})
	if err := EnsureBridge(context.Background(), Bridge{Name: name, Gateways: gateways}); err != nil {
		t.Fatal(err)
	}
	return name
}

// newNS makes a network namespace, released at the end of the test.
func newNS(t *testing.T) *netns.NS { return netnstest.New(t) }

// nsHandle is a netlink handle inside ns, closed at the end of the test.
func nsHandle(t *testing.T, ns *netns.NS) *netlink.Handle { return netnstest.Handle(t, ns) }

// v4Addrs lists the IPv4 addresses of a link.
func v4Addrs(t *testing.T, h *netlink.Handle, l netlink.Link) []netip.Prefix {
	t.Helper()
	addrs, err := h.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok {
			out = append(out, p)
		}
	}
	return out
}

func linkExists(t *testing.T, h *netlink.Handle, name string) bool {
	t.Helper()
	_, err := h.LinkByName(name)
	if err != nil && !isLinkNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}
