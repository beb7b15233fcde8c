package network

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"

	"github.com/nubis/nubis/internal/netns"
	"github.com/nubis/nubis/internal/testenv"
)

func TestRenderHostRules(t *testing.T) {
	got, err := RenderHostRules("nubis-test", []VPC{{Bridge: "nbrbbbbbbbbbbbb", CIDR: netip.MustParsePrefix("10.1.0.0/16")},
		{Bridge: "nbraaaaaaaaaaaa", CIDR: netip.MustParsePrefix("172.31.0.0/16")}})
	if err != nil {
		t.Fatal(err)
	}
	want := `table ip nubis-test
flush table ip nubis-test
table ip nubis-test {
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "nbraaaaaaaaaaaa" oifname "nbr*" oifname != "nbraaaaaaaaaaaa" drop
		iifname "nbrbbbbbbbbbbbb" oifname "nbr*" oifname != "nbrbbbbbbbbbbbb" drop
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 172.31.0.0/16 oifname != "nbr*" masquerade
		ip saddr 10.1.0.0/16 oifname != "nbr*" masquerade
	}
}
`
	if got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	for _, bad := range []string{"", "Nubis", "a b", strings.Repeat("x", 40)} {
		if _, err := RenderHostRules(bad, nil); err == nil {
			t.Errorf("table %q accepted", bad)
		}
	}
}

// TestHostRules: an instance namespace on a VPC bridge reaches an "internet" namespace through
// the host with its address masqueraded, and cannot reach an instance of another VPC.
func TestHostRules(t *testing.T) {
	needRoot(t)
	_, err := exec.LookPath("nft")
	testenv.Need(t, err == nil, "needs nft (apt-get install nftables)")
	ctx := context.Background()
	table := "nubistest" + HostIfName(uniq(t))[3:9]
	t.Cleanup(func() { RemoveHostRules(context.Background(), table) })

	// The internet: a namespace on a veth from the host, 198.51.100.0/30 (TEST-NET-2).
	inet := newNS(t)
	h := testHostHandle(t)
	hostEnd, peer := HostIfName("inet-"+uniq(t)), HostIfName("inetp-"+uniq(t))
	la := netlink.NewLinkAttrs()
	la.Name = hostEnd
	must(t, h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: peer}))
	t.Cleanup(func() { Detach(context.Background(), hostEnd) })
	host, _ := h.LinkByName(hostEnd)
	must(t, h.AddrAdd(host, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(198, 51, 100, 1), Mask: net.CIDRMask(30, 32)}}))
	must(t, h.LinkSetUp(host))
	p, _ := h.LinkByName(peer)
	nsh, err := vnetns.GetFromPath(inet.Path())
	must(t, err)
	defer nsh.Close()
	must(t, h.LinkSetNsFd(p, int(nsh)))
	ih := nsHandle(t, inet)
	pin, err := ih.LinkByName(peer)
	must(t, err)
	must(t, ih.AddrAdd(pin, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(198, 51, 100, 2), Mask: net.CIDRMask(30, 32)}}))
	must(t, ih.LinkSetUp(pin))
	l, err := inet.Listen(ctx, "tcp", "198.51.100.2:8080")
	must(t, err)
	defer l.Close()
	seen := make(chan string, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			seen <- c.RemoteAddr().(*net.TCPAddr).IP.String()
			c.Close()
		}
	}()

	// Two VPCs, one instance each.
	vpcA, vpcB := testVPC(t), netip.MustParsePrefix("10.254.0.0/16")
	if hostUses(t, vpcB) {
		t.Skip("the host uses 10.254.0.0/16")
	}
	var insts []*netns.NS
	var vpcs []VPC
	for i, v := range []netip.Prefix{vpcA, vpcB} {
		gw := addr(v, 0, 1, 24)
		br := newBridge(t, gw)
		ns := newNS(t)
		a := Attachment{NetNS: ns.Path(), HostIf: HostIfName("nat-" + uniq(t) + string(rune('a'+i))), Bridge: br,
			Address: addr(v, 0, 10, 24), Gateway: gw.Addr(), OnLink: []netip.Prefix{v}}
		must(t, Attach(ctx, a))
		t.Cleanup(func() { Detach(context.Background(), a.HostIf) })
		insts = append(insts, ns)
		vpcs = append(vpcs, VPC{Bridge: br, CIDR: v})
	}
	bListen, err := insts[1].Listen(ctx, "tcp", addr(vpcB, 0, 10, 24).Addr().String()+":9000")
	must(t, err)
	defer bListen.Close()
	go func() {
		for {
			c, err := bListen.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	must(t, ApplyHostRules(ctx, table, vpcs))
	dial := func(ns *netns.NS, to string) error {
		return ns.Do(ctx, func() error {
			c, err := net.DialTimeout("tcp", to, 500*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err
		})
	}
	if err := dial(insts[0], "198.51.100.2:8080"); err != nil {
		t.Fatalf("the instance does not reach the internet: %v", err)
	}
	if src := <-seen; src != "198.51.100.1" {
		t.Fatalf("the internet saw %s, want the host's 198.51.100.1 (masquerade)", src)
	}
	if err := dial(insts[0], addr(vpcB, 0, 10, 24).Addr().String()+":9000"); err == nil {
		t.Fatal("an instance of one VPC reached one of another")
	}
	must(t, RemoveHostRules(ctx, table))
	must(t, RemoveHostRules(ctx, table)) // absent: no error
}
