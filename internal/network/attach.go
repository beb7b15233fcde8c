package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/nubis/nubis/internal/errdefs"
	"github.com/nubis/nubis/internal/sandbox/revert"
)

// testHookCreated, when a test sets it, runs right after Attach has created a veth pair; an
// error from it fails Attach there, so that the test sees the pair removed again.
var testHookCreated func() error

// Attach wires the namespace a.NetNS to the bridge a.Bridge (which must exist: ErrNotFound
// otherwise) with a veth pair: the host end a.HostIf is a port of the bridge, the guest end
// a.GuestIf has a.MAC, a.MTU and a.Address, a default route via a.Gateway and on-link routes
// to a.OnLink; the guest's loopback is up and, with a.Metadata, holds MetadataAddr. The host's neighbour
// entry for a.Address on the bridge is set to a.MAC.
//
// Attach is idempotent and converges: called again with the same Attachment (after a restart
// of nubis, say) it changes nothing that is right and fixes what is not; a host end whose peer
// is not in the namespace, left by an interrupted call, is deleted and the pair made anew. It
// does not remove addresses or routes the guest added itself, except an address with the
// attachment's IP and another prefix length. If Attach fails, the pair is removed again if this
// call created it.
func Attach(ctx context.Context, a Attachment) error {
	a = a.withDefaults()
	h, err := hostHandle(ctx, "attach "+a.HostIf, a.validate())
	if err != nil {
		return err
	}
	defer h.Close()
	br, err := bridgeByName(h, a.Bridge)
	if err != nil {
		return fmt.Errorf("attach %s: %w", a.HostIf, err)
	}
	if br == nil {
		return fmt.Errorf("attach %s: bridge %s: %w", a.HostIf, a.Bridge, errdefs.ErrNotFound)
	}

	nsh, err := openNS(a.NetNS)
	if err != nil {
		return fmt.Errorf("attach %s: %w", a.HostIf, err)
	}
	defer nsh.Close()
	nh, err := netlink.NewHandleAt(nsh, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("attach %s: netlink in namespace %s: %w", a.HostIf, a.NetNS, err)
	}
	defer nh.Close()

	rev := revert.New()
	defer rev.Fail()
	host, guest, err := ensurePair(h, nh, nsh, a, rev)
	if err != nil {
		return fmt.Errorf("attach %s: %w", a.HostIf, err)
	}
	if err := convergeHost(h, host, br, a); err != nil {
		return fmt.Errorf("attach %s: %w", a.HostIf, err)
	}
	if err := convergeGuest(nh, guest, a, rev); err != nil {
		return fmt.Errorf("attach %s: in namespace %s: %w", a.HostIf, a.NetNS, err)
	}
	if err := announce(h, br, a); err != nil {
		return fmt.Errorf("attach %s: %w", a.HostIf, err)
	}
	if err := waitForwarding(ctx, a.HostIf); err != nil {
		return fmt.Errorf("attach %s: %w", a.HostIf, err)
	}
	rev.Success()
	return nil
}

// Detach deletes the host end hostIf of an attachment, and with it the guest end. It is no
// error if it does not exist; an interface of that name that is not a veth is ErrConflict.
func Detach(ctx context.Context, hostIf string) error {
	h, err := hostHandle(ctx, "detach "+hostIf, validIfName("host interface name", hostIf))
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(hostIf)
	if isLinkNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("detach %s: %w", hostIf, err)
	}
	if _, ok := l.(*netlink.Veth); !ok {
		return fmt.Errorf("detach %s: interface is a %s, not a veth: %w", hostIf, l.Type(), errdefs.ErrConflict)
	}
	if err := h.LinkDel(l); err != nil && !isLinkNotFound(err) && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("detach %s: %w", hostIf, err)
	}
	return nil
}

// List returns the names of the host's bridges and veth host ends that look like this
// package's (BridgeName's and HostIfName's prefixes), for reconciling at start-up.
func List(ctx context.Context) (bridges, hostIfs []string, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, nil, fmt.Errorf("list interfaces: netlink: %w", err)
	}
	defer h.Close()
	links, err := dump(h.LinkList)
	if err != nil {
		return nil, nil, fmt.Errorf("list interfaces: %w", err)
	}
	for _, l := range links {
		name := l.Attrs().Name
		switch l.(type) {
		case *netlink.Bridge:
			if strings.HasPrefix(name, bridgePrefix) {
				bridges = append(bridges, name)
			}
		case *netlink.Veth:
			if strings.HasPrefix(name, hostIfPrefix) {
				hostIfs = append(hostIfs, name)
			}
		}
	}
	return bridges, hostIfs, nil
}

