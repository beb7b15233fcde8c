package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nubis/nubis/internal/errdefs"
	"github.com/nubis/nubis/internal/sandbox/revert"
)

// EnsureBridge makes the bridge b exist and be up with b's gateway addresses. It is idempotent
// and converges: it creates the bridge if missing, gives it a MAC address derived from its name
// (so that it does not change as ports come and go), turns IPv6 off on it, adds missing gateway
// addresses and, on a bridge whose name starts with "nbr" (as BridgeName's do), removes every
// other IPv4 address.
//
// It refuses with errdefs.ErrConflict, before changing anything, when a gateway's subnet
// overlaps an address or route of another interface of the host (the host could not route to
// both), and when an interface named b.Name exists and is not a bridge. If it fails, what it
// created is removed again.
func EnsureBridge(ctx context.Context, b Bridge) error {
	// One at a time in this process: two instances of a VPC booting together must not both
	// create its bridge (the second would see the first's addresses as a conflict).
	bridgeMu.Lock()
	defer bridgeMu.Unlock()
	h, err := hostHandle(ctx, "bridge "+b.Name, b.validate())
	if err != nil {
		return err
	}
	defer h.Close()

	br, err := bridgeByName(h, b.Name)
	if err != nil {
		return err
	}
	brIndex := 0
	if br != nil {
		brIndex = br.Attrs().Index
	}
	if err := removeIdleBridges(h, b, brIndex); err != nil {
		return err
	}
	if err := checkOverlap(h, b, brIndex); err != nil {
		return err
	}

	rev := revert.New()
	defer rev.Fail()
	mac := MAC(b.Name)
	if br == nil {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = b.Name
		attrs.HardwareAddr = mac
		err := h.LinkAdd(&netlink.Bridge{LinkAttrs: attrs})
		switch {
		case err == nil:
			rev.Add(func() { deleteLink(h, b.Name) })
		case errors.Is(err, unix.EEXIST): // made meanwhile: converge it like any other
		default:
			return fmt.Errorf("create bridge %s: %w", b.Name, err)
		}
		if br, err = bridgeByName(h, b.Name); err != nil {
			return err
		}
		if br == nil {
			return fmt.Errorf("create bridge %s: gone right after creation: %w", b.Name, errdefs.ErrConflict)
		}
	}
	if !bytes.Equal(br.Attrs().HardwareAddr, mac) {
		if err := h.LinkSetHardwareAddr(br, mac); err != nil {
			return fmt.Errorf("bridge %s: set MAC address %v: %w", b.Name, mac, err)
		}
	}
	if err := disableIPv6(b.Name); err != nil {
		return fmt.Errorf("bridge %s: %w", b.Name, err)
	}
	if err := convergeBridgeAddrs(h, br, b, rev); err != nil {
		return err
	}
	if br.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(br); err != nil {
			return fmt.Errorf("bridge %s: set up: %w", b.Name, err)
		}
	}
	rev.Success()
	return nil
}

// convergeBridgeAddrs removes stale IPv4 addresses from a bridge of ours and adds the missing
// gateways; rev gets the removal of each address added.
func convergeBridgeAddrs(h *netlink.Handle, br netlink.Link, b Bridge, rev *revert.Reverter) error {
	addrs, err := dump(func() ([]netlink.Addr, error) { return h.AddrList(br, netlink.FAMILY_V4) })
	if err != nil {
		return fmt.Errorf("bridge %s: list addresses: %w", b.Name, err)
	}
	have := make(map[netip.Prefix]bool)
	for _, a := range addrs {
		p, ok := prefixOf(a.IPNet)
		if !ok {
			continue
		}
		if containsPrefix(b.Gateways, p) {
			have[p] = true
			continue
		}
		if !strings.HasPrefix(b.Name, bridgePrefix) {
			continue // not one of ours: leave what someone else put there
		}
		if err := h.AddrDel(br, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("bridge %s: remove stale address %v: %w", b.Name, p, err)
		}
	}
	for _, g := range b.Gateways {
		if have[g] {
			continue
		}
		addr := &netlink.Addr{IPNet: ipNet(g)}
		if err := h.AddrAdd(br, addr); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("bridge %s: add gateway address %v: %w", b.Name, g, err)
		}
		rev.Add(func() { h.AddrDel(br, addr) })
	}
	return nil
}

func containsPrefix(ps []netip.Prefix, p netip.Prefix) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// RemoveBridge deletes the bridge name; its ports are released, not deleted. It is no error if
// the bridge does not exist; an interface of that name that is not a bridge is ErrConflict.
func RemoveBridge(ctx context.Context, name string) error {
	bridgeMu.Lock()
	defer bridgeMu.Unlock()
	h, err := hostHandle(ctx, "bridge "+name, validIfName("bridge name", name))
	if err != nil {
		return err
	}
	defer h.Close()
	br, err := bridgeByName(h, name)
	if err != nil || br == nil {
		return err
	}
	if err := h.LinkDel(br); err != nil && !isLinkNotFound(err) && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("remove bridge %s: %w", name, err)
	}
	return nil
}

