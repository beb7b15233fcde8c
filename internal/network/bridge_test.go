package network

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/nubis/nubis/internal/errdefs"
)

// testHostHandle is a netlink handle on the host, closed at the end of the test.
func testHostHandle(t *testing.T) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandle()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func sortedPrefixes(ps []netip.Prefix) []netip.Prefix {
	ps = slices.Clone(ps)
	slices.SortFunc(ps, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return ps
}

func TestEnsureBridge(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	h := testHostHandle(t)
	vpc := testVPC(t)
	gw1, gw2 := addr(vpc, 0, 1, 20), addr(vpc, 16, 1, 20)
	name := newBridge(t, gw1, gw2)

	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l.(*netlink.Bridge); !ok {
		t.Fatalf("%s is a %s", name, l.Type())
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		t.Error("bridge is not up")
	}
	if got, want := l.Attrs().HardwareAddr.String(), MAC(name).String(); got != want {
		t.Errorf("bridge MAC %s, want %s", got, want)
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + name + "/disable_ipv6"); err == nil && strings.TrimSpace(string(b)) != "1" {
		t.Errorf("IPv6 is on on the bridge (disable_ipv6=%q)", b)
	}
	if got := sortedPrefixes(v4Addrs(t, h, l)); !slices.Equal(got, []netip.Prefix{gw1, gw2}) {
		t.Errorf("bridge addresses %v, want %v and %v", got, gw1, gw2)
	}

	// Again: the same bridge, nothing changed.
	if err := EnsureBridge(ctx, Bridge{Name: name, Gateways: []netip.Prefix{gw1, gw2}}); err != nil {
		t.Fatalf("second EnsureBridge: %v", err)
	}
	l2, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if l2.Attrs().Index != l.Attrs().Index {
		t.Error("the second EnsureBridge made a new bridge")
	}
	if got := sortedPrefixes(v4Addrs(t, h, l2)); !slices.Equal(got, []netip.Prefix{gw1, gw2}) {
		t.Errorf("after the second call: bridge addresses %v", got)
	}

	// A stale address (put there by hand) and a gateway no longer listed go; a new one comes;
	// a changed MAC and a downed bridge are put right.
	stale := addr(vpc, 200, 1, 24)
	if err := h.AddrAdd(l2, &netlink.Addr{IPNet: ipNet(stale)}); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetHardwareAddr(l2, net.HardwareAddr{0x0a, 1, 2, 3, 4, 5}); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetDown(l2); err != nil {
		t.Fatal(err)
	}
	gw3 := addr(vpc, 32, 1, 20)
	if err := EnsureBridge(ctx, Bridge{Name: name, Gateways: []netip.Prefix{gw1, gw3}}); err != nil {
		t.Fatalf("converging EnsureBridge: %v", err)
	}
	l3, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if got := sortedPrefixes(v4Addrs(t, h, l3)); !slices.Equal(got, []netip.Prefix{gw1, gw3}) {
		t.Errorf("after converging: bridge addresses %v, want %v and %v", got, gw1, gw3)
	}
	if l3.Attrs().HardwareAddr.String() != MAC(name).String() || l3.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("after converging: MAC %v, flags %v", l3.Attrs().HardwareAddr, l3.Attrs().Flags)
	}

	bridges, _, err := List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(bridges, name) {
		t.Errorf("List: %v lacks %s", bridges, name)
	}

	// Remove, twice.
	for range 2 {
		if err := RemoveBridge(ctx, name); err != nil {
			t.Fatalf("RemoveBridge: %v", err)
		}
	}
	if linkExists(t, h, name) {
		t.Error("bridge still there after RemoveBridge")
	}
}