// openNS opens the namespace file path, checking that it is one.
func openNS(path string) (vnetns.NsHandle, error) {
	nsh, err := vnetns.GetFromPath(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("network namespace %s: %w", path, errdefs.ErrNotFound)
		}
		return 0, fmt.Errorf("open network namespace %s: %w", path, err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(nsh), &st); err != nil || st.Type != unix.NSFS_MAGIC {
		nsh.Close()
		return 0, fmt.Errorf("%s is not a network namespace file: %w", path, errdefs.ErrInvalidArgument)
	}
	return nsh, nil
}

// ensurePair finds the veth pair of a, deleting a host end whose peer is not in the namespace,
// or creates it (pushing its removal onto rev), and returns both ends.
func ensurePair(h, nh *netlink.Handle, nsh vnetns.NsHandle, a Attachment, rev *revert.Reverter) (host, guest netlink.Link, err error) {
	host, err = h.LinkByName(a.HostIf)
	switch {
	case isLinkNotFound(err):
		host = nil
	case err != nil:
		return nil, nil, fmt.Errorf("look up %s: %w", a.HostIf, err)
	}
	if host != nil {
		if _, ok := host.(*netlink.Veth); !ok {
			return nil, nil, fmt.Errorf("interface %s exists and is a %s, not a veth: %w", a.HostIf, host.Type(), errdefs.ErrConflict)
		}
		if guest, err = findPeer(nh, host); err != nil {
			return nil, nil, err
		}
		if guest == nil {
			// Half-made by an interrupted call (or wired to another namespace): start again.
			if err := h.LinkDel(host); err != nil && !isLinkNotFound(err) && !errors.Is(err, unix.ENODEV) {
				return nil, nil, fmt.Errorf("delete stale %s: %w", a.HostIf, err)
			}
			host = nil
		}
	}
	other, err := nh.LinkByName(a.GuestIf)
	switch {
	case isLinkNotFound(err):
	case err != nil:
		return nil, nil, fmt.Errorf("look up %s in namespace %s: %w", a.GuestIf, a.NetNS, err)
	case guest == nil || other.Attrs().Index != guest.Attrs().Index:
		return nil, nil, fmt.Errorf("interface %s in namespace %s exists and is not the peer of %s: %w",
			a.GuestIf, a.NetNS, a.HostIf, errdefs.ErrConflict)
	}
	if host != nil {
		return host, guest, nil
	}

	attrs := netlink.NewLinkAttrs()
	attrs.Name = a.HostIf
	attrs.MTU = a.MTU
	veth := &netlink.Veth{
		LinkAttrs:        attrs,
		PeerName:         a.GuestIf,
		PeerHardwareAddr: a.MAC,
		PeerNamespace:    netlink.NsFd(nsh),
		PeerTxQLen:       -1,
		PeerMTU:          uint32(a.MTU),
	}
	if err := h.LinkAdd(veth); err != nil {
		return nil, nil, fmt.Errorf("create veth pair %s/%s: %w", a.HostIf, a.GuestIf, err)
	}
	rev.Add(func() { deleteLink(h, a.HostIf) })
	if testHookCreated != nil {
		if err := testHookCreated(); err != nil {
			return nil, nil, err
		}
	}
	if host, err = h.LinkByName(a.HostIf); err != nil {
		return nil, nil, fmt.Errorf("look up new %s: %w", a.HostIf, err)
	}
	if guest, err = findPeer(nh, host); err != nil {
		return nil, nil, err
	}
	if guest == nil {
		return nil, nil, fmt.Errorf("the peer of new %s is not in namespace %s: %w", a.HostIf, a.NetNS, errdefs.ErrConflict)
	}
	return host, guest, nil
}

// findPeer returns the veth in the namespace of nh whose peer is host, or nil. Each end of a
// pair names the other's index (IFLA_LINK); both must match.
func findPeer(nh *netlink.Handle, host netlink.Link) (netlink.Link, error) {
	links, err := dump(nh.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list interfaces in namespace: %w", err)
	}
	for _, l := range links {
		if _, ok := l.(*netlink.Veth); !ok {
			continue
		}
		if l.Attrs().ParentIndex == host.Attrs().Index && host.Attrs().ParentIndex == l.Attrs().Index {
			return l, nil
		}
	}
	return nil, nil
}

