package network

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/nubis/nubis/internal/errdefs"
)

func TestNames(t *testing.T) {
	hex12 := regexp.MustCompile(`^[0-9a-f]{12}$`)
	for _, tc := range []struct {
		f      func(string) string
		prefix string
	}{{BridgeName, "nbr"}, {HostIfName, "nve"}} {
		a, b := tc.f("vpc-0123456789abcdef0"), tc.f("vpc-0123456789abcdef1")
		if a != tc.f("vpc-0123456789abcdef0") {
			t.Errorf("%s: not stable", a)
		}
		if a == b {
			t.Errorf("%s: two ids give the same name", a)
		}
		for _, n := range []string{a, b} {
			if len(n) > 15 || !strings.HasPrefix(n, tc.prefix) || !hex12.MatchString(strings.TrimPrefix(n, tc.prefix)) {
				t.Errorf("name %q: want %s and 12 hex digits", n, tc.prefix)
			}
			if err := validIfName("name", n); err != nil {
				t.Error(err)
			}
		}
	}
	m := MAC("i-0123456789abcdef0")
	if len(m) != 6 || m[0] != 0x0a {
		t.Errorf("MAC %v: want 0a:xx:xx:xx:xx:xx", m)
	}
	if m[0]&1 != 0 || m[0]&2 == 0 {
		t.Errorf("MAC %v: want locally administered unicast", m)
	}
	if MAC("i-0123456789abcdef0").String() != m.String() {
		t.Error("MAC not stable")
	}
	if MAC("i-0123456789abcdef1").String() == m.String() {
		t.Error("two ids give the same MAC")
	}
}

func TestInvalidArguments(t *testing.T) {
	ctx := context.Background()
	good := Attachment{
		NetNS:   "/run/nubis/netns/x",
		HostIf:  "nve0123456789ab",
		Bridge:  "nbr0123456789ab",
		Address: netip.MustParsePrefix("172.31.5.9/20"),
		Gateway: netip.MustParseAddr("172.31.0.1"),
		OnLink:  []netip.Prefix{netip.MustParsePrefix("172.31.0.0/16")},
	}
	if err := good.withDefaults().validate(); err != nil {
		t.Fatalf("valid attachment refused: %v", err)
	}
	bad := map[string]func(a *Attachment){
		"no netns":         func(a *Attachment) { a.NetNS = "" },
		"long host name":   func(a *Attachment) { a.HostIf = "nve0123456789abc" },
		"upper-case name":  func(a *Attachment) { a.HostIf = "Nve1" },
		"dash in name":     func(a *Attachment) { a.Bridge = "br-1" },
		"empty bridge":     func(a *Attachment) { a.Bridge = "" },
		"guest name":       func(a *Attachment) { a.GuestIf = "eth/0" },
		"multicast MAC":    func(a *Attachment) { a.MAC = net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 1} },
		"short MAC":        func(a *Attachment) { a.MAC = net.HardwareAddr{0x0a, 1, 2} },
		"zero MAC":         func(a *Attachment) { a.MAC = make(net.HardwareAddr, 6) },
		"IPv6 address":     func(a *Attachment) { a.Address = netip.MustParsePrefix("fd00::5/64") },
		"no address":       func(a *Attachment) { a.Address = netip.Prefix{} },
		"network address":  func(a *Attachment) { a.Address = netip.MustParsePrefix("172.31.0.0/20") },
		"broadcast":        func(a *Attachment) { a.Address = netip.MustParsePrefix("172.31.15.255/20") },
		"/32 address":      func(a *Attachment) { a.Address = netip.MustParsePrefix("172.31.5.9/32") },
		"gateway outside":  func(a *Attachment) { a.Gateway = netip.MustParseAddr("172.31.16.1") },
		"gateway is self":  func(a *Attachment) { a.Gateway = netip.MustParseAddr("172.31.5.9") },
		"no gateway":       func(a *Attachment) { a.Gateway = netip.Addr{} },
		"IPv6 on-link":     func(a *Attachment) { a.OnLink = []netip.Prefix{netip.MustParsePrefix("fd00::/64")} },
		"default on-link":  func(a *Attachment) { a.OnLink = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")} },
		"MTU too small":    func(a *Attachment) { a.MTU = 60 },
		"MTU too large":    func(a *Attachment) { a.MTU = 70000 },
		"loopback address": func(a *Attachment) { a.Address = netip.MustParsePrefix("127.0.0.5/8") },
	}
	for name, mutate := range bad {
		a := good
		a.OnLink = append([]netip.Prefix(nil), good.OnLink...)
		mutate(&a)
		if err := Attach(ctx, a); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: Attach gave %v, want ErrInvalidArgument", name, err)
		}
	}

	badBridges := map[string]Bridge{
		"empty name":     {},
		"long name":      {Name: "nbr0123456789abc"},
		"IPv6 gateway":   {Name: "nbr1", Gateways: []netip.Prefix{netip.MustParsePrefix("fd00::1/64")}},
		"network addr":   {Name: "nbr1", Gateways: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}},
		"/31":            {Name: "nbr1", Gateways: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/31")}},
		"overlapping":    {Name: "nbr1", Gateways: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/16"), netip.MustParsePrefix("10.0.1.1/24")}},
		"duplicate":      {Name: "nbr1", Gateways: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24"), netip.MustParsePrefix("10.0.0.1/24")}},
		"invalid prefix": {Name: "nbr1", Gateways: []netip.Prefix{{}}},
	}
	for name, b := range badBridges {
		if err := EnsureBridge(ctx, b); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: EnsureBridge gave %v, want ErrInvalidArgument", name, err)
		}
	}
	if err := RemoveBridge(ctx, "bad-name"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("RemoveBridge(bad-name) gave %v", err)
	}
	if err := Detach(ctx, "0123456789abcdef"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Detach(too long) gave %v", err)
	}
}

func TestPrefixConversion(t *testing.T) {
	for _, s := range []string{"172.31.5.9/20", "10.0.0.1/8", "169.254.169.254/32"} {
		p := netip.MustParsePrefix(s)
		got, ok := prefixOf(ipNet(p))
		if !ok || got != p {
			t.Errorf("%s: round trip gave %v %v", s, got, ok)
		}
	}
	// A 16-byte form of an IPv4 address, as net.ParseCIDR gives.
	_, n, _ := net.ParseCIDR("10.1.0.0/16")
	n.IP = n.IP.To16()
	n.Mask = net.CIDRMask(112, 128)
	if got, ok := prefixOf(n); !ok || got != netip.MustParsePrefix("10.1.0.0/16") {
		t.Errorf("4-in-6 gave %v %v", got, ok)
	}
	if lastAddr(netip.MustParsePrefix("172.31.5.9/20")) != netip.MustParseAddr("172.31.15.255") {
		t.Error("lastAddr")
	}
}
