package vpcdns

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

func TestHandle(t *testing.T) {
	up := startUpstream(t)
	s := newTestServer(t, []string{up.addr})

	notimp := mkQuery(t, "example.com.", dnsmessage.TypeA, 0)
	notimp[2] |= 2 << 3 // opcode STATUS
	twoQ := func() []byte {
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 0x1234, RecursionDesired: true})
		must(t, b.StartQuestions())
		for _, n := range []string{"a.example.", "b.example."} {
			must(t, b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(n), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}))
		}
		msg, err := b.Finish()
		must(t, err)
		return msg
	}()
	noQ := mkQuery(t, "example.com.", dnsmessage.TypeA, 0)[:12]
	binary.BigEndian.PutUint16(noQ[4:], 0)

	tests := []struct {
		name    string
		req     []byte
		rcode   dnsmessage.RCode
		aa      bool
		answers []string // A and PTR answers, rendered
		soa     bool     // an SOA in authority
		hasQ    bool
	}{
		{"A found", mkQuery(t, "ip-172-31-1-2.ec2.internal.", dnsmessage.TypeA, 0), dnsmessage.RCodeSuccess, true, []string{"172.31.1.2"}, false, true},
		{"A found, mixed case", mkQuery(t, "IP-172-31-1-2.Ec2.INTERNAL.", dnsmessage.TypeA, 0), dnsmessage.RCodeSuccess, true, []string{"172.31.1.2"}, false, true},
		{"A found, regional zone", mkQuery(t, "ip-10-0-0-5.us-west-2.compute.internal.", dnsmessage.TypeA, 1232), dnsmessage.RCodeSuccess, true, []string{"10.0.0.5"}, false, true},
		{"A not found", mkQuery(t, "ip-172-31-7-7.ec2.internal.", dnsmessage.TypeA, 0), dnsmessage.RCodeNameError, true, nil, true, true},
		{"AAAA NODATA", mkQuery(t, "ip-172-31-1-2.ec2.internal.", dnsmessage.TypeAAAA, 0), dnsmessage.RCodeSuccess, true, nil, true, true},
		{"MX NODATA", mkQuery(t, "ip-172-31-1-2.ec2.internal.", dnsmessage.TypeMX, 0), dnsmessage.RCodeSuccess, true, nil, true, true},
		{"AAAA not found", mkQuery(t, "nope.ec2.internal.", dnsmessage.TypeAAAA, 0), dnsmessage.RCodeNameError, true, nil, true, true},
		{"apex SOA", mkQuery(t, "ec2.internal.", dnsmessage.TypeSOA, 0), dnsmessage.RCodeSuccess, true, []string{"SOA"}, false, true},
		{"apex A NODATA", mkQuery(t, "ec2.internal.", dnsmessage.TypeA, 0), dnsmessage.RCodeSuccess, true, nil, true, true},
		{"lookup error", mkQuery(t, "broken.ec2.internal.", dnsmessage.TypeA, 0), dnsmessage.RCodeServerFailure, false, nil, false, true},
		{"PTR instance", mkQuery(t, "2.1.31.172.in-addr.arpa.", dnsmessage.TypePTR, 0), dnsmessage.RCodeSuccess, true, []string{"ip-172-31-1-2.ec2.internal."}, false, true},
		{"PTR instance, mixed case", mkQuery(t, "2.1.31.172.IN-ADDR.Arpa.", dnsmessage.TypePTR, 0), dnsmessage.RCodeSuccess, true, []string{"ip-172-31-1-2.ec2.internal."}, false, true},
		{"PTR other, forwarded", mkQuery(t, "2.0.0.192.in-addr.arpa.", dnsmessage.TypePTR, 0), dnsmessage.RCodeSuccess, false, []string{"test.example."}, false, true},
		{"PTR reverse error", mkQuery(t, "9.9.31.172.in-addr.arpa.", dnsmessage.TypePTR, 0), dnsmessage.RCodeServerFailure, false, nil, false, true},
		{"forwarded", mkQuery(t, "example.com.", dnsmessage.TypeA, 0), dnsmessage.RCodeSuccess, false, []string{"93.184.216.34"}, false, true},
		{"forwarded NXDOMAIN", mkQuery(t, "nothing.example.", dnsmessage.TypeA, 0), dnsmessage.RCodeNameError, false, nil, false, true},
		{"forwarded, upstream SERVFAIL", mkQuery(t, "fail.example.", dnsmessage.TypeA, 0), dnsmessage.RCodeServerFailure, false, nil, false, true},
		{"zone suffix is not a label boundary", mkQuery(t, "xec2.internal.", dnsmessage.TypeA, 0), dnsmessage.RCodeNameError, false, nil, false, true},
		{"two questions", twoQ, dnsmessage.RCodeFormatError, false, nil, false, false},
		{"no question", noQ, dnsmessage.RCodeFormatError, false, nil, false, false},
		{"truncated question", mkQuery(t, "example.com.", dnsmessage.TypeA, 0)[:20], dnsmessage.RCodeFormatError, false, nil, false, false},
		{"opcode STATUS", notimp, dnsmessage.RCodeNotImplemented, false, nil, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := parse(t, s.Handle(context.Background(), tt.req))
			h := m.Header
			if h.ID != 0x1234 || !h.Response || !h.RecursionDesired || !h.RecursionAvailable {
				t.Errorf("header = %+v, want ID 0x1234, QR, RD, RA", h)
			}
			if h.RCode != tt.rcode || h.Authoritative != tt.aa {
				t.Errorf("rcode %v aa %v, want %v %v", h.RCode, h.Authoritative, tt.rcode, tt.aa)
			}
			if got := len(m.Questions) == 1; got != tt.hasQ {
				t.Errorf("questions = %v", m.Questions)
			}
			if tt.hasQ {
				var req dnsmessage.Message
				must(t, req.Unpack(tt.req))
				if m.Questions[0] != req.Questions[0] {
					t.Errorf("question %v, want %v (as sent)", m.Questions[0], req.Questions[0])
				}
			}
			var got []string
			for _, a := range m.Answers {
				switch b := a.Body.(type) {
				case *dnsmessage.AResource:
					got = append(got, netip.AddrFrom4(b.A).String())
					if tt.aa && a.Header.TTL != 60 {
						t.Errorf("TTL %d, want 60", a.Header.TTL)
					}
				case *dnsmessage.PTRResource:
					got = append(got, b.PTR.String())
				case *dnsmessage.SOAResource:
					got = append(got, "SOA")
				}
			}
			if !reflect.DeepEqual(got, tt.answers) {
				t.Errorf("answers %v, want %v", got, tt.answers)
			}
			soa := len(m.Authorities) == 1 && m.Authorities[0].Header.Type == dnsmessage.TypeSOA
			if soa != tt.soa {
				t.Errorf("authorities %v, want SOA %v", m.Authorities, tt.soa)
			}
			if soa {
				body := m.Authorities[0].Body.(*dnsmessage.SOAResource)
				if body.MinTTL != 60 || body.Serial != 1 || m.Authorities[0].Header.TTL != 60 {
					t.Errorf("SOA %+v", m.Authorities[0])
				}
			}
		})
	}
}

