// Package network wires instances into their VPC on this host: one Linux bridge per VPC, holding
// the gateway address (".1") of each of its subnets as the VPC router does on AWS, and one veth
// pair per instance, with one end on the bridge and the other inside the instance's network
// namespace (made by package netns), configured with the instance's MAC, address and routes.
//
// Everything here is idempotent and converges: after a restart of nubis the same calls, with the
// same arguments, find what is already there, fix what an interrupted call left half-made, and
// change nothing that is right. What a failed call created is removed again (a revert stack).
//
// Instances of different subnets of one VPC reach each other directly on the bridge (each guest
// has an on-link route for the whole VPC CIDR), so no IP forwarding is needed between them; the
// host reaches every instance through the bridge's gateway addresses. Forwarding, NAT and
// security groups (nftables) are not this package's business.
//
// Netlink requests inside a namespace go through a netlink handle opened in that namespace, so
// no goroutine of the caller ever switches namespaces. The functions are safe for concurrent use
// on different bridges and attachments; calls for the same bridge or attachment must not overlap.
package network

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"

	"github.com/nubis/nubis/internal/errdefs"
)

// Bridge is one VPC's layer-2 segment on this host: a Linux bridge holding the gateway address
// (first host address, ".1") of each subnet, as the VPC router does on AWS.
type Bridge struct {
	Name     string         // Linux interface name, <= 15 chars, e.g. BridgeName(vpcID)
	Gateways []netip.Prefix // e.g. 172.31.0.1/20, 172.31.16.1/20, 172.31.32.1/20
}

// Attachment wires one instance's network namespace to a bridge.
type Attachment struct {
	NetNS   string           // path of the pinned namespace (netns.NS.Path())
	HostIf  string           // host-side veth name, <= 15 chars (HostIfName(instanceID))
	Bridge  string           // name of the bridge (see EnsureBridge)
	GuestIf string           // name inside the namespace, "eth0" when empty
	MAC     net.HardwareAddr // guest interface MAC; MAC(HostIf) when nil
	Address netip.Prefix     // e.g. 172.31.5.9/20
	Gateway netip.Addr       // default route via, e.g. 172.31.0.1
	// OnLink are extra on-link routes in the guest (the VPC CIDR, e.g. 172.31.0.0/16, so
	// instances of other subnets of the VPC are reached directly on the bridge).
	OnLink []netip.Prefix
	// Metadata adds 169.254.169.254/32 (and the resolver's 169.254.169.253/32) to the guest's
	// loopback, so that a server listening there
	// inside the namespace is the instance metadata service.
	Metadata bool
	// VPCResolver, with Metadata, is put on the guest's loopback too: the VPC's resolver at its
	// base address plus two (VPCResolverAddr), where Amazon's DNS also answers.
	VPCResolver netip.Addr
	MTU         int // 0 = 1500 (we may later use 9001 as AWS)
}

const (
	bridgePrefix  = "nbr"
	hostIfPrefix  = "nve"
	defaultMTU    = 1500
	defaultGuest  = "eth0"
	maxIfNameLen  = 15 // IFNAMSIZ - 1
	minMTU        = 68
	maxMTU        = 65535
	dumpRetries   = 5
	sysctlIPv6Dir = "/proc/sys/net/ipv6/conf"
)

// MetadataAddr is the address of the instance metadata service, put on a guest's loopback when
// Attachment.Metadata is set.
var MetadataAddr = netip.MustParsePrefix("169.254.169.254/32")

// ResolverAddr is the address of the VPC's DNS resolver (Amazon's 169.254.169.253), put on a
// guest's loopback beside MetadataAddr.
var ResolverAddr = netip.MustParsePrefix("169.254.169.253/32")

// VPCResolverAddr is the address of the VPC's DNS resolver inside the VPC: its base address plus
// two (172.31.0.2 in the default VPC), which no subnet hands out (AWS reserves the first four
// addresses of every subnet).
func VPCResolverAddr(vpc netip.Prefix) netip.Addr {
	return vpc.Masked().Addr().Next().Next()
}

// BridgeName is the name of the bridge of the VPC vpcID: "nbr" and 12 hex digits of a hash of
// the id, stable across restarts.
func BridgeName(vpcID string) string { return bridgePrefix + hashHex(vpcID) }

// HostIfName is the name of the host side of the veth pair of id (an instance or interface id):
// "nve" and 12 hex digits of a hash of the id, stable across restarts.
func HostIfName(id string) string { return hostIfPrefix + hashHex(id) }

// MAC is a stable, locally administered unicast MAC address derived from id, starting with 0a as
// AWS's ENI addresses do (0a:xx:xx:xx:xx:xx).
func MAC(id string) net.HardwareAddr {
	sum := sha256.Sum256([]byte("mac\x00" + id))
	mac := make(net.HardwareAddr, 6)
	mac[0] = 0x0a // locally administered (bit 1), unicast (bit 0 clear)
	copy(mac[1:], sum[:5])
	return mac
}

func hashHex(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:6])
}

