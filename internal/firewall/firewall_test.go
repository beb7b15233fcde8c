package firewall

import (
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nubis/nubis/internal/errdefs"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenPolicy has one rule of every shape Render knows.
func goldenPolicy() Policy {
	pfx := netip.MustParsePrefix
	addr := netip.MustParseAddr
	return Policy{
		Ingress: []Rule{
			{Protocol: "tcp", FromPort: 22, ToPort: 22, CIDR: pfx("203.0.113.7/32")},
			{Protocol: "tcp", FromPort: 8000, ToPort: 8010, CIDR: pfx("172.31.0.0/16")},
			{Protocol: "udp", FromPort: 53, ToPort: 53, CIDR: pfx("0.0.0.0/0")},
			{Protocol: "icmp", FromPort: 8, ToPort: -1, CIDR: pfx("0.0.0.0/0")},
			{Protocol: "icmp", FromPort: -1, ToPort: -1, CIDR: pfx("10.0.0.0/8")},
			{Protocol: "1", FromPort: 3, ToPort: 4, CIDR: pfx("10.1.2.3/16")}, // host bits cleared
			{Protocol: "-1", Addrs: []netip.Addr{addr("172.31.9.8"), addr("172.31.1.2"), addr("172.31.9.8")}},
			{Protocol: "tcp", FromPort: 443, ToPort: 443, Addrs: []netip.Addr{addr("172.31.4.4")}},
			{Protocol: "tcp", FromPort: 22, ToPort: 22, Addrs: []netip.Addr{}}, // empty group
			{Protocol: "-1"}, // no CIDR, no addresses: an empty group too
			{Protocol: "6", FromPort: 0, ToPort: 65535, CIDR: pfx("192.0.2.0/24")},
			{Protocol: "47", FromPort: -1, ToPort: -1, CIDR: pfx("192.0.2.0/24")}, // gre, ports ignored
			{Protocol: "UDP", FromPort: 3000, ToPort: 3100, CIDR: pfx("198.51.100.0/24")},
		},
		Egress: []Rule{
			{Protocol: "-1", CIDR: pfx("0.0.0.0/0")},
		},
		Exempt: []netip.Prefix{pfx("172.31.0.2/32")},
	}
}

func TestRenderGolden(t *testing.T) {
	for _, c := range []struct {
		name string
		p    Policy
	}{
		{"policy", goldenPolicy()},
		{"empty", Policy{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Render(c.p)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", c.name+".nft")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test -update writes it)", err)
			}
			if got != string(want) {
				t.Errorf("Render differs from %s (go test -update rewrites it):\n%s", path, got)
			}
		})
	}
}

func TestRenderDeterministic(t *testing.T) {
	a := netip.MustParseAddr
	p1 := Policy{Ingress: []Rule{{Protocol: "-1", Addrs: []netip.Addr{a("10.0.0.2"), a("10.0.0.1")}}}}
	p2 := Policy{Ingress: []Rule{{Protocol: "-1", Addrs: []netip.Addr{a("10.0.0.1"), a("10.0.0.2"), a("10.0.0.1")}}}}
	r1, err1 := Render(p1)
	r2, err2 := Render(p2)
	if err1 != nil || err2 != nil || r1 != r2 {
		t.Errorf("same members, different rulesets:\n%s\n%s (%v, %v)", r1, r2, err1, err2)
	}
}

