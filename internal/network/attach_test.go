package network

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/nubis/nubis/internal/errdefs"
	"github.com/nubis/nubis/internal/netns"
)

// echo serves l: every connection gets back its first line prefixed with token.
func echo(t *testing.T, l net.Listener, token string) {
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				io.WriteString(c, token+" "+line)
			}()
		}
	}()
}

// ask dials addr (inside ns, or on the host if ns is nil), sends a line and returns the answer.
func ask(ctx context.Context, ns *netns.NS, addr string) (string, error) {
	return askWithin(ctx, ns, addr, 5*time.Second)
}

func askWithin(ctx context.Context, ns *netns.NS, addr string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var c net.Conn
	dial := func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		return err
	}
	var err error
	if ns == nil {
		err = dial()
	} else {
		err = ns.Do(ctx, dial)
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// testNet is a bridge with two /20 subnets of a test VPC and what instances need to join it.
type testNet struct {
	vpc    netip.Prefix
	bridge string
}

func newTestNet(t *testing.T) testNet {
	vpc := testVPC(t)
	return testNet{vpc: vpc, bridge: newBridge(t, addr(vpc, 0, 1, 20), addr(vpc, 16, 1, 20))}
}

// attachment for an instance in subnet 0 (hi < 16) or 1 (16 <= hi < 32) of the test VPC.
func (n testNet) attachment(t *testing.T, ns *netns.NS, hi, lo byte) Attachment {
	id := "i-test-" + uniq(t)
	hostIf := HostIfName(id)
	t.Cleanup(func() { Detach(context.Background(), hostIf) })
	return Attachment{
		NetNS:   ns.Path(),
		HostIf:  hostIf,
		Bridge:  n.bridge,
		MAC:     MAC(id),
		Address: addr(n.vpc, hi, lo, 20),
		Gateway: addr(n.vpc, hi&^15, 1, 20).Addr(),
		OnLink:  []netip.Prefix{n.vpc},
	}
}

func TestAttach(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	h := testHostHandle(t)
	n := newTestNet(t)
	nsA, nsB := newNS(t), newNS(t)
	a := n.attachment(t, nsA, 5, 9)
	a.Metadata = true
	a.VPCResolver = VPCResolverAddr(a.OnLink[0])
	b := n.attachment(t, nsB, 20, 7)
	for _, at := range []Attachment{a, b} {
		if err := Attach(ctx, at); err != nil {
			t.Fatalf("Attach %s: %v", at.Address, err)
		}
	}

	// The host end is a port of the bridge, up, with IPv6 off.
	br, err := h.LinkByName(n.bridge)
	if err != nil {
		t.Fatal(err)
	}
	hostA, err := h.LinkByName(a.HostIf)
	if err != nil {
		t.Fatal(err)
	}
	if hostA.Attrs().MasterIndex != br.Attrs().Index || hostA.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("host end: master %d (bridge %d), flags %v", hostA.Attrs().MasterIndex, br.Attrs().Index, hostA.Attrs().Flags)
	}
	if v, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + a.HostIf + "/disable_ipv6"); err == nil && strings.TrimSpace(string(v)) != "1" {
		t.Errorf("IPv6 is on on the host end (disable_ipv6=%q)", v)
	}
	// The guest end: eth0 with the MAC, MTU and address; the routes; the metadata address.
	hA := nsHandle(t, nsA)
	ethA, err := hA.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if ethA.Attrs().HardwareAddr.String() != a.MAC.String() || ethA.Attrs().MTU != 1500 || ethA.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("eth0: MAC %v (want %v), MTU %d, flags %v", ethA.Attrs().HardwareAddr, a.MAC, ethA.Attrs().MTU, ethA.Attrs().Flags)
	}
	if got := v4Addrs(t, hA, ethA); !slices.Equal(got, []netip.Prefix{a.Address}) {
		t.Errorf("eth0 addresses %v, want %v", got, a.Address)
	}
	checkRoutes(t, hA, ethA, a)
	lo, err := hA.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []netip.Prefix{MetadataAddr, ResolverAddr, netip.PrefixFrom(a.VPCResolver, 32)} {
		if got := v4Addrs(t, hA, lo); !slices.Contains(got, want) {
			t.Errorf("lo addresses %v lack %v", got, want)
		}
	}

	// Connectivity: B to A across subnets (on-link, no router), the host to A and to B through
	// the gateways, A to B.
	addrA := net.JoinHostPort(a.Address.Addr().String(), "7000")
	addrB := net.JoinHostPort(b.Address.Addr().String(), "7000")
	lA, err := nsA.Listen(ctx, "tcp", addrA)
	if err != nil {
		t.Fatal(err)
	}
	echo(t, lA, "A")
	lB, err := nsB.Listen(ctx, "tcp", addrB)
	if err != nil {
		t.Fatal(err)
	}
	echo(t, lB, "B")
	for _, c := range []struct {
		from *netns.NS
		what string
		to   string
		want string
	}{{nsB, "B to A", addrA, "A ping\n"}, {nil, "host to A", addrA, "A ping\n"},
		{nil, "host to B", addrB, "B ping\n"}, {nsA, "A to B", addrB, "B ping\n"}} {
		got, err := ask(ctx, c.from, c.to)
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v", c.what, got, err)
		}
	}

	// The metadata address, from inside A.
	lM, err := nsA.Listen(ctx, "tcp", "169.254.169.254:80")
	if err != nil {
		t.Fatal(err)
	}
	echo(t, lM, "metadata")
	if got, err := ask(ctx, nsA, "169.254.169.254:80"); err != nil || got != "metadata ping\n" {
		t.Errorf("metadata from A: %q, %v", got, err)
	}

	// Attach again: nothing changes.
	if err := Attach(ctx, a); err != nil {
		t.Fatalf("second Attach: %v", err)
	}
	hostA2, err := h.LinkByName(a.HostIf)
	if err != nil {
		t.Fatal(err)
	}
	ethA2, err := hA.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if hostA2.Attrs().Index != hostA.Attrs().Index || ethA2.Attrs().Index != ethA.Attrs().Index {
		t.Error("the second Attach made a new pair")
	}
	if got, err := ask(ctx, nsB, addrA); err != nil || got != "A ping\n" {
		t.Errorf("B to A after the second Attach: %q, %v", got, err)
	}

	_, hostIfs, err := List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(hostIfs, a.HostIf) || !slices.Contains(hostIfs, b.HostIf) {
		t.Errorf("List: %v lacks %s or %s", hostIfs, a.HostIf, b.HostIf)
	}

	// Detach removes both ends; again is no error.
	for range 2 {
		if err := Detach(ctx, a.HostIf); err != nil {
			t.Fatalf("Detach: %v", err)
		}
	}
	if linkExists(t, h, a.HostIf) || linkExists(t, hA, "eth0") {
		t.Error("an end of the pair is left after Detach")
	}
	if _, err := askWithin(ctx, nsB, addrA, 500*time.Millisecond); err == nil {
		t.Error("A still reachable after Detach")
	}

	// The host tries A while it is gone and its neighbour entry for A is not valid (dropped
	// here; the kernel drops it, for example, when the bridge loses its last port and with it its
	// carrier): the entry is left incomplete. Attached again, A answers the host's first try at
	// once (well under a second), not at the next ARP retry a second later.
	if err := h.NeighDel(&netlink.Neigh{LinkIndex: br.Attrs().Index, Family: netlink.FAMILY_V4,
		IP: net.IP(a.Address.Addr().AsSlice())}); err != nil {
		t.Fatal(err)
	}
	if _, err := askWithin(ctx, nil, addrA, 200*time.Millisecond); err == nil {
		t.Error("A reachable from the host after Detach")
	}
	if err := Attach(ctx, a); err != nil {
		t.Fatalf("Attach after Detach: %v", err)
	}
	addrA2 := net.JoinHostPort(a.Address.Addr().String(), "7001")
	lA2, err := nsA.Listen(ctx, "tcp", addrA2)
	if err != nil {
		t.Fatal(err)
	}
	echo(t, lA2, "A")
	if got, err := askWithin(ctx, nil, addrA2, 700*time.Millisecond); err != nil || got != "A ping\n" {
		t.Errorf("host to A attached again: %q, %v", got, err)
	}
}

