package vpcdns

import (
	"net"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

func TestServeUDP(t *testing.T) {
	up := startUpstream(t)
	s := newTestServer(t, []string{up.addr})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	must(t, err)
	done := make(chan error, 1)
	go func() { done <- s.ServeUDP(pc) }()

	c, err := net.Dial("udp", pc.LocalAddr().String())
	must(t, err)
	defer c.Close()
	ask := func(req []byte) dnsmessage.Message {
		t.Helper()
		must(t, c.SetDeadline(time.Now().Add(5*time.Second)))
		_, err := c.Write(req)
		must(t, err)
		buf := make([]byte, 65535)
		n, err := c.Read(buf)
		must(t, err)
		return parse(t, buf[:n])
	}

	tests := []struct {
		name      string
		req       []byte
		answers   int
		truncated bool
	}{
		{"authoritative", mkQuery(t, "ip-172-31-1-2.ec2.internal.", dnsmessage.TypeA, 0), 1, false},
		{"forwarded", mkQuery(t, "example.com.", dnsmessage.TypeA, 0), 1, false},
		{"big, 512 bytes", mkQuery(t, bigName, dnsmessage.TypeA, 0), 0, true},
		{"big, EDNS0 4096", mkQuery(t, bigName, dnsmessage.TypeA, 4096), bigCount, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := ask(tt.req)
			if len(m.Answers) != tt.answers || m.Header.Truncated != tt.truncated || m.Header.ID != 0x1234 {
				t.Errorf("%d answers, TC %v, ID %#x; want %d, %v", len(m.Answers), m.Header.Truncated, m.Header.ID, tt.answers, tt.truncated)
			}
		})
	}

	// Not a query: no reply; the server keeps serving.
	_, err = c.Write([]byte{1, 2, 3})
	must(t, err)
	if m := ask(mkQuery(t, "example.com.", dnsmessage.TypeA, 0)); len(m.Answers) != 1 {
		t.Errorf("after junk: %+v", m)
	}

	pc.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ServeUDP = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeUDP did not return after close")
	}
}

func TestServeTCP(t *testing.T) {
	up := startUpstream(t)
	s := newTestServer(t, []string{up.addr})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	done := make(chan error, 1)
	go func() { done <- s.ServeTCP(l) }()

	c, err := net.Dial("tcp", l.Addr().String())
	must(t, err)
	defer c.Close()
	must(t, c.SetDeadline(time.Now().Add(5*time.Second)))

	// Several queries on one connection, the big one in full.
	for _, tt := range []struct {
		name    string
		answers int
	}{{"ip-172-31-1-2.ec2.internal.", 1}, {"example.com.", 1}, {bigName, bigCount}, {"nope.ec2.internal.", 0}} {
		must(t, writeTCP(c, mkQuery(t, tt.name, dnsmessage.TypeA, 0)))
		resp, err := readTCP(c)
		must(t, err)
		m := parse(t, resp)
		if len(m.Answers) != tt.answers || m.Header.Truncated || m.Header.ID != 0x1234 {
			t.Errorf("%s: %d answers, TC %v; want %d", tt.name, len(m.Answers), m.Header.Truncated, tt.answers)
		}
	}

	// Closing the listener ends ServeTCP and the connections it serves.
	l.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ServeTCP = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeTCP did not return after close")
	}
	if _, err := readTCP(c); err == nil {
		t.Error("connection still open after ServeTCP returned")
	}
}

func TestServeTCPIdle(t *testing.T) {
	s := newTestServer(t, []string{})
	s.idle = 100 * time.Millisecond
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer l.Close()
	go s.ServeTCP(l)
	c, err := net.Dial("tcp", l.Addr().String())
	must(t, err)
	defer c.Close()
	must(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	if _, err := readTCP(c); err == nil {
		t.Fatal("read a message nobody asked for")
	}
}
