package firewall

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"

	"github.com/nubis/nubis/internal/errdefs"
	"github.com/nubis/nubis/internal/netns"
	"github.com/nubis/nubis/internal/netns/netnstest"
	"github.com/nubis/nubis/internal/testenv"
)

// The test network: a veth pair between two namespaces the test makes. Nothing of it is on the
// host, so the prefix cannot clash with the host's.
var (
	addrA = netip.MustParsePrefix("10.99.0.1/24")
	addrB = netip.MustParsePrefix("10.99.0.2/24")
)

const (
	dialTimeout = 300 * time.Millisecond // what "fails" means: dropped packets time out
	nsenterPath = "/usr/bin/nsenter"
)

// needNft skips unless the test can make namespaces and run nft.
func needNft(t *testing.T) {
	t.Helper()
	testenv.Need(t, os.Geteuid() == 0, "needs root for network namespaces and nftables")
	_, err := nftPath()
	testenv.Need(t, err == nil, "needs the nft command (Debian package nftables)")
}

// newNS makes a network namespace, released at the end of the test.
func newNS(t *testing.T) *netns.NS { return netnstest.New(t) }

// nsHandle is a netlink handle inside ns, closed at the end of the test.
func nsHandle(t *testing.T, ns *netns.NS) *netlink.Handle { return netnstest.Handle(t, ns) }

// pair makes two namespaces joined by a veth pair, made inside A with its peer moved straight
// into B (the host namespace never holds either end), addressed addrA and addrB.
func pair(t *testing.T) (a, b *netns.NS) {
	t.Helper()
	a, b = newNS(t), newNS(t)
	ha, hb := nsHandle(t, a), nsHandle(t, b)
	fdB, err := vnetns.GetFromPath(b.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer fdB.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "veth-a"}, PeerName: "veth-b", PeerNamespace: netlink.NsFd(int(fdB))}
	if err := ha.LinkAdd(veth); err != nil {
		t.Fatalf("veth pair: %v", err)
	}
	for _, end := range []struct {
		h    *netlink.Handle
		name string
		addr netip.Prefix
	}{{ha, "veth-a", addrA}, {hb, "veth-b", addrB}} {
		l, err := end.h.LinkByName(end.name)
		if err != nil {
			t.Fatal(err)
		}
		ipn := &net.IPNet{IP: end.addr.Addr().AsSlice(), Mask: net.CIDRMask(end.addr.Bits(), 32)}
		if err := end.h.AddrAdd(l, &netlink.Addr{IPNet: ipn}); err != nil {
			t.Fatal(err)
		}
		if err := end.h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	return a, b
}

// echo serves a line-echo server, prefixed with name, on a listener opened in ns at addr.
func echo(t *testing.T, ns *netns.NS, addr, name string) {
	t.Helper()
	l, err := ns.Listen(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				line, err := bufio.NewReader(c).ReadString('\n')
				if err == nil {
					fmt.Fprintf(c, "%s %s", name, line)
				}
			}()
		}
	}()
}

