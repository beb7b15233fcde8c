package vpcdns

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

var (
	errRootZone        = errors.New("vpcdns: the root zone cannot be private")
	errUnsupportedBody = errors.New("vpcdns: unsupported record type in reply")
	errMismatch        = errors.New("vpcdns: reply does not match the query")
	errUpstreamFailed  = errors.New("vpcdns: upstream answered SERVFAIL or REFUSED")
	errTooLarge        = errors.New("vpcdns: message too large")
)

// forward sends q to the upstreams in order and relays the first usable reply with the client's
// ID; SERVFAIL when none answers.
func (s *Server) forward(ctx context.Context, q query) []byte {
	if len(s.upstreams) == 0 {
		return s.reply(q, dnsmessage.RCodeServerFailure, false, nil, nil)
	}
	id := uint16(rand.Uint32())
	msg, err := upstreamQuery(id, q)
	if err != nil {
		s.log.Warn("vpcdns: building upstream query", "name", q.q.Name.String(), "err", err)
		return s.reply(q, dnsmessage.RCodeServerFailure, false, nil, nil)
	}
	for _, up := range s.upstreams {
		if ctx.Err() != nil {
			break
		}
		resp, err := s.exchange(ctx, up, msg, id, q.q)
		if err != nil {
			s.log.Debug("vpcdns: upstream failed", "upstream", up, "name", q.q.Name.String(), "err", err)
			continue
		}
		binary.BigEndian.PutUint16(resp, q.hdr.ID)
		return resp
	}
	return s.reply(q, dnsmessage.RCodeServerFailure, false, nil, nil)
}

// upstreamQuery is the query sent upstream: the client's question, RD/AD/CD bits and OPT record
// under a fresh ID.
func upstreamQuery(id uint16, q query) ([]byte, error) {
	b := dnsmessage.NewBuilder(make([]byte, 0, minUDPSize), dnsmessage.Header{
		ID:               id,
		RecursionDesired: q.hdr.RecursionDesired,
		AuthenticData:    q.hdr.AuthenticData,
		CheckingDisabled: q.hdr.CheckingDisabled,
	})
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q.q); err != nil {
		return nil, err
	}
	if q.opt != nil {
		if err := b.StartAdditionals(); err != nil {
			return nil, err
		}
		if err := addAll(&b, []dnsmessage.Resource{*q.opt}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// exchange asks one upstream over UDP, and again over TCP when the UDP reply is truncated.
func (s *Server) exchange(ctx context.Context, upstream string, msg []byte, id uint16, q dnsmessage.Question) ([]byte, error) {
	resp, err := s.exchangeUDP(ctx, upstream, msg, id, q)
	if err != nil {
		return nil, err
	}
	var p dnsmessage.Parser
	if h, err := p.Start(resp); err == nil && h.Truncated {
		return s.exchangeTCP(ctx, upstream, msg, id, q)
	}
	return resp, nil
}

func (s *Server) dial(ctx context.Context, network, upstream string) (net.Conn, context.CancelFunc, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	var d net.Dialer
	c, err := d.DialContext(ctx, network, upstream)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("dial %s %s: %w", network, upstream, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	return c, func() { stop(); cancel(); _ = c.Close() }, nil
}

func (s *Server) exchangeUDP(ctx context.Context, upstream string, msg []byte, id uint16, q dnsmessage.Question) ([]byte, error) {
	c, done, err := s.dial(ctx, "udp", upstream)
	if err != nil {
		return nil, err
	}
	defer done()
	if _, err := c.Write(msg); err != nil {
		return nil, fmt.Errorf("udp write to %s: %w", upstream, err)
	}
	buf := make([]byte, maxMessage)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, fmt.Errorf("udp read from %s: %w", upstream, err)
		}
		err = checkReply(buf[:n], id, q)
		if errors.Is(err, errMismatch) {
			continue // a stray or late datagram: keep waiting for ours
		}
		if err != nil {
			return nil, err
		}
		return bytes.Clone(buf[:n]), nil
	}
}

func (s *Server) exchangeTCP(ctx context.Context, upstream string, msg []byte, id uint16, q dnsmessage.Question) ([]byte, error) {
	c, done, err := s.dial(ctx, "tcp", upstream)
	if err != nil {
		return nil, err
	}
	defer done()
	if err := writeTCP(c, msg); err != nil {
		return nil, fmt.Errorf("tcp write to %s: %w", upstream, err)
	}
	resp, err := readTCP(c)
	if err != nil {
		return nil, fmt.Errorf("tcp read from %s: %w", upstream, err)
	}
	if err := checkReply(resp, id, q); err != nil {
		return nil, err
	}
	return resp, nil
}

// checkReply checks that resp answers our query: same ID, a response, the same question (when
// it has one), and not a SERVFAIL or REFUSED that another upstream may do better than.
func checkReply(resp []byte, id uint16, q dnsmessage.Question) error {
	var p dnsmessage.Parser
	h, err := p.Start(resp)
	if err != nil {
		return fmt.Errorf("%w: %w", errMismatch, err)
	}
	if h.ID != id || !h.Response {
		return errMismatch
	}
	qs, err := p.AllQuestions()
	if err != nil {
		return fmt.Errorf("%w: %w", errMismatch, err)
	}
	if len(qs) > 1 || (len(qs) == 1 && (qs[0].Type != q.Type || qs[0].Class != q.Class ||
		lower(qs[0].Name.String()) != lower(q.Name.String()))) {
		return errMismatch
	}
	if h.RCode == dnsmessage.RCodeServerFailure || h.RCode == dnsmessage.RCodeRefused {
		return errUpstreamFailed
	}
	return nil
}

// writeTCP writes msg with its 2-byte length prefix in one write.
func writeTCP(w io.Writer, msg []byte) error {
	if len(msg) > maxMessage {
		return errTooLarge
	}
	buf := make([]byte, 2+len(msg))
	binary.BigEndian.PutUint16(buf, uint16(len(msg)))
	copy(buf[2:], msg)
	_, err := w.Write(buf)
	return err
}

// readTCP reads one length-prefixed message.
func readTCP(r io.Reader) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, err
	}
	return msg, nil
}