// convergeHost makes the host end a port of br, with IPv6 off, the MTU of a, and up.
func convergeHost(h *netlink.Handle, host, br netlink.Link, a Attachment) error {
	if err := disableIPv6(a.HostIf); err != nil {
		return err
	}
	attrs := host.Attrs()
	if attrs.MTU != a.MTU {
		if err := h.LinkSetMTU(host, a.MTU); err != nil {
			return fmt.Errorf("set MTU %d: %w", a.MTU, err)
		}
	}
	if attrs.MasterIndex != br.Attrs().Index {
		if err := h.LinkSetMasterByIndex(host, br.Attrs().Index); err != nil {
			return fmt.Errorf("add to bridge %s: %w", a.Bridge, err)
		}
	}
	if attrs.Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(host); err != nil {
			return fmt.Errorf("set up: %w", err)
		}
	}
	return nil
}

// announce tells the host's neighbour table the guest's MAC, as a gratuitous ARP from the guest
// would. Without it a host that tried the address while nothing answered (an instance stopped,
// then started again at the same address) holds an incomplete entry and sends its first packets
// only at the next ARP retry, up to a second later.
func announce(h *netlink.Handle, br netlink.Link, a Attachment) error {
	err := h.NeighSet(&netlink.Neigh{LinkIndex: br.Attrs().Index, Family: netlink.FAMILY_V4,
		State: netlink.NUD_REACHABLE, IP: net.IP(a.Address.Addr().AsSlice()), HardwareAddr: a.MAC})
	if err != nil {
		return fmt.Errorf("neighbour %v on %s: %w", a.Address.Addr(), a.Bridge, err)
	}
	return nil
}

// portForwardingWait bounds how long Attach waits for the bridge to forward through a new port.
const portForwardingWait = 5 * time.Second

// waitForwarding waits until the bridge forwards frames through its port hostIf. The kernel
// enables a port when it sees the veth's carrier, in its link-watch work, which can run some
// time after the call that brought the pair up returned; a packet sent before that is dropped
// (a first TCP SYN then waits a second for its retransmission).
func waitForwarding(ctx context.Context, hostIf string) error {
	path := "/sys/class/net/" + hostIf + "/brport/state"
	deadline := time.Now().Add(portForwardingWait)
	for {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("bridge port state: %w", err)
		}
		if strings.TrimSpace(string(b)) == brStateForwarding {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bridge port not forwarding after %v (state %s): %w", portForwardingWait,
				strings.TrimSpace(string(b)), errdefs.ErrUnavailable)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// brStateForwarding is BR_STATE_FORWARDING in a bridge port's sysfs state.
const brStateForwarding = "3"

// convergeGuest configures the guest end and the loopback inside the namespace.
func convergeGuest(nh *netlink.Handle, guest netlink.Link, a Attachment, rev *revert.Reverter) error {
	attrs := guest.Attrs()
	rename := attrs.Name != a.GuestIf
	remac := !bytes.Equal(attrs.HardwareAddr, a.MAC)
	up := attrs.Flags&net.FlagUp != 0
	if (rename || remac) && up {
		if err := nh.LinkSetDown(guest); err != nil {
			return fmt.Errorf("set %s down: %w", attrs.Name, err)
		}
		up = false
	}
	if rename {
		if err := nh.LinkSetName(guest, a.GuestIf); err != nil {
			return fmt.Errorf("rename %s to %s: %w", attrs.Name, a.GuestIf, err)
		}
	}
	if remac {
		if err := nh.LinkSetHardwareAddr(guest, a.MAC); err != nil {
			return fmt.Errorf("%s: set MAC %v: %w", a.GuestIf, a.MAC, err)
		}
	}
	if attrs.MTU != a.MTU {
		if err := nh.LinkSetMTU(guest, a.MTU); err != nil {
			return fmt.Errorf("%s: set MTU %d: %w", a.GuestIf, a.MTU, err)
		}
	}
	if !up {
		if err := nh.LinkSetUp(guest); err != nil {
			return fmt.Errorf("set %s up: %w", a.GuestIf, err)
		}
	}
	if err := convergeGuestAddr(nh, guest, a); err != nil {
		return err
	}
	if err := convergeGuestRoutes(nh, guest, a); err != nil {
		return err
	}
	return convergeLoopback(nh, a, rev)
}

func convergeGuestAddr(nh *netlink.Handle, guest netlink.Link, a Attachment) error {
	addrs, err := dump(func() ([]netlink.Addr, error) { return nh.AddrList(guest, netlink.FAMILY_V4) })
	if err != nil {
		return fmt.Errorf("%s: list addresses: %w", a.GuestIf, err)
	}
	have := false
	for _, ad := range addrs {
		p, ok := prefixOf(ad.IPNet)
		switch {
		case !ok:
		case p == a.Address:
			have = true
		case p.Addr() == a.Address.Addr(): // the same IP with another prefix length
			if err := nh.AddrDel(guest, &ad); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
				return fmt.Errorf("%s: remove address %v: %w", a.GuestIf, p, err)
			}
		}
	}
	if have {
		return nil
	}
	if err := nh.AddrAdd(guest, &netlink.Addr{IPNet: ipNet(a.Address)}); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("%s: add address %v: %w", a.GuestIf, a.Address, err)
	}
	return nil
}

