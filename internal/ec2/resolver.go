package ec2

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"

	"github.com/nubis/nubis/internal/errdefs"
	"github.com/nubis/nubis/internal/machine"
	"github.com/nubis/nubis/internal/network"
	"github.com/nubis/nubis/internal/store"
	"github.com/nubis/nubis/internal/vpcdns"
)

// The VPC's DNS resolver, as Amazon provides it at 169.254.169.253 and at the VPC's base address
// plus two (172.31.0.2): served by nubis inside each instance's network (UDP and TCP port 53). It
// answers the private DNS names of the instances of the instance's VPC (ip-172-31-5-9.ec2.internal,
// and the reverse), and forwards every other name to the host's resolvers.

func (f *fleet) serveDNS(t *tracked, m machine.Machine) {
	addrs := []netip.Addr{network.ResolverAddr.Addr()}
	if cidr, err := f.vpcCIDROf(t.account, t.id); err != nil {
		f.log.Error("instance DNS resolver: the VPC's address", "id", t.id, "err", err)
	} else {
		addrs = append(addrs, network.VPCResolverAddr(cidr))
	}
	var socks []io.Closer
	var serve []func(*vpcdns.Server)
	for _, a := range addrs {
		addr := net.JoinHostPort(a.String(), "53")
		pc, err := m.ListenPacket(f.ctx, "udp", addr)
		if err != nil {
			f.log.Error("instance DNS resolver", "id", t.id, "addr", addr, "err", err)
			continue
		}
		l, err := m.Listen(f.ctx, "tcp", addr)
		if err != nil {
			pc.Close()
			f.log.Error("instance DNS resolver", "id", t.id, "addr", addr, "err", err)
			continue
		}
		socks = append(socks, pc, l)
		serve = append(serve, func(srv *vpcdns.Server) { srv.ServeUDP(pc) }, func(srv *vpcdns.Server) { srv.ServeTCP(l) })
	}
	srv := vpcdns.New(vpcdns.Config{Zones: []string{f.s.dnsDomain() + "."},
		Lookup: f.dnsLookup(t.account, t.id), Reverse: f.dnsReverse(t.account, t.id),
		Log: f.log.With("id", t.id, "part", "dns")})
	t.mu.Lock()
	for _, c := range t.dns {
		c.Close()
	}
	t.dns = socks
	t.mu.Unlock()
	for _, run := range serve {
		f.goDo(func() { run(srv) })
	}
}

// vpcCIDROf returns the CIDR of the VPC an instance is in.
func (f *fleet) vpcCIDROf(account, id string) (netip.Prefix, error) {
	var cidr netip.Prefix
	err := f.s.store.View(f.ctx, func(tx store.Tx) error {
		in, err := f.s.getInstanceOf(tx, account, id)
		if err != nil {
			return err
		}
		v, ok, err := f.s.getVPC(tx, account, in.VPCID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("VPC %s: %w", in.VPCID, errdefs.ErrNotFound)
		}
		cidr = v.CIDR
		return nil
	})
	return cidr, err
}

// vpcPeers returns the instances (not terminated) of the VPC the instance id is in.
func (f *fleet) vpcPeers(ctx context.Context, account, id string) ([]instance, error) {
	var out []instance
	err := f.s.store.View(ctx, func(tx store.Tx) error {
		insts, err := f.s.listInstancesTx(tx, account)
		if err != nil {
			return err
		}
		vpc := ""
		for _, in := range insts {
			if in.ID == id {
				vpc = in.VPCID
			}
		}
		for _, in := range insts {
			if in.VPCID == vpc && in.State != stateTerminated {
				out = append(out, in)
			}
		}
		return nil
	})
	return out, err
}

// dnsLookup answers ip-a-b-c-d.<domain>. for the instances of the VPC.
func (f *fleet) dnsLookup(account, id string) func(context.Context, string) (netip.Addr, bool, error) {
	return func(ctx context.Context, name string) (netip.Addr, bool, error) {
		host := strings.TrimSuffix(strings.TrimSuffix(name, "."), "."+f.s.dnsDomain())
		peers, err := f.vpcPeers(ctx, account, id)
		if err != nil {
			return netip.Addr{}, false, err
		}
		for _, in := range peers {
			if hostnameOf(in.PrivateIP) == host {
				a, err := netip.ParseAddr(in.PrivateIP)
				return a, err == nil, nil
			}
		}
		return netip.Addr{}, false, nil
	}
}

// dnsReverse answers the PTR questions for the VPC's instances.
func (f *fleet) dnsReverse(account, id string) func(context.Context, netip.Addr) (string, bool, error) {
	return func(ctx context.Context, addr netip.Addr) (string, bool, error) {
		peers, err := f.vpcPeers(ctx, account, id)
		if err != nil {
			return "", false, err
		}
		for _, in := range peers {
			if in.PrivateIP == addr.String() {
				return f.s.privateDNSName(in.PrivateIP) + ".", true, nil
			}
		}
		return "", false, nil
	}
}