// truncate fits a reply into size bytes for UDP: unchanged when it fits, else its header and
// question with TC set.
func truncate(reply []byte, size int) []byte {
	if len(reply) <= size {
		return reply
	}
	var p dnsmessage.Parser
	h, err := p.Start(reply)
	if err == nil {
		var qs []dnsmessage.Question
		if qs, err = p.AllQuestions(); err == nil {
			h.Truncated = true
			b := dnsmessage.NewBuilder(make([]byte, 0, minUDPSize), h)
			b.EnableCompression()
			var msg []byte
			if err = b.StartQuestions(); err == nil {
				for _, q := range qs {
					if err = b.Question(q); err != nil {
						break
					}
				}
				if err == nil {
					msg, err = b.Finish()
				}
			}
			if err == nil && len(msg) <= size {
				return msg
			}
		}
	}
	// Header only: ID, flags with TC, all counts zero.
	msg := bytes.Clone(reply[:12])
	msg[2] |= 0x02
	clear(msg[4:])
	return msg
}

// readResolvConf returns the upstreams named in a resolv.conf file.
func readResolvConf(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("vpcdns: reading resolver config: %w", err)
	}
	return parseResolvConf(string(b)), nil
}

// parseResolvConf returns the "nameserver" addresses of a resolv.conf as "host:53", in order,
// leaving out 169.254.169.253 (this server itself) and anything that is not an IP address.
func parseResolvConf(text string) []string {
	self := netip.MustParseAddr(selfAddr)
	var ups []string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		addr, err := netip.ParseAddr(f[1])
		if err != nil || addr.Unmap() == self {
			continue
		}
		ups = append(ups, net.JoinHostPort(addr.Unmap().String(), "53"))
	}
	return ups
}
