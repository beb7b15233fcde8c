package vpcdns

import (
	"context"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// FuzzHandle throws arbitrary bytes at Handle (with no upstreams, so nothing leaves the
// process): it must never panic, any reply must parse, carry the request's ID and be a
// response, and its UDP truncation must fit and parse too.
func FuzzHandle(f *testing.F) {
	for _, q := range []struct {
		name string
		typ  dnsmessage.Type
		opt  int
	}{
		{"ip-172-31-1-2.ec2.internal.", dnsmessage.TypeA, 0},
		{"IP-172-31-1-2.EC2.internal.", dnsmessage.TypeAAAA, 1232},
		{"nope.ec2.internal.", dnsmessage.TypeA, 0},
		{"ec2.internal.", dnsmessage.TypeSOA, 0},
		{"broken.ec2.internal.", dnsmessage.TypeA, 0},
		{"2.1.31.172.in-addr.arpa.", dnsmessage.TypePTR, 0},
		{"9.9.31.172.in-addr.arpa.", dnsmessage.TypePTR, 4096},
		{"example.com.", dnsmessage.TypeMX, 0},
	} {
		f.Add(mkQuery(f, q.name, q.typ, q.opt))
	}
	f.Add([]byte{})
	f.Add(make([]byte, 12))
	s := newTestServer(f, []string{})

	f.Fuzz(func(t *testing.T, req []byte) {
		reply, size := s.handle(context.Background(), req)
		if reply == nil {
			return
		}
		m := parse(t, reply)
		if !m.Header.Response || m.Header.ID != uint16(req[0])<<8|uint16(req[1]) {
			t.Fatalf("reply header %+v", m.Header)
		}
		tr := truncate(reply, size)
		if len(tr) > size {
			t.Fatalf("truncated reply of %d bytes for size %d", len(tr), size)
		}
		parse(t, tr)
	})
}