// bridgeByName returns the bridge name, nil if there is no interface of that name, and
// ErrConflict if the interface is not a bridge.
func bridgeByName(h *netlink.Handle, name string) (netlink.Link, error) {
	l, err := h.LinkByName(name)
	if isLinkNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up bridge %s: %w", name, err)
	}
	if _, ok := l.(*netlink.Bridge); !ok {
		return nil, fmt.Errorf("interface %s exists and is a %s, not a bridge: %w", name, l.Type(), errdefs.ErrConflict)
	}
	return l, nil
}

// deleteLink deletes a link by name, for undoing.
func deleteLink(h *netlink.Handle, name string) {
	if l, err := h.LinkByName(name); err == nil {
		h.LinkDel(l)
	}
}

// hostHandle checks ctx and the outcome of a validation, then opens a netlink handle on the
// host's namespace; what names the operation in errors.
func hostHandle(ctx context.Context, what string, invalid error) (*netlink.Handle, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if invalid != nil {
		return nil, invalid
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("%s: netlink: %w", what, err)
	}
	return h, nil
}

// bridgeMu serialises EnsureBridge and RemoveBridge.
var bridgeMu sync.Mutex

// removeIdleBridges deletes the other bridges of nubis (nbr*) that hold an address overlapping one
// of b's gateways but have no port: left by a nubis that is gone, or by one whose instances of
// that VPC have all stopped (it makes its bridge again when it needs it, or reports the conflict).
func removeIdleBridges(h *netlink.Handle, b Bridge, brIndex int) error {
	links, err := dump(func() ([]netlink.Link, error) { return h.LinkList() })
	if err != nil {
		return fmt.Errorf("bridge %s: list interfaces: %w", b.Name, err)
	}
	ports := map[int]int{}
	for _, l := range links {
		if m := l.Attrs().MasterIndex; m != 0 {
			ports[m]++
		}
	}
	for _, l := range links {
		a := l.Attrs()
		if a.Index == brIndex || l.Type() != "bridge" || !strings.HasPrefix(a.Name, bridgePrefix) || ports[a.Index] > 0 {
			continue
		}
		addrs, err := dump(func() ([]netlink.Addr, error) { return h.AddrList(l, netlink.FAMILY_V4) })
		if err != nil {
			return fmt.Errorf("bridge %s: list addresses of %s: %w", b.Name, a.Name, err)
		}
		overlaps := false
		for _, ad := range addrs {
			p, ok := prefixOf(ad.IPNet)
			for _, g := range b.Gateways {
				overlaps = overlaps || ok && p.Masked().Overlaps(g.Masked())
			}
		}
		if overlaps {
			if err := h.LinkDel(l); err != nil {
				return fmt.Errorf("bridge %s: remove idle bridge %s: %w", b.Name, a.Name, err)
			}
		}
	}
	return nil
}

// checkOverlap refuses gateways whose subnets overlap an IPv4 address or a unicast route (other
// than a default route) of any interface except the bridge itself (index brIndex, 0 if it does
// not exist yet).
func checkOverlap(h *netlink.Handle, b Bridge, brIndex int) error {
	if len(b.Gateways) == 0 {
		return nil
	}
	links, err := dump(func() ([]netlink.Link, error) { return h.LinkList() })
	if err != nil {
		return fmt.Errorf("bridge %s: list interfaces: %w", b.Name, err)
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	ifName := func(i int) string {
		if n, ok := names[i]; ok {
			return n
		}
		return fmt.Sprintf("#%d", i)
	}
	addrs, err := dump(func() ([]netlink.Addr, error) { return h.AddrList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return fmt.Errorf("bridge %s: list host addresses: %w", b.Name, err)
	}
	routes, err := dump(func() ([]netlink.Route, error) { return h.RouteList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return fmt.Errorf("bridge %s: list host routes: %w", b.Name, err)
	}
	for _, g := range b.Gateways {
		subnet := g.Masked()
		for _, a := range addrs {
			p, ok := prefixOf(a.IPNet)
			if !ok || a.LinkIndex == brIndex || !p.Masked().Overlaps(subnet) {
				continue
			}
			return fmt.Errorf("bridge %s: gateway %v: its subnet overlaps address %v on host interface %s: %w",
				b.Name, g, p, ifName(a.LinkIndex), errdefs.ErrConflict)
		}
		for _, r := range routes {
			p, ok := prefixOf(r.Dst)
			if !ok || p.Bits() == 0 || r.Type != unix.RTN_UNICAST || !p.Masked().Overlaps(subnet) {
				continue
			}
			idx := routeLinks(r)
			other := -1
			for _, i := range idx {
				if i != brIndex {
					other = i
					break
				}
			}
			if other == -1 {
				continue
			}
			return fmt.Errorf("bridge %s: gateway %v: its subnet overlaps the route to %v on host interface %s: %w",
				b.Name, g, p, ifName(other), errdefs.ErrConflict)
		}
	}
	return nil
}

// routeLinks lists the interfaces a route leaves by.
func routeLinks(r netlink.Route) []int {
	if len(r.MultiPath) == 0 {
		return []int{r.LinkIndex}
	}
	idx := make([]int, 0, len(r.MultiPath))
	for _, nh := range r.MultiPath {
		idx = append(idx, nh.LinkIndex)
	}
	return idx
}