// checkRoutes checks the guest's default route and on-link routes.
func checkRoutes(t *testing.T, h *netlink.Handle, eth netlink.Link, a Attachment) {
	t.Helper()
	routes, err := h.RouteList(eth, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range routes {
		p, ok := prefixOf(r.Dst)
		if !ok {
			p = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		}
		s := p.String()
		if r.Gw != nil {
			s += " via " + r.Gw.String()
		}
		if r.Scope == netlink.SCOPE_LINK {
			s += " link"
		}
		got = append(got, s)
	}
	for _, want := range []string{
		"0.0.0.0/0 via " + a.Gateway.String(),
		a.OnLink[0].String() + " link",
		a.Address.Masked().String() + " link",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("guest routes %q lack %q", got, want)
		}
	}
}

// Attach puts right what was changed or left half-made.
func TestAttachConverges(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	h := testHostHandle(t)
	n := newTestNet(t)
	ns := newNS(t)
	a := n.attachment(t, ns, 5, 9)
	a.Metadata = true
	if err := Attach(ctx, a); err != nil {
		t.Fatal(err)
	}
	hn := nsHandle(t, ns)

	// Undo much of it by hand: host end out of the bridge and down, guest renamed, other MAC,
	// address with another prefix length, routes gone.
	host, err := h.LinkByName(a.HostIf)
	if err != nil {
		t.Fatal(err)
	}
	must(t, h.LinkSetNoMaster(host))
	must(t, h.LinkSetDown(host))
	eth, err := hn.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	must(t, hn.LinkSetDown(eth))
	must(t, hn.LinkSetName(eth, "eth7"))
	must(t, hn.LinkSetHardwareAddr(eth, net.HardwareAddr{0x0a, 9, 9, 9, 9, 9}))
	must(t, hn.AddrDel(eth, &netlink.Addr{IPNet: ipNet(a.Address)}))
	must(t, hn.AddrAdd(eth, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(a.Address.Addr(), 24))}))
	must(t, hn.LinkSetUp(eth))

	// And switch the metadata address off, and ask for a larger MTU.
	a.Metadata = false
	a.MTU = 9001
	if err := Attach(ctx, a); err != nil {
		t.Fatalf("converging Attach: %v", err)
	}
	host2, err := h.LinkByName(a.HostIf)
	if err != nil {
		t.Fatal(err)
	}
	if host2.Attrs().Index != host.Attrs().Index {
		t.Error("converging Attach made a new pair")
	}
	eth2, err := hn.LinkByName("eth0")
	if err != nil {
		t.Fatalf("guest end not renamed back: %v", err)
	}
	if eth2.Attrs().HardwareAddr.String() != a.MAC.String() || eth2.Attrs().MTU != 9001 || host2.Attrs().MTU != 9001 {
		t.Errorf("guest MAC %v, MTU %d, host MTU %d", eth2.Attrs().HardwareAddr, eth2.Attrs().MTU, host2.Attrs().MTU)
	}
	if got := v4Addrs(t, hn, eth2); !slices.Equal(got, []netip.Prefix{a.Address}) {
		t.Errorf("guest addresses %v, want %v", got, a.Address)
	}
	checkRoutes(t, hn, eth2, a)
	lo, err := hn.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if got := v4Addrs(t, hn, lo); slices.Contains(got, MetadataAddr) {
		t.Errorf("lo still has %v", MetadataAddr)
	}
	lA, err := ns.Listen(ctx, "tcp", net.JoinHostPort(a.Address.Addr().String(), "7000"))
	if err != nil {
		t.Fatal(err)
	}
	echo(t, lA, "A")
	if got, err := ask(ctx, nil, lA.Addr().String()); err != nil || got != "A ping\n" {
		t.Errorf("host to A after converging: %q, %v", got, err)
	}

	// A half-made pair: the host end exists but its peer never reached the namespace.
	must(t, Detach(ctx, a.HostIf))
	attrs := netlink.NewLinkAttrs()
	attrs.Name = a.HostIf
	peer := "nvp" + uniq(t)[:12]
	must(t, h.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: peer, PeerTxQLen: -1}))
	t.Cleanup(func() { deleteLink(h, peer) })
	if err := Attach(ctx, a); err != nil {
		t.Fatalf("Attach over a half-made pair: %v", err)
	}
	if linkExists(t, h, peer) {
		t.Error("the half-made pair's peer is still on the host")
	}
	if got, err := ask(ctx, nil, lA.Addr().String()); err != nil || got != "A ping\n" {
		t.Errorf("host to A after re-making the pair: %q, %v", got, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestAttachFailures(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	h := testHostHandle(t)
	n := newTestNet(t)
	ns := newNS(t)
	a := n.attachment(t, ns, 5, 9)
	a.Metadata = true
	hn := nsHandle(t, ns)

	// A failure after the pair was made leaves nothing behind.
	testHookCreated = func() error { return errors.New("injected failure") }
	err := Attach(ctx, a)
	testHookCreated = nil
	if err == nil {
		t.Fatal("Attach did not fail")
	}
	if linkExists(t, h, a.HostIf) || linkExists(t, hn, "eth0") {
		t.Error("a failed Attach left its veth pair behind")
	}

	// No such bridge, no such namespace, not a namespace.
	noBridge := a
	noBridge.Bridge = BridgeName("vpc-missing-" + uniq(t))
	if err := Attach(ctx, noBridge); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing bridge: %v, want ErrNotFound", err)
	}
	noNS := a
	noNS.NetNS = ns.Path() + "-missing"
	if err := Attach(ctx, noNS); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing namespace: %v, want ErrNotFound", err)
	}
	notNS := a
	notNS.NetNS = "/proc/self/status"
	if err := Attach(ctx, notNS); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("not a namespace: %v, want ErrInvalidArgument", err)
	}
	if linkExists(t, h, a.HostIf) {
		t.Error("a failed Attach left its host end behind")
	}

	// The guest name is taken by another interface in the namespace.
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "eth0"
	must(t, hn.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}))
	if err := Attach(ctx, a); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("guest name taken: %v, want ErrConflict", err)
	}
	if linkExists(t, h, a.HostIf) {
		t.Error("a refused Attach left its host end behind")
	}
	a.GuestIf = "ens5"
	if err := Attach(ctx, a); err != nil {
		t.Errorf("Attach as ens5: %v", err)
	}
	if !linkExists(t, hn, "ens5") {
		t.Error("no ens5 in the namespace")
	}
}