func TestValidate(t *testing.T) {
	any4 := netip.MustParsePrefix("0.0.0.0/0")
	for _, c := range []struct {
		name string
		r    Rule
		ok   bool
		want string // a fragment of the rendered rule when ok
	}{
		{"tcp port", Rule{Protocol: "tcp", FromPort: 22, ToPort: 22, CIDR: any4}, true, "tcp dport 22 accept"},
		{"tcp number", Rule{Protocol: "6", FromPort: 80, ToPort: 81, CIDR: any4}, true, "tcp dport 80-81"},
		{"tcp zero-padded number", Rule{Protocol: "006", FromPort: 80, ToPort: 80, CIDR: any4}, true, "tcp dport 80"},
		{"udp number", Rule{Protocol: "17", FromPort: 53, ToPort: 53, CIDR: any4}, true, "udp dport 53"},
		{"tcp all ports", Rule{Protocol: "tcp", FromPort: 0, ToPort: 65535, CIDR: any4}, true, "ip protocol tcp accept"},
		{"port 0", Rule{Protocol: "tcp", FromPort: 0, ToPort: 0, CIDR: any4}, true, "tcp dport 0"},
		{"icmp number", Rule{Protocol: "1", FromPort: 0, ToPort: -1, CIDR: any4}, true, "icmp type 0 accept"},
		{"icmp type and code", Rule{Protocol: "icmp", FromPort: 3, ToPort: 4, CIDR: any4}, true, "icmp type 3 icmp code 4"},
		{"icmp any", Rule{Protocol: "icmp", FromPort: -1, ToPort: -1, CIDR: any4}, true, "ip protocol icmp accept"},
		{"all", Rule{Protocol: "-1", FromPort: 5, ToPort: 1, CIDR: any4}, true, "0.0.0.0/0 accept"},
		{"number 0", Rule{Protocol: "0", CIDR: any4}, true, "meta l4proto 0"},
		{"number 255", Rule{Protocol: "255", CIDR: any4}, true, "meta l4proto 255"},
		{"icmpv6", Rule{Protocol: "icmpv6", FromPort: -1, ToPort: -1, CIDR: any4}, true, "meta l4proto 58"},
		{"upper case", Rule{Protocol: "TCP", FromPort: 1, ToPort: 1, CIDR: any4}, true, "tcp dport 1"},
		{"empty set", Rule{Protocol: "tcp", FromPort: 1, ToPort: 1}, true, "# never matches"},

		{"no protocol", Rule{CIDR: any4}, false, ""},
		{"gre by name", Rule{Protocol: "gre", CIDR: any4}, false, ""},
		{"number 256", Rule{Protocol: "256", CIDR: any4}, false, ""},
		{"number -2", Rule{Protocol: "-2", CIDR: any4}, false, ""},
		{"from > to", Rule{Protocol: "tcp", FromPort: 23, ToPort: 22, CIDR: any4}, false, ""},
		{"port too big", Rule{Protocol: "udp", FromPort: 1, ToPort: 65536, CIDR: any4}, false, ""},
		{"negative port", Rule{Protocol: "tcp", FromPort: -1, ToPort: -1, CIDR: any4}, false, ""},
		{"icmp type too big", Rule{Protocol: "icmp", FromPort: 256, ToPort: -1, CIDR: any4}, false, ""},
		{"icmp code too big", Rule{Protocol: "icmp", FromPort: 3, ToPort: 256, CIDR: any4}, false, ""},
		{"icmp code without type", Rule{Protocol: "icmp", FromPort: -1, ToPort: 4, CIDR: any4}, false, ""},
		{"icmp type -2", Rule{Protocol: "icmp", FromPort: -2, ToPort: -1, CIDR: any4}, false, ""},
		{"ipv6 range", Rule{Protocol: "-1", CIDR: netip.MustParsePrefix("::/0")}, false, ""},
		{"ipv6 member", Rule{Protocol: "-1", Addrs: []netip.Addr{netip.MustParseAddr("fe80::1")}}, false, ""},
		{"range and members", Rule{Protocol: "-1", CIDR: any4, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}, false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.r.Validate()
			if c.ok != (err == nil) {
				t.Fatalf("Validate = %v, want ok=%v", err, c.ok)
			}
			if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("error %v is not ErrInvalidArgument", err)
			}
			for _, dir := range []struct {
				p    Policy
				what string
			}{{Policy{Ingress: []Rule{c.r}}, "ingress"}, {Policy{Egress: []Rule{c.r}}, "egress"}} {
				out, err := Render(dir.p)
				if c.ok != (err == nil) {
					t.Fatalf("Render %s = %v, want ok=%v", dir.what, err, c.ok)
				}
				if err != nil {
					if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), dir.what+" rule 0") {
						t.Errorf("Render %s error %q: want ErrInvalidArgument naming the rule", dir.what, err)
					}
					continue
				}
				if !strings.Contains(out, c.want) {
					t.Errorf("Render %s lacks %q:\n%s", dir.what, c.want, out)
				}
			}
		})
	}
}

func TestRenderBadExempt(t *testing.T) {
	for _, e := range []netip.Prefix{{}, netip.MustParsePrefix("fd00::/8")} {
		if _, err := Render(Policy{Exempt: []netip.Prefix{e}}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("exempt %v: %v, want ErrInvalidArgument", e, err)
		}
	}
}