func TestHandleNotAQuery(t *testing.T) {
	s := newTestServer(t, []string{})
	resp := mkQuery(t, "example.com.", dnsmessage.TypeA, 0)
	resp[2] |= 0x80 // QR: a response
	for _, req := range [][]byte{nil, {1, 2, 3}, resp} {
		if got := s.Handle(context.Background(), req); got != nil {
			t.Errorf("Handle(%x) = %x, want nil", req, got)
		}
	}
}

func TestForwardFailures(t *testing.T) {
	up := startUpstream(t)
	silent, err := net.ListenPacket("udp", "127.0.0.1:0") // reads nothing, answers nothing
	must(t, err)
	t.Cleanup(func() { silent.Close() })

	tests := []struct {
		name      string
		upstreams []string
		rcode     dnsmessage.RCode
	}{
		{"no upstreams", []string{}, dnsmessage.RCodeServerFailure},
		{"upstream down", []string{closedPort(t)}, dnsmessage.RCodeServerFailure},
		{"upstream silent", []string{silent.LocalAddr().String()}, dnsmessage.RCodeServerFailure},
		{"first down, second answers", []string{closedPort(t), silent.LocalAddr().String(), up.addr}, dnsmessage.RCodeSuccess},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, tt.upstreams)
			s.timeout = 200 * time.Millisecond
			m := parse(t, s.Handle(context.Background(), mkQuery(t, "example.com.", dnsmessage.TypeA, 0)))
			if m.Header.RCode != tt.rcode || m.Header.ID != 0x1234 {
				t.Errorf("header %+v, want rcode %v", m.Header, tt.rcode)
			}
		})
	}
}