// ask connects from ns to addr (a socket made in ns stays in ns), sends a line and returns the
// answer: the connection works both ways.
func ask(t *testing.T, ns *netns.NS, addr string) (string, error) {
	t.Helper()
	var c net.Conn
	err := ns.Do(context.Background(), func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, dialTimeout)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprintf(c, "ping\n"); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

// expect checks that a connection from ns to addr is answered by want, or fails if want is "".
func expect(t *testing.T, what string, ns *netns.NS, addr, want string) {
	t.Helper()
	got, err := ask(t, ns, addr)
	switch {
	case want == "" && err == nil:
		t.Errorf("%s: connected (answer %q), want blocked", what, got)
	case want != "" && (err != nil || got != want):
		t.Errorf("%s: %q, %v; want %q", what, got, err, want)
	}
}

var pingID atomic.Uint32

// ping sends one ICMP echo request from ns to dst and reports whether a reply came back.
func ping(t *testing.T, ns *netns.NS, dst netip.Addr) bool {
	t.Helper()
	var c net.PacketConn
	err := ns.Do(context.Background(), func() error {
		var err error
		c, err = net.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	})
	if err != nil {
		t.Fatalf("icmp socket: %v", err)
	}
	defer c.Close()
	// A new id each time: a repeated one would be the same conntrack flow, still established.
	id := int(pingID.Add(1)) & 0xffff
	msg := []byte{8, 0, 0, 0, byte(id >> 8), byte(id), 0, 1, 'n', 'u', 'b', 'i', 's'}
	sum := 0
	for i := 0; i+1 < len(msg); i += 2 {
		sum += int(msg[i])<<8 | int(msg[i+1])
	}
	sum += int(msg[len(msg)-1]) << 8 // odd length
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	msg[2], msg[3] = byte(^sum>>8), byte(^sum)
	if _, err := c.WriteTo(msg, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		t.Fatalf("send echo request: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(dialTimeout))
	buf := make([]byte, 1500)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return false
		}
		if n >= 8 && buf[0] == 0 && int(buf[4])<<8|int(buf[5]) == id {
			return true
		}
	}
}

// nftIn runs nft with args inside ns through nsenter, independently of the code under test.
func nftIn(t *testing.T, ns *netns.NS, args ...string) string {
	t.Helper()
	testenv.Need(t, fileExists(nsenterPath), "needs nsenter (util-linux)")
	bin, _ := nftPath()
	out, err := exec.Command(nsenterPath, append([]string{"--net=" + ns.Path(), bin}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("nsenter nft %v: %v: %s", args, err, out)
	}
	return string(out)
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func apply(t *testing.T, ns *netns.NS, p Policy) {
	t.Helper()
	start := time.Now()
	if err := Apply(context.Background(), ns.Path(), p); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	t.Logf("Apply (%d ingress, %d egress rules) took %v", len(p.Ingress), len(p.Egress), time.Since(start))
}

func tcpFrom(port int, src netip.Prefix) Rule {
	return Rule{Protocol: "tcp", FromPort: port, ToPort: port, CIDR: src}
}

func TestEnforcement(t *testing.T) {
	needNft(t)
	a, b := pair(t)
	hostA := addrA.Addr().String()
	ssh, web := net.JoinHostPort(hostA, "22"), net.JoinHostPort(hostA, "8000")
	echo(t, a, ssh, "A22")
	echo(t, a, web, "A8000")
	echo(t, a, "127.0.0.1:7000", "Alo")
	toB := net.JoinHostPort(addrB.Addr().String(), "9000")
	echo(t, b, toB, "B")

	// Without a firewall everything connects: the test network works.
	expect(t, "no firewall, B to A:22", b, ssh, "A22 ping\n")
	expect(t, "no firewall, A to B", a, toB, "B ping\n")
	if !ping(t, b, addrA.Addr()) {
		t.Fatal("no firewall, ping B to A: no reply")
	}

	// The empty policy: nothing in, nothing out, loopback only.
	apply(t, a, Policy{})
	expect(t, "empty policy, B to A:22", b, ssh, "")
	expect(t, "empty policy, A to B", a, toB, "")
	expect(t, "empty policy, A to its loopback", a, "127.0.0.1:7000", "Alo ping\n")
	expect(t, "empty policy, A to its own address", a, ssh, "A22 ping\n")
	if ping(t, b, addrA.Addr()) {
		t.Error("empty policy, ping B to A: answered")
	}

	// An ingress rule for 22 from B, no egress rule: the connection works both ways (the
	// replies leave through "ct state established"), 8000 stays closed.
	fromB := netip.PrefixFrom(addrB.Addr(), 32)
	apply(t, a, Policy{Ingress: []Rule{tcpFrom(22, fromB)}})
	expect(t, "tcp 22 from B, B to A:22", b, ssh, "A22 ping\n")
	expect(t, "tcp 22 from B, B to A:8000", b, web, "")
	expect(t, "tcp 22 from B, A to B", a, toB, "")

	// A rule for another source does not let B in.
	apply(t, a, Policy{Ingress: []Rule{tcpFrom(22, netip.MustParsePrefix("10.99.0.3/32"))}})
	expect(t, "tcp 22 from elsewhere, B to A:22", b, ssh, "")

	// A security group source: the member set holds B.
	apply(t, a, Policy{Ingress: []Rule{{Protocol: "tcp", FromPort: 8000, ToPort: 8010,
		Addrs: []netip.Addr{netip.MustParseAddr("10.99.0.9"), addrB.Addr()}}}})
	expect(t, "group with B, B to A:8000", b, web, "A8000 ping\n")
	expect(t, "group with B, B to A:22", b, ssh, "")
	apply(t, a, Policy{Ingress: []Rule{{Protocol: "tcp", FromPort: 8000, ToPort: 8010, Addrs: []netip.Addr{}}}})
	expect(t, "empty group, B to A:8000", b, web, "")

	// ICMP echo, by type.
	apply(t, a, Policy{Ingress: []Rule{{Protocol: "icmp", FromPort: 8, ToPort: -1, CIDR: fromB}}})
	if !ping(t, b, addrA.Addr()) {
		t.Error("icmp type 8 from B: ping B to A not answered")
	}
	apply(t, a, Policy{Ingress: []Rule{{Protocol: "icmp", FromPort: 13, ToPort: -1, CIDR: fromB}}})
	if ping(t, b, addrA.Addr()) {
		t.Error("icmp type 13 from B: ping B to A answered")
	}

	// Without the rule again, new connections fail.
	apply(t, a, Policy{Ingress: []Rule{tcpFrom(8000, fromB)}})
	expect(t, "rule removed, B to A:22", b, ssh, "")
	expect(t, "rule removed, B to A:8000", b, web, "A8000 ping\n")

	// Egress: to anywhere, A reaches B; to another range, it does not.
	apply(t, a, Policy{Egress: []Rule{{Protocol: "-1", CIDR: netip.MustParsePrefix("0.0.0.0/0")}}})
	expect(t, "egress all, A to B", a, toB, "B ping\n")
	expect(t, "egress all, B to A:22", b, ssh, "")
	apply(t, a, Policy{Egress: []Rule{{Protocol: "tcp", FromPort: 9000, ToPort: 9000, CIDR: netip.MustParsePrefix("192.0.2.0/24")}}})
	expect(t, "egress elsewhere, A to B", a, toB, "")
	apply(t, a, Policy{Exempt: []netip.Prefix{netip.PrefixFrom(addrB.Addr(), 32)}})
	expect(t, "exempt B, A to B", a, toB, "B ping\n")
	expect(t, "loopback, always", a, "127.0.0.1:7000", "Alo ping\n")

	// Clear: everything flows again.
	if err := Clear(context.Background(), a.Path()); err != nil {
		t.Fatal(err)
	}
	expect(t, "cleared, B to A:22", b, ssh, "A22 ping\n")
	expect(t, "cleared, A to B", a, toB, "B ping\n")
}

func TestApplyIdempotentAndClear(t *testing.T) {
	needNft(t)
	ctx := context.Background()
	ns := newNS(t)
	if got := nftIn(t, ns, "list", "tables"); got != "" {
		t.Fatalf("a new namespace has tables: %q", got)
	}
	// Clear with nothing there is fine.
	if err := Clear(ctx, ns.Path()); err != nil {
		t.Fatalf("Clear of nothing: %v", err)
	}
	p := goldenPolicy()
	apply(t, ns, p)
	first := nftIn(t, ns, "list", "ruleset")
	apply(t, ns, p)
	if second := nftIn(t, ns, "list", "ruleset"); second != first {
		t.Errorf("the second Apply changed the ruleset:\n%s\nthen\n%s", first, second)
	}
	if n := strings.Count(first, "chain input"); n != 1 {
		t.Errorf("%d input chains after two Applys", n)
	}
	if got := nftIn(t, ns, "list", "tables"); got != "table inet nubis\n" {
		t.Errorf("tables: %q", got)
	}

	// A failing Apply (nft refuses it: a chain of ours redefined with another hook priority,
	// as a future version might) leaves the rules in force.
	rules, err := Render(Policy{})
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(rules, "hook input priority filter", "hook input priority 10", 1)
	if err := load(ctx, ns.Path(), bad); err == nil {
		t.Error("load of a conflicting ruleset succeeded")
	}
	if got := nftIn(t, ns, "list", "ruleset"); got != first {
		t.Errorf("a failed load changed the ruleset:\n%s", got)
	}
	// An invalid policy is refused before nft runs.
	if err := Apply(ctx, ns.Path(), Policy{Ingress: []Rule{{Protocol: "gre"}}}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Apply of an invalid policy: %v", err)
	}

	if err := Clear(ctx, ns.Path()); err != nil {
		t.Fatal(err)
	}
	if got := nftIn(t, ns, "list", "tables"); got != "" {
		t.Errorf("tables after Clear: %q", got)
	}
	if err := Clear(ctx, ns.Path()); err != nil {
		t.Errorf("second Clear: %v", err)
	}
}

func TestApplyBadNamespace(t *testing.T) {
	needNft(t)
	ctx := context.Background()
	dir := t.TempDir()
	if err := Apply(ctx, filepath.Join(dir, "missing"), Policy{}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing file: %v, want ErrNotFound", err)
	}
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Apply(ctx, plain, Policy{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("plain file: %v, want ErrInvalidArgument", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := Apply(cancelled, newNS(t).Path(), Policy{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

func TestApplyConcurrent(t *testing.T) {
	needNft(t)
	ctx := context.Background()
	nss := []*netns.NS{newNS(t), newNS(t), newNS(t), newNS(t)}
	var wg sync.WaitGroup
	errs := make(chan error, len(nss)*8)
	for _, ns := range nss {
		for i := range 8 { // several callers per namespace, several namespaces at once
			wg.Go(func() {
				p := Policy{Ingress: []Rule{tcpFrom(1000+i, netip.MustParsePrefix("10.0.0.0/8"))}}
				errs <- Apply(ctx, ns.Path(), p)
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for _, ns := range nss {
		got := nftIn(t, ns, "list", "chain", "inet", "nubis", "input")
		if n := strings.Count(got, "tcp dport"); n != 1 {
			t.Errorf("%d port rules after concurrent Applys, want the last one's only:\n%s", n, got)
		}
	}
	locks.mu.Lock()
	defer locks.mu.Unlock()
	if len(locks.m) != 0 {
		t.Errorf("%d namespace locks left", len(locks.m))
	}
}

// TestApplyTiming measures Apply (the API promises rules in force within a second of the call),
// and, for the record, the nsenter route it does not take.
func TestApplyTiming(t *testing.T) {
	needNft(t)
	ctx := context.Background()
	ns := newNS(t)
	// A large policy: 200 rules and a group of 500 members.
	var p Policy
	for i := range 200 {
		p.Ingress = append(p.Ingress, tcpFrom(1+i, netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/16", i))))
	}
	var members []netip.Addr
	for i := range 500 {
		members = append(members, netip.AddrFrom4([4]byte{172, 31, byte(i / 250), byte(1 + i%250)}))
	}
	p.Ingress = append(p.Ingress, Rule{Protocol: "-1", Addrs: members})
	p.Egress = []Rule{{Protocol: "-1", CIDR: netip.MustParsePrefix("0.0.0.0/0")}}

	const n = 10
	for _, c := range []struct {
		name string
		p    Policy
	}{{"small", goldenPolicy()}, {"large", p}} {
		var worst, total time.Duration
		for range n {
			start := time.Now()
			if err := Apply(ctx, ns.Path(), c.p); err != nil {
				t.Fatal(err)
			}
			d := time.Since(start)
			total += d
			worst = max(worst, d)
		}
		t.Logf("Apply %s policy (%d rules): mean %v, worst %v over %d", c.name, len(c.p.Ingress)+len(c.p.Egress), total/n, worst, n)
		if worst > 500*time.Millisecond {
			t.Errorf("Apply %s policy took %v", c.name, worst)
		}
	}

	if fileExists(nsenterPath) {
		rules, _ := Render(goldenPolicy())
		bin, _ := nftPath()
		var total time.Duration
		for range n {
			cmd := exec.Command(nsenterPath, "--net="+ns.Path(), bin, "-f", "-")
			cmd.Stdin = strings.NewReader(rules)
			start := time.Now()
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("nsenter nft: %v: %s", err, out)
			}
			total += time.Since(start)
		}
		t.Logf("for comparison, nsenter --net nft -f - (small policy): mean %v over %d", total/n, n)
	}
}