// validIfName checks an interface name we make: 1 to 15 characters of [a-z0-9].
func validIfName(what, name string) error {
	if name == "" || len(name) > maxIfNameLen {
		return fmt.Errorf("%s %q: must be 1 to %d characters: %w", what, name, maxIfNameLen, errdefs.ErrInvalidArgument)
	}
	for _, c := range name {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return fmt.Errorf("%s %q: only a-z and 0-9 are allowed: %w", what, name, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// validHostAddr checks that p is an IPv4 address with a subnet that has room for hosts, and
// that the address is neither the subnet's network nor its broadcast address.
func validHostAddr(what string, p netip.Prefix) error {
	a := p.Addr()
	switch {
	case !p.IsValid() || !a.Is4():
		return fmt.Errorf("%s %v: must be an IPv4 address with a prefix length: %w", what, p, errdefs.ErrInvalidArgument)
	case p.Bits() < 1 || p.Bits() > 30:
		return fmt.Errorf("%s %v: prefix length must be 1 to 30: %w", what, p, errdefs.ErrInvalidArgument)
	case a.IsLoopback() || a.IsMulticast() || a.IsLinkLocalUnicast() || a.IsUnspecified():
		return fmt.Errorf("%s %v: not a unicast host address: %w", what, p, errdefs.ErrInvalidArgument)
	case a == p.Masked().Addr():
		return fmt.Errorf("%s %v: is the network address of its subnet: %w", what, p, errdefs.ErrInvalidArgument)
	case a == lastAddr(p):
		return fmt.Errorf("%s %v: is the broadcast address of its subnet: %w", what, p, errdefs.ErrInvalidArgument)
	}
	return nil
}

// lastAddr is the last (broadcast) address of p's subnet.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	for i := p.Bits(); i < 32; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom4(b)
}

func (b Bridge) validate() error {
	if err := validIfName("bridge name", b.Name); err != nil {
		return err
	}
	for i, g := range b.Gateways {
		if err := validHostAddr("bridge "+b.Name+" gateway", g); err != nil {
			return err
		}
		for _, h := range b.Gateways[:i] {
			if g.Overlaps(h) {
				return fmt.Errorf("bridge %s: gateways %v and %v overlap: %w", b.Name, h, g, errdefs.ErrInvalidArgument)
			}
		}
	}
	return nil
}

// withDefaults fills in GuestIf, MAC and MTU.
func (a Attachment) withDefaults() Attachment {
	if a.GuestIf == "" {
		a.GuestIf = defaultGuest
	}
	if a.MAC == nil {
		a.MAC = MAC(a.HostIf)
	}
	if a.MTU == 0 {
		a.MTU = defaultMTU
	}
	return a
}

// validate checks an Attachment after withDefaults.
func (a Attachment) validate() error {
	if a.NetNS == "" {
		return fmt.Errorf("attachment %s: no network namespace path: %w", a.HostIf, errdefs.ErrInvalidArgument)
	}
	if err := validIfName("host interface name", a.HostIf); err != nil {
		return err
	}
	if err := validIfName("bridge name", a.Bridge); err != nil {
		return err
	}
	if err := validIfName("guest interface name", a.GuestIf); err != nil {
		return err
	}
	if len(a.MAC) != 6 || a.MAC[0]&1 != 0 || isZero(a.MAC) {
		return fmt.Errorf("attachment %s: MAC %v: must be a unicast Ethernet address: %w", a.HostIf, a.MAC, errdefs.ErrInvalidArgument)
	}
	if err := validHostAddr("attachment "+a.HostIf+" address", a.Address); err != nil {
		return err
	}
	if !a.Gateway.Is4() || !a.Address.Contains(a.Gateway) || a.Gateway == a.Address.Addr() ||
		a.Gateway == a.Address.Masked().Addr() || a.Gateway == lastAddr(a.Address) {
		return fmt.Errorf("attachment %s: gateway %v: must be another host address of %v: %w",
			a.HostIf, a.Gateway, a.Address.Masked(), errdefs.ErrInvalidArgument)
	}
	for _, p := range a.OnLink {
		if !p.IsValid() || !p.Addr().Is4() || p.Bits() == 0 {
			return fmt.Errorf("attachment %s: on-link route %v: must be an IPv4 prefix other than the default route: %w",
				a.HostIf, p, errdefs.ErrInvalidArgument)
		}
	}
	if a.VPCResolver.IsValid() && (!a.VPCResolver.Is4() || a.VPCResolver == a.Address.Addr()) {
		return fmt.Errorf("attachment %s: VPC resolver %v: must be an IPv4 address other than the guest's: %w",
			a.HostIf, a.VPCResolver, errdefs.ErrInvalidArgument)
	}
	if a.MTU < minMTU || a.MTU > maxMTU {
		return fmt.Errorf("attachment %s: MTU %d: must be %d to %d: %w", a.HostIf, a.MTU, minMTU, maxMTU, errdefs.ErrInvalidArgument)
	}
	return nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// ipNet converts a prefix, keeping its address (not masked), for netlink.
func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// prefixOf converts a netlink address or destination; ok is false for nil or malformed ones.
func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if bits == 0 {
		return netip.Prefix{}, false
	}
	if a.Is4In6() {
		a = a.Unmap()
		if bits == 128 {
			ones -= 96
		}
	}
	p := netip.PrefixFrom(a, ones)
	return p, p.IsValid()
}

// isLinkNotFound reports whether err says that a link does not exist.
func isLinkNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}

// dump retries a netlink dump that the kernel interrupted because the table changed meanwhile.
func dump[T any](f func() ([]T, error)) ([]T, error) {
	for i := 0; ; i++ {
		v, err := f()
		if errors.Is(err, netlink.ErrDumpInterrupted) && i < dumpRetries {
			continue
		}
		return v, err
	}
}

// disableIPv6 turns IPv6 off on a host interface, so that it takes no link-local address and
// sends no router solicitations, neighbour discovery or MLD reports into the bridge. It is a
// no-op on a kernel without IPv6.
func disableIPv6(name string) error {
	if _, err := os.Stat(sysctlIPv6Dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	path := sysctlIPv6Dir + "/" + name + "/disable_ipv6"
	if b, err := os.ReadFile(path); err == nil && len(b) > 0 && b[0] == '1' {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("disable IPv6 on %s: %w", name, err)
	}
	_, err = f.Write([]byte("1\n"))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("disable IPv6 on %s: %w", name, err)
	}
	return nil
}