func TestTruncatedUpstreamRetriesTCP(t *testing.T) {
	up := startUpstream(t)
	s := newTestServer(t, []string{up.addr})
	reply, size := s.handle(context.Background(), mkQuery(t, bigName, dnsmessage.TypeA, 0))
	m := parse(t, reply)
	if len(m.Answers) != bigCount || m.Header.Truncated || m.Header.ID != 0x1234 {
		t.Fatalf("got %d answers, TC %v, ID %#x; want %d, false, 0x1234", len(m.Answers), m.Header.Truncated, m.Header.ID, bigCount)
	}
	if up.udp.Load() != 1 || up.tcp.Load() != 1 {
		t.Errorf("upstream saw %d UDP, %d TCP queries, want 1 and 1", up.udp.Load(), up.tcp.Load())
	}
	// Too big for the client's 512 bytes: header and question only, with TC.
	tr := truncate(reply, size)
	if size != 512 || len(tr) > 512 {
		t.Fatalf("size %d, truncated to %d bytes", size, len(tr))
	}
	tm := parse(t, tr)
	if !tm.Header.Truncated || len(tm.Answers) != 0 || len(tm.Questions) != 1 || tm.Header.ID != 0x1234 {
		t.Errorf("truncated reply %+v", tm)
	}
}

func TestTruncate(t *testing.T) {
	small := mkQuery(t, "example.com.", dnsmessage.TypeA, 0)
	if got := truncate(small, 512); &got[0] != &small[0] {
		t.Error("a reply that fits was changed")
	}
	hdr := truncate(small, 12) // not even the question fits: header only
	m := parse(t, hdr)
	if len(hdr) != 12 || !m.Header.Truncated || len(m.Questions) != 0 || m.Header.ID != 0x1234 {
		t.Errorf("header-only truncation %x", hdr)
	}
}

func TestParseResolvConf(t *testing.T) {
	tests := []struct {
		name string
		conf string
		want []string
	}{
		{"empty", "", nil},
		{"typical", "# generated\nsearch example.com\nnameserver 10.0.0.2\nnameserver 1.1.1.1\noptions edns0\n", []string{"10.0.0.2:53", "1.1.1.1:53"}},
		{"stub kept", "nameserver 127.0.0.53\n", []string{"127.0.0.53:53"}},
		{"self skipped", "nameserver 169.254.169.253\nnameserver 8.8.8.8", []string{"8.8.8.8:53"}},
		{"ipv6", "nameserver 2001:db8::1\nnameserver fe80::1%eth0\n", []string{"[2001:db8::1]:53", "[fe80::1%eth0]:53"}},
		{"junk", "nameserver\nnameserver dns.example\n; nameserver 9.9.9.9\n  nameserver   9.9.9.10  # trailing\n", []string{"9.9.9.10:53"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseResolvConf(tt.conf); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseReverse(t *testing.T) {
	tests := []struct {
		name string
		want string // "" when not an IPv4 reverse name
	}{
		{"2.1.31.172.in-addr.arpa.", "172.31.1.2"},
		{"0.0.0.0.in-addr.arpa.", "0.0.0.0"},
		{"255.255.255.255.in-addr.arpa.", "255.255.255.255"},
		{"256.1.1.1.in-addr.arpa.", ""},
		{"01.1.1.1.in-addr.arpa.", ""},
		{"1.1.1.in-addr.arpa.", ""},
		{"1.1.1.1.1.in-addr.arpa.", ""},
		{"a.1.1.1.in-addr.arpa.", ""},
		{"1..1.1.in-addr.arpa.", ""},
		{"2.1.31.172.example.", ""},
	}
	for _, tt := range tests {
		a, ok := parseReverse(tt.name)
		got := ""
		if ok {
			got = a.String()
		}
		if got != tt.want {
			t.Errorf("parseReverse(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestZones(t *testing.T) {
	s := New(Config{Zones: []string{".", "", "Ec2.Internal", ".compute.internal", "us-west-2.compute.internal."}, Upstreams: []string{}})
	var names []string
	for _, z := range s.zones {
		names = append(names, z.name)
	}
	want := []string{"ec2.internal.", "compute.internal.", "us-west-2.compute.internal."}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("zones %q, want %q", names, want)
	}
	if z, ok := s.zoneOf("a.us-west-2.compute.internal."); !ok || z.name != "us-west-2.compute.internal." {
		t.Errorf("most specific zone = %q", z.name)
	}
}
