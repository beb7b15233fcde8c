package vpcdns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
)

// maxInFlight bounds the UDP queries answered at once; further datagrams wait in the socket.
const maxInFlight = 256

// ServeUDP answers queries on pc until it is closed (returns nil then). Replies larger than 512
// bytes, or than the EDNS0 size the client advertised, are truncated with TC set.
func (s *Server) ServeUDP(pc net.PacketConn) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, maxInFlight)
	buf := make([]byte, maxMessage)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			if transient(err) {
				s.log.Debug("vpcdns: udp read", "err", err)
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("vpcdns: udp read: %w", err)
		}
		req := bytes.Clone(buf[:n])
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
			reply, size := s.handle(ctx, req)
			cancel()
			if reply == nil {
				return
			}
			if _, err := pc.WriteTo(truncate(reply, size), addr); err != nil && !errors.Is(err, net.ErrClosed) {
				s.log.Debug("vpcdns: udp write", "client", addr.String(), "err", err)
			}
		})
	}
}

// ServeTCP answers queries on l until it is closed (returns nil then, after closing the open
// connections). Each connection carries any number of length-prefixed queries, answered in
// order, and is closed after 10 s without one.
func (s *Server) ServeTCP(l net.Listener) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
	)
	defer func() {
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			if transient(err) {
				s.log.Debug("vpcdns: tcp accept", "err", err)
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("vpcdns: tcp accept: %w", err)
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Go(func() {
			defer func() {
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
				_ = c.Close()
			}()
			s.serveConn(c)
		})
	}
}

// serveConn answers the queries of one TCP connection until it closes, idles or sends
// something that is not a query.
func (s *Server) serveConn(c net.Conn) {
	for {
		_ = c.SetReadDeadline(time.Now().Add(s.idle))
		req, err := readTCP(c)
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
		reply := s.Handle(ctx, req)
		cancel()
		if reply == nil {
			return
		}
		_ = c.SetWriteDeadline(time.Now().Add(s.idle))
		if err := writeTCP(c, reply); err != nil {
			s.log.Debug("vpcdns: tcp write", "client", c.RemoteAddr().String(), "err", err)
			return
		}
	}
}

// transient reports whether a read or accept error may go away by itself.
func transient(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []syscall.Errno{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED,
		syscall.ENOBUFS, syscall.ENOMEM, syscall.EMFILE, syscall.ENFILE, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