func convergeGuestRoutes(nh *netlink.Handle, guest netlink.Link, a Attachment) error {
	routes, err := dump(func() ([]netlink.Route, error) { return nh.RouteList(guest, netlink.FAMILY_V4) })
	if err != nil {
		return fmt.Errorf("%s: list routes: %w", a.GuestIf, err)
	}
	has := func(dst netip.Prefix, gw netip.Addr) bool {
		for _, r := range routes {
			p, ok := prefixOf(r.Dst)
			if !ok {
				p = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
			}
			if p != dst {
				continue
			}
			rgw, ok := netip.AddrFromSlice(r.Gw)
			if (!gw.IsValid() && !ok) || (ok && rgw.Unmap() == gw) {
				return true
			}
		}
		return false
	}
	for _, p := range a.OnLink {
		p = p.Masked()
		if p == a.Address.Masked() || has(p, netip.Addr{}) {
			continue // the kernel's own route for the address's subnet, or there already
		}
		r := &netlink.Route{LinkIndex: guest.Attrs().Index, Dst: ipNet(p), Scope: netlink.SCOPE_LINK, Protocol: unix.RTPROT_STATIC}
		if err := nh.RouteReplace(r); err != nil {
			return fmt.Errorf("%s: add on-link route %v: %w", a.GuestIf, p, err)
		}
	}
	def := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	if !has(def, a.Gateway) {
		r := &netlink.Route{
			LinkIndex: guest.Attrs().Index,
			Dst:       ipNet(def),
			Gw:        net.IP(a.Gateway.AsSlice()),
			Protocol:  unix.RTPROT_STATIC,
		}
		if err := nh.RouteReplace(r); err != nil {
			return fmt.Errorf("%s: add default route via %v: %w", a.GuestIf, a.Gateway, err)
		}
	}
	return nil
}

// convergeLoopback sets lo up and puts the service addresses (MetadataAddr, ResolverAddr,
// a.VPCResolver) on it or takes them off, as a.Metadata says.
func convergeLoopback(nh *netlink.Handle, a Attachment, rev *revert.Reverter) error {
	lo, err := nh.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	if lo.Attrs().Flags&net.FlagUp == 0 {
		if err := nh.LinkSetUp(lo); err != nil {
			return fmt.Errorf("set loopback up: %w", err)
		}
	}
	addrs, err := dump(func() ([]netlink.Addr, error) { return nh.AddrList(lo, netlink.FAMILY_V4) })
	if err != nil {
		return fmt.Errorf("loopback: list addresses: %w", err)
	}
	wants := []netip.Prefix{MetadataAddr, ResolverAddr}
	if a.VPCResolver.IsValid() {
		wants = append(wants, netip.PrefixFrom(a.VPCResolver, 32))
	}
	for _, want := range wants {
		var have *netlink.Addr
		for _, ad := range addrs {
			if p, ok := prefixOf(ad.IPNet); ok && p == want {
				have = &ad
			}
		}
		switch {
		case a.Metadata && have == nil:
			addr := &netlink.Addr{IPNet: ipNet(want), Scope: int(netlink.SCOPE_HOST)}
			if err := nh.AddrAdd(lo, addr); err != nil && !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("loopback: add service address %v: %w", want, err)
			}
			rev.Add(func() { nh.AddrDel(lo, addr) })
		case !a.Metadata && have != nil:
			if err := nh.AddrDel(lo, have); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
				return fmt.Errorf("loopback: remove service address %v: %w", want, err)
			}
		}
	}
	return nil
}
