// Package vpcdns is the Amazon-provided DNS server of a VPC as an EC2 instance sees it (AWS's
// "Route 53 Resolver", reachable at 169.254.169.253 and at the VPC's base address plus two).
//
// It is authoritative for the VPC's private zones (ec2.internal., <region>.compute.internal.):
// A questions are answered from a lookup function, PTR questions for instance addresses from a
// reverse function, and every other question is forwarded to upstream resolvers (by default the
// host's /etc/resolv.conf), whose reply is relayed with the client's ID. It speaks DNS over UDP
// (with truncation to 512 bytes or the client's EDNS0 size) and TCP.
package vpcdns

import (
	"context"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

const (
	defaultTTL      = 60
	upstreamTimeout = 2 * time.Second
	queryTimeout    = 5 * time.Second
	minUDPSize      = 512
	maxMessage      = 65535
	selfAddr        = "169.254.169.253"
	reverseSuffix   = ".in-addr.arpa."
)

// Config configures a Server. Lookup and Reverse are called concurrently, once per query, and
// must be safe for concurrent use.
type Config struct {
	// Zones are the private DNS zones the server is authoritative for, e.g. "ec2.internal." or
	// "us-west-2.compute.internal." (fully qualified, case-insensitive).
	Zones []string
	// Lookup answers a name in a zone (fully qualified, lower case): its IPv4 address, or
	// ok=false (then NXDOMAIN). Called per query. Nil: every name in a zone is NXDOMAIN.
	Lookup func(ctx context.Context, name string) (addr netip.Addr, ok bool, err error)
	// Reverse answers a PTR question for an IPv4 address: the name, or ok=false (then forwarded
	// upstream like any other name, as AWS does for addresses that are not instances').
	Reverse func(ctx context.Context, addr netip.Addr) (name string, ok bool, err error)
	// Upstreams are "host:port" resolvers for every other name; when nil, the nameservers of
	// /etc/resolv.conf (port 53). Empty list: answer SERVFAIL for other names.
	Upstreams []string
	TTL       uint32 // of authoritative answers; 60 when 0
	Log       *slog.Logger
}

// zone is one private zone with the SOA the server answers for it.
type zone struct {
	name string // lower case, fully qualified
	soa  dnsmessage.Resource
}

// Server answers DNS queries for one VPC. It is safe for concurrent use.
type Server struct {
	zones     []zone
	lookup    func(ctx context.Context, name string) (netip.Addr, bool, error)
	reverse   func(ctx context.Context, addr netip.Addr) (string, bool, error)
	upstreams []string
	ttl       uint32
	log       *slog.Logger
	timeout   time.Duration // per upstream attempt
	idle      time.Duration // TCP idle timeout
}

// New returns a Server for cfg. Invalid zones are logged and ignored; when cfg.Upstreams is nil
// it reads /etc/resolv.conf once, here.
func New(cfg Config) *Server {
	s := &Server{
		lookup:    cfg.Lookup,
		reverse:   cfg.Reverse,
		upstreams: cfg.Upstreams,
		ttl:       cfg.TTL,
		log:       cfg.Log,
		timeout:   upstreamTimeout,
		idle:      10 * time.Second,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.ttl == 0 {
		s.ttl = defaultTTL
	}
	for _, z := range cfg.Zones {
		zn, err := newZone(z)
		if err != nil {
			s.log.Warn("vpcdns: ignoring zone", "zone", z, "err", err)
			continue
		}
		s.zones = append(s.zones, zn)
	}
	if s.upstreams == nil {
		ups, err := readResolvConf("/etc/resolv.conf")
		if err != nil {
			s.log.Warn("vpcdns: no upstream resolvers", "err", err)
		}
		s.upstreams = ups
		if s.upstreams == nil {
			s.upstreams = []string{}
		}
	}
	return s
}

// query is a parsed request: its header, its one question and the client's EDNS0 OPT record.
type query struct {
	hdr dnsmessage.Header
	q   dnsmessage.Question
	opt *dnsmessage.Resource
}

// Handle answers one DNS message (wire format) and returns the reply (nil: send nothing, e.g.
// the input is not a query at all). The reply is not truncated to any UDP size: ServeUDP does
// that; a caller serving UDP itself should use ServeUDP's rules.
func (s *Server) Handle(ctx context.Context, req []byte) []byte {
	reply, _ := s.handle(ctx, req)
	return reply
}

// handle is Handle that also returns the largest UDP reply the client accepts.
func (s *Server) handle(ctx context.Context, req []byte) (reply []byte, udpSize int) {
	var p dnsmessage.Parser
	h, err := p.Start(req)
	if err != nil || h.Response {
		return nil, 0
	}
	if h.OpCode != 0 {
		return errorReply(h, dnsmessage.RCodeNotImplemented), minUDPSize
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 {
		return errorReply(h, dnsmessage.RCodeFormatError), minUDPSize
	}
	q := query{hdr: h, q: qs[0], opt: findOPT(&p)}
	udpSize = minUDPSize
	if q.opt != nil {
		udpSize = min(max(int(q.opt.Header.Class), minUDPSize), maxMessage)
	}
	return s.answer(ctx, q), udpSize
}

// findOPT returns the OPT record in the additional section, nil when there is none or the
// message is malformed past the question (then it is answered without EDNS0).
func findOPT(p *dnsmessage.Parser) *dnsmessage.Resource {
	if p.SkipAllAnswers() != nil || p.SkipAllAuthorities() != nil {
		return nil
	}
	for {
		rh, err := p.AdditionalHeader()
		if err != nil {
			return nil
		}
		if rh.Type != dnsmessage.TypeOPT {
			if p.SkipAdditional() != nil {
				return nil
			}
			continue
		}
		body, err := p.OPTResource()
		if err != nil {
			return nil
		}
		return &dnsmessage.Resource{Header: rh, Body: &body}
	}
}

// answer answers a well-formed query: authoritatively for the zones and instance addresses,
// by forwarding otherwise.
func (s *Server) answer(ctx context.Context, q query) []byte {
	inet := q.q.Class == dnsmessage.ClassINET || q.q.Class == dnsmessage.ClassANY
	name := lower(q.q.Name.String())
	if inet {
		if z, ok := s.zoneOf(name); ok {
			return s.authoritative(ctx, q, z, name)
		}
		if q.q.Type == dnsmessage.TypePTR && s.reverse != nil {
			if addr, ok := parseReverse(name); ok {
				host, found, err := s.reverse(ctx, addr)
				if err != nil {
					s.log.Warn("vpcdns: reverse lookup", "addr", addr, "err", err)
					return s.reply(q, dnsmessage.RCodeServerFailure, false, nil, nil)
				}
				if found {
					return s.ptrAnswer(q, host)
				}
			}
		}
	}
	return s.forward(ctx, q)
}

// authoritative answers a question for a name in zone z.
func (s *Server) authoritative(ctx context.Context, q query, z zone, name string) []byte {
	soa := []dnsmessage.Resource{z.soa}
	if name == z.name {
		if q.q.Type == dnsmessage.TypeSOA || q.q.Type == dnsmessage.TypeALL {
			ans := z.soa
			ans.Header.Name = q.q.Name
			return s.reply(q, dnsmessage.RCodeSuccess, true, []dnsmessage.Resource{ans}, nil)
		}
		return s.reply(q, dnsmessage.RCodeSuccess, true, nil, soa)
	}
	if s.lookup == nil {
		return s.reply(q, dnsmessage.RCodeNameError, true, nil, soa)
	}
	addr, found, err := s.lookup(ctx, name)
	if err != nil {
		s.log.Warn("vpcdns: lookup", "name", name, "err", err)
		return s.reply(q, dnsmessage.RCodeServerFailure, false, nil, nil)
	}
	if !found {
		return s.reply(q, dnsmessage.RCodeNameError, true, nil, soa)
	}
	addr = addr.Unmap()
	if (q.q.Type == dnsmessage.TypeA || q.q.Type == dnsmessage.TypeALL) && addr.Is4() {
		ans := dnsmessage.Resource{
			Header: dnsmessage.ResourceHeader{Name: q.q.Name, Class: dnsmessage.ClassINET, TTL: s.ttl},
			Body:   &dnsmessage.AResource{A: addr.As4()},
		}
		return s.reply(q, dnsmessage.RCodeSuccess, true, []dnsmessage.Resource{ans}, nil)
	}
	return s.reply(q, dnsmessage.RCodeSuccess, true, nil, soa)
}

// ptrAnswer answers a PTR question with host.
func (s *Server) ptrAnswer(q query, host string) []byte {
	if !strings.HasSuffix(host, ".") {
		host += "."
	}
	n, err := dnsmessage.NewName(host)
	if err != nil {
		s.log.Warn("vpcdns: reverse name", "name", host, "err", err)
		return s.reply(q, dnsmessage.RCodeServerFailure, false, nil, nil)
	}
	ans := dnsmessage.Resource{
		Header: dnsmessage.ResourceHeader{Name: q.q.Name, Class: dnsmessage.ClassINET, TTL: s.ttl},
		Body:   &dnsmessage.PTRResource{PTR: n},
	}
	return s.reply(q, dnsmessage.RCodeSuccess, true, []dnsmessage.Resource{ans}, nil)
}

// reply builds a reply to q with the question, answers and authorities given.
func (s *Server) reply(q query, rcode dnsmessage.RCode, aa bool, answers, authorities []dnsmessage.Resource) []byte {
	h := replyHeader(q.hdr, rcode)
	h.Authoritative = aa
	b := dnsmessage.NewBuilder(make([]byte, 0, minUDPSize), h)
	b.EnableCompression()
	msg, err := build(&b, q.q, answers, authorities)
	if err != nil {
		s.log.Warn("vpcdns: building reply", "name", q.q.Name.String(), "err", err)
		return errorReply(q.hdr, dnsmessage.RCodeServerFailure)
	}
	return msg
}

func build(b *dnsmessage.Builder, q dnsmessage.Question, answers, authorities []dnsmessage.Resource) ([]byte, error) {
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if err := addAll(b, answers); err != nil {
		return nil, err
	}
	if err := b.StartAuthorities(); err != nil {
		return nil, err
	}
	if err := addAll(b, authorities); err != nil {
		return nil, err
	}
	return b.Finish()
}

func addAll(b *dnsmessage.Builder, rs []dnsmessage.Resource) error {
	for _, r := range rs {
		var err error
		switch body := r.Body.(type) {
		case *dnsmessage.AResource:
			err = b.AResource(r.Header, *body)
		case *dnsmessage.PTRResource:
			err = b.PTRResource(r.Header, *body)
		case *dnsmessage.SOAResource:
			err = b.SOAResource(r.Header, *body)
		case *dnsmessage.OPTResource:
			err = b.OPTResource(r.Header, *body)
		default:
			err = errUnsupportedBody
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// replyHeader is the header of a reply to h: its ID, opcode and RD, with QR and RA set.
func replyHeader(h dnsmessage.Header, rcode dnsmessage.RCode) dnsmessage.Header {
	return dnsmessage.Header{
		ID:                 h.ID,
		Response:           true,
		OpCode:             h.OpCode,
		RecursionDesired:   h.RecursionDesired,
		RecursionAvailable: true,
		RCode:              rcode,
	}
}

// errorReply is a reply without any section, for requests whose question cannot be echoed.
func errorReply(h dnsmessage.Header, rcode dnsmessage.RCode) []byte {
	b := dnsmessage.NewBuilder(make([]byte, 0, 12), replyHeader(h, rcode))
	msg, err := b.Finish()
	if err != nil { // cannot happen: a bare header always packs
		return nil
	}
	return msg
}

// newZone normalises a zone name and makes its SOA record.
func newZone(name string) (zone, error) {
	name = strings.TrimPrefix(lower(name), ".")
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	if name == "." {
		return zone{}, errRootZone
	}
	n, err := dnsmessage.NewName(name)
	if err != nil {
		return zone{}, err
	}
	ns, err := dnsmessage.NewName("ns." + name)
	if err != nil {
		ns = n
	}
	mbox, err := dnsmessage.NewName("hostmaster." + name)
	if err != nil {
		mbox = n
	}
	return zone{name: name, soa: dnsmessage.Resource{
		Header: dnsmessage.ResourceHeader{Name: n, Class: dnsmessage.ClassINET, TTL: defaultTTL},
		Body: &dnsmessage.SOAResource{
			NS: ns, MBox: mbox, Serial: 1, Refresh: 7200, Retry: 900, Expire: 1209600, MinTTL: defaultTTL,
		},
	}}, nil
}

// zoneOf returns the most specific zone that name (lower case, fully qualified) is in.
func (s *Server) zoneOf(name string) (zone, bool) {
	var best zone
	found := false
	for _, z := range s.zones {
		if (name == z.name || strings.HasSuffix(name, "."+z.name)) && len(z.name) > len(best.name) {
			best, found = z, true
		}
	}
	return best, found
}

// parseReverse returns the IPv4 address of a name "d.c.b.a.in-addr.arpa." (lower case).
func parseReverse(name string) (netip.Addr, bool) {
	rest, ok := strings.CutSuffix(name, reverseSuffix)
	if !ok {
		return netip.Addr{}, false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 4 {
		return netip.Addr{}, false
	}
	var a [4]byte
	for i, p := range parts {
		if p == "" || len(p) > 3 || (len(p) > 1 && p[0] == '0') {
			return netip.Addr{}, false
		}
		v, err := strconv.ParseUint(p, 10, 8)
		if err != nil {
			return netip.Addr{}, false
		}
		a[3-i] = byte(v)
	}
	return netip.AddrFrom4(a), true
}

// lower lower-cases ASCII letters only (DNS names are case-insensitive in ASCII alone).
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