// addVeth makes a veth pair on the host (this kernel may lack dummy interfaces) with address
// p on the returned end, removed at the end of the test.
func addVeth(t *testing.T, h *netlink.Handle, p netip.Prefix) string {
	t.Helper()
	name := "nbt" + uniq(t)[:12]
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	d := &netlink.Veth{LinkAttrs: attrs, PeerName: "nbp" + uniq(t)[:12], PeerTxQLen: -1}
	if err := h.LinkAdd(d); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteLink(h, name) })
	if p.IsValid() {
		if err := h.AddrAdd(d, &netlink.Addr{IPNet: ipNet(p)}); err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetUp(d); err != nil {
			t.Fatal(err)
		}
	}
	return name
}

func TestEnsureBridgeOverlap(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	h := testHostHandle(t)
	test := netip.MustParsePrefix("10.250.0.0/24")
	if hostUses(t, test) {
		t.Skipf("the host uses %v already", test)
	}
	other := addVeth(t, h, netip.MustParsePrefix("10.250.0.5/24"))

	name := BridgeName("vpc-test-" + uniq(t))
	t.Cleanup(func() { RemoveBridge(ctx, name) })
	for _, gw := range []string{"10.250.0.1/24", "10.250.0.129/25", "10.250.0.1/16"} {
		err := EnsureBridge(ctx, Bridge{Name: name, Gateways: []netip.Prefix{netip.MustParsePrefix(gw)}})
		if !errors.Is(err, errdefs.ErrConflict) {
			t.Fatalf("gateway %s: EnsureBridge gave %v, want ErrConflict", gw, err)
		}
		if !strings.Contains(err.Error(), other) {
			t.Errorf("the error does not name the other interface %s: %v", other, err)
		}
		if linkExists(t, h, name) {
			t.Fatal("a refused EnsureBridge left the bridge behind")
		}
	}

	// An existing interface of the bridge's name that is not a bridge.
	if err := EnsureBridge(ctx, Bridge{Name: other}); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("EnsureBridge over a veth gave %v, want ErrConflict", err)
	}
	if err := RemoveBridge(ctx, other); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("RemoveBridge of a veth gave %v, want ErrConflict", err)
	}
	if !linkExists(t, h, other) {
		t.Error("the veth is gone")
	}
	// Detach refuses to delete what is not a veth.
	br := newBridge(t)
	if err := Detach(ctx, br); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("Detach of a bridge gave %v, want ErrConflict", err)
	}
	if !linkExists(t, h, br) {
		t.Error("Detach deleted a bridge")
	}
}

// Two bridges of this package cannot hold overlapping subnets either while the other is in use
// (it has a port); an idle one (left by a nubis that is gone) is taken over.
func TestEnsureBridgeOverlapOtherBridge(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	vpc := testVPC(t)
	first := newBridge(t, addr(vpc, 0, 1, 20))
	h, err := netlink.NewHandle()
	must(t, err)
	defer h.Close()
	br, err := h.LinkByName(first)
	must(t, err)
	port := HostIfName("port-" + uniq(t))
	va := netlink.NewLinkAttrs()
	va.Name, va.MasterIndex = port, br.Attrs().Index
	must(t, h.LinkAdd(&netlink.Veth{LinkAttrs: va, PeerName: HostIfName("peer-" + uniq(t))}))
	t.Cleanup(func() { Detach(ctx, port) })

	name := BridgeName("vpc-test-" + uniq(t))
	t.Cleanup(func() { RemoveBridge(ctx, name) })
	err = EnsureBridge(ctx, Bridge{Name: name, Gateways: []netip.Prefix{addr(vpc, 0, 1, 16)}})
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), first) {
		t.Errorf("EnsureBridge gave %v, want ErrConflict naming %s", err, first)
	}
	// Idle now: taken over.
	must(t, Detach(ctx, port))
	if err := EnsureBridge(ctx, Bridge{Name: name, Gateways: []netip.Prefix{addr(vpc, 0, 1, 16)}}); err != nil {
		t.Fatalf("EnsureBridge beside an idle bridge: %v", err)
	}
	if linkExists(t, h, first) {
		t.Errorf("the idle bridge %s is still there", first)
	}
}
