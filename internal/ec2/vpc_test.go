package ec2

import (
	"net/netip"
	"testing"
)

func TestUsableRange(t *testing.T) {
	for _, tc := range []struct{ cidr, first, last string }{
		{"172.31.0.0/20", "172.31.0.4", "172.31.15.254"},
		{"172.31.16.0/20", "172.31.16.4", "172.31.31.254"},
		{"10.0.0.0/28", "10.0.0.4", "10.0.0.14"},
	} {
		first, last := usableRange(netip.MustParsePrefix(tc.cidr))
		if first.String() != tc.first || last.String() != tc.last {
			t.Errorf("%s: %s..%s, want %s..%s", tc.cidr, first, last, tc.first, tc.last)
		}
	}
}

func TestPickAddress(t *testing.T) {
	cidr := netip.MustParsePrefix("10.0.0.0/28")
	used := map[netip.Addr]bool{}
	for range 11 { // 16 addresses, 5 reserved
		a, err := pickAddress(cidr, used)
		if err != nil {
			t.Fatal(err)
		}
		if used[a] || !cidr.Contains(a) {
			t.Fatalf("picked %s twice or outside %s", a, cidr)
		}
		used[a] = true
	}
	if _, err := pickAddress(cidr, used); err == nil {
		t.Fatal("a full subnet gave an address")
	}
}

func TestIDs(t *testing.T) {
	for id, ok := range map[string]bool{"i-0123456789abcdef0": true, "i-01234567": true, "i-0123": false,
		"i-0123456789ABCDEF0": false, "x-0123456789abcdef0": false} {
		if validInstanceID(id) != ok {
			t.Errorf("validInstanceID(%s) = %v", id, !ok)
		}
	}
	for id, ok := range map[string]bool{"ami-0123456789abcdef0": true, "ami-01234567": true, "ami-zz": false, "image-1": false} {
		if validImageID(id) != ok {
			t.Errorf("validImageID(%s) = %v", id, !ok)
		}
	}
	if a, b := derivedID("vpc", "1", "us-east-1"), derivedID("vpc", "1", "us-east-1"); a != b || len(a) != 21 {
		t.Fatalf("derivedID: %s %s", a, b)
	}
	if hostnameOf("172.31.5.9") != "ip-172-31-5-9" {
		t.Fatal(hostnameOf("172.31.5.9"))
	}
}
