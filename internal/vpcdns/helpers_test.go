package vpcdns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

var errBoom = errors.New("store down")

// instances is the fake instance table behind Lookup and Reverse.
var instances = map[string]netip.Addr{
	"ip-172-31-1-2.ec2.internal.":             netip.MustParseAddr("172.31.1.2"),
	"ip-10-0-0-5.us-west-2.compute.internal.": netip.MustParseAddr("10.0.0.5"),
}

func testLookup(_ context.Context, name string) (netip.Addr, bool, error) {
	if name == "broken.ec2.internal." {
		return netip.Addr{}, false, errBoom
	}
	a, ok := instances[name]
	return a, ok, nil
}

func testReverse(_ context.Context, addr netip.Addr) (string, bool, error) {
	if addr == netip.MustParseAddr("172.31.9.9") {
		return "", false, errBoom
	}
	for n, a := range instances {
		if a == addr {
			return n, true, nil
		}
	}
	return "", false, nil
}

// newTestServer is a Server on the fake instances forwarding to upstreams.
func newTestServer(t testing.TB, upstreams []string) *Server {
	t.Helper()
	return New(Config{
		Zones:     []string{"EC2.Internal", "us-west-2.compute.internal."},
		Lookup:    testLookup,
		Reverse:   testReverse,
		Upstreams: upstreams,
	})
}

// mkQuery builds a query for name and type with RD set and ID 0x1234; opt>0 adds EDNS0 of that size.
func mkQuery(t testing.TB, name string, typ dnsmessage.Type, opt int) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 0x1234, RecursionDesired: true})
	must(t, b.StartQuestions())
	must(t, b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}))
	if opt > 0 {
		must(t, b.StartAdditionals())
		var rh dnsmessage.ResourceHeader
		must(t, rh.SetEDNS0(opt, dnsmessage.RCodeSuccess, false))
		must(t, b.OPTResource(rh, dnsmessage.OPTResource{}))
	}
	msg, err := b.Finish()
	must(t, err)
	return msg
}

func parse(t testing.TB, msg []byte) dnsmessage.Message {
	t.Helper()
	var m dnsmessage.Message
	if err := m.Unpack(msg); err != nil {
		t.Fatalf("reply does not parse: %v (%x)", err, msg)
	}
	return m
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// upstream is a fake recursive resolver on 127.0.0.1, UDP and TCP on the same port.
type upstream struct {
	addr     string
	udp, tcp atomic.Int32 // queries seen per transport
}

// bigName is answered with so many A records that the reply needs more than 512 bytes: over
// UDP the fake upstream answers it truncated (TC, no answers), over TCP in full.
const bigName = "big.example."

const bigCount = 60

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	var (
		pc  net.PacketConn
		l   net.Listener
		err error
	)
	for range 20 {
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		must(t, err)
		port := pc.LocalAddr().(*net.UDPAddr).Port
		l, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			break
		}
		pc.Close()
	}
	must(t, err)
	u := &upstream{addr: pc.LocalAddr().String()}
	t.Cleanup(func() { pc.Close(); l.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			u.udp.Add(1)
			if resp := u.answer(buf[:n], true); resp != nil {
				pc.WriteTo(resp, from)
			}
		}
	}()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for {
					req, err := readTCP(c)
					if err != nil {
						return
					}
					u.tcp.Add(1)
					if resp := u.answer(req, false); resp != nil {
						writeTCP(c, resp)
					}
				}
			}()
		}
	}()
	return u
}

// answer: example.com. A 93.184.216.34; bigName many A records; fail.example. SERVFAIL; others NXDOMAIN.
func (u *upstream) answer(req []byte, udp bool) []byte {
	var m dnsmessage.Message
	if err := m.Unpack(req); err != nil || len(m.Questions) != 1 {
		return nil
	}
	q := m.Questions[0]
	m.Header.Response = true
	m.Header.RecursionAvailable = true
	m.Additionals = nil
	rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 300}
	switch q.Name.String() {
	case "example.com.":
		m.Answers = []dnsmessage.Resource{{Header: rh, Body: &dnsmessage.AResource{A: [4]byte{93, 184, 216, 34}}}}
	case bigName:
		if udp {
			m.Header.Truncated = true
			break
		}
		for i := range bigCount {
			m.Answers = append(m.Answers, dnsmessage.Resource{Header: rh, Body: &dnsmessage.AResource{A: [4]byte{10, 1, 0, byte(i)}}})
		}
	case "fail.example.":
		m.Header.RCode = dnsmessage.RCodeServerFailure
	case "2.0.0.192.in-addr.arpa.":
		m.Answers = []dnsmessage.Resource{{Header: rh, Body: &dnsmessage.PTRResource{PTR: dnsmessage.MustNewName("test.example.")}}}
	default:
		m.Header.RCode = dnsmessage.RCodeNameError
	}
	resp, err := m.Pack()
	if err != nil {
		return nil
	}
	return resp
}

// closedPort is a 127.0.0.1 UDP address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	must(t, err)
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}
