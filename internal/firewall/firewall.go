// Package firewall enforces an instance's EC2 security groups with nftables inside the
// instance's own network namespace.
//
// Every instance has a network namespace of its own (package netns), wired to its VPC's bridge
// (package network). The rules live in that namespace, in one table "inet nubis", so the host's
// firewall is never touched, one instance's rules cannot affect another's, and the instance, whose
// processes have no CAP_NET_ADMIN, cannot change them.
//
// Semantics follow AWS's security groups: everything is denied unless a rule allows it; rules
// only allow; they are stateful (the replies of an allowed connection, and ICMP errors related to
// it, pass whatever the rules of the other direction say); loopback traffic is never filtered
// (the instance metadata service at 169.254.169.254 sits on the instance's loopback, see package
// network); and, as on AWS, removing a rule does not cut connections it already let in.
//
// Render turns a Policy into an nftables ruleset; Apply installs it in one atomic transaction
// (the old rules stay in force until the new ones are in), Clear removes it. Both drive the nft
// command (package nftables), run inside the namespace.
package firewall

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/nubis/nubis/internal/errdefs"
)

// Rule is one permission of a security group, as EC2's IpPermission flattened to one source
// (ingress) or destination (egress).
type Rule struct {
	// Protocol is "tcp", "udp", "icmp", "-1" (all), or an IP protocol number "0".."255" as EC2
	// accepts; "6", "17" and "1" mean tcp, udp and icmp, and "icmpv6" means "58" (which can only
	// match IPv6, so never: instances are IPv4-only). Case does not matter.
	Protocol string
	// FromPort and ToPort are, for tcp and udp, the port range (0..65535, FromPort <= ToPort);
	// for icmp, the ICMP type (FromPort, -1 any) and code (ToPort, -1 any; must be -1 when the
	// type is). For every other protocol they are ignored, as on EC2.
	FromPort, ToPort int
	// CIDR is the IPv4 source (ingress) or destination (egress) range; or, when it is the zero
	// Prefix, ...
	CIDR netip.Prefix
	// ... Addrs is a set of IPv4 addresses (the members of a referenced security group). An
	// empty set matches nothing. Addrs must be empty when CIDR is set.
	Addrs []netip.Addr
}

// Policy is everything an instance's security groups allow: the union of their rules.
type Policy struct {
	Ingress []Rule // what may connect to the instance
	Egress  []Rule // what the instance may connect to
	// Exempt are IPv4 destinations the instance may always reach, whatever Egress says: the
	// VPC's own services that AWS's security groups do not filter either (the Amazon DNS
	// resolver at the VPC's base address + 2, the time service at 169.254.169.123). Loopback
	// (and so the metadata service) needs no entry.
	Exempt []netip.Prefix
}

// Table is the nftables table (family inet) that holds nubis's rules in a namespace.
const Table = "nubis"

// Render returns the nftables ruleset, text for `nft -f`, that enforces p. It creates the table
// if missing and flushes and refills it in the same transaction, so it can be loaded any number
// of times and replaces whatever an earlier Render put there:
//
//	table inet nubis
//	flush table inet nubis
//	table inet nubis {
//		chain input {
//			type filter hook input priority filter; policy drop;
//			iif "lo" accept
//			meta nfproto ipv6 drop
//			ct state established,related accept
//			ct state invalid drop
//			<one accept per ingress rule: ip saddr ... [protocol, ports, icmp type/code]>
//		}
//		chain output {
//			type filter hook output priority filter; policy drop;
//			oif "lo" accept
//			meta nfproto ipv6 drop
//			ct state established,related accept
//			<one accept per exempt destination, then per egress rule: ip daddr ...>
//		}
//	}
//
// Notes on the choices:
//   - ARP needs no rule: inet hooks never see it (it is family arp), so neighbour discovery on
//     IPv4 always works.
//   - IPv6 is dropped explicitly, after loopback: instances are IPv4-only (rules take only IPv4
//     ranges), and an explicit drop makes that plain rather than relying on the policy.
//     Loopback IPv6 (::1) still works.
//   - "ct state established,related" makes the rules stateful in both directions, as AWS's
//     are: replies need no egress rule, and ICMP errors about an allowed connection (such as
//     "fragmentation needed", for path MTU discovery) are related and pass, so no ICMP rule is
//     needed for them.
//   - Protocols tcp, udp and icmp match with `ip protocol` (implied by a port or type match);
//     other protocol numbers with `meta l4proto N`. A tcp/udp range of 0-65535 matches the
//     protocol with no port test.
//   - A rule with an empty address set renders as a comment: it can never match.
//
// Render reports an error wrapping errdefs.ErrInvalidArgument for a rule it cannot enforce (an
// unknown protocol, a bad port range or ICMP type/code, a non-IPv4 or missing range).
func Render(p Policy) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %[1]s\nflush table inet %[1]s\ntable inet %[1]s {\n", Table)

	b.WriteString("\tchain input {\n")
	b.WriteString("\t\ttype filter hook input priority filter; policy drop;\n")
	b.WriteString("\t\tiif \"lo\" accept\n")
	b.WriteString("\t\tmeta nfproto ipv6 drop\n")
	b.WriteString("\t\tct state established,related accept\n")
	b.WriteString("\t\tct state invalid drop\n")
	for i, r := range p.Ingress {
		line, err := r.render("saddr")
		if err != nil {
			return "", fmt.Errorf("ingress rule %d: %w", i, err)
		}
		fmt.Fprintf(&b, "\t\t%s\n", line)
	}
	b.WriteString("\t}\n\n")

	b.WriteString("\tchain output {\n")
	b.WriteString("\t\ttype filter hook output priority filter; policy drop;\n")
	b.WriteString("\t\toif \"lo\" accept\n")
	b.WriteString("\t\tmeta nfproto ipv6 drop\n")
	b.WriteString("\t\tct state established,related accept\n")
	for i, e := range p.Exempt {
		if !e.IsValid() || !e.Addr().Is4() {
			return "", fmt.Errorf("exempt destination %d (%v): not an IPv4 range: %w", i, e, errdefs.ErrInvalidArgument)
		}
		fmt.Fprintf(&b, "\t\tip daddr %s accept\n", prefixString(e))
	}
	for i, r := range p.Egress {
		line, err := r.render("daddr")
		if err != nil {
			return "", fmt.Errorf("egress rule %d: %w", i, err)
		}
		fmt.Fprintf(&b, "\t\t%s\n", line)
	}
	b.WriteString("\t}\n}\n")
	return b.String(), nil
}

// Validate reports whether Render can enforce r, with an error wrapping
// errdefs.ErrInvalidArgument if not.
func (r Rule) Validate() error {
	_, err := r.render("saddr")
	return err
}

// render returns the nft rule for r, matching the peer's address with dir ("saddr" for
// ingress, "daddr" for egress); a comment if r can never match.
func (r Rule) render(dir string) (string, error) {
	proto, err := normalizeProtocol(r.Protocol)
	if err != nil {
		return "", err
	}
	match, err := r.protocolMatch(proto)
	if err != nil {
		return "", err
	}

	var peer string
	switch {
	case r.CIDR.IsValid():
		if len(r.Addrs) > 0 {
			return "", fmt.Errorf("both a range (%v) and %d addresses: %w", r.CIDR, len(r.Addrs), errdefs.ErrInvalidArgument)
		}
		if !r.CIDR.Addr().Is4() {
			return "", fmt.Errorf("range %v: not IPv4: %w", r.CIDR, errdefs.ErrInvalidArgument)
		}
		peer = "ip " + dir + " " + prefixString(r.CIDR)
	case len(r.Addrs) == 0:
		// The members of an empty security group: nothing to allow. A comment keeps the
		// rendered ruleset readable against the rule list.
		return strings.Join(slices.DeleteFunc([]string{"# never matches (empty address set): ip", dir, "{}", match, "accept"}, func(s string) bool { return s == "" }), " "), nil
	default:
		set, err := addrSet(r.Addrs)
		if err != nil {
			return "", err
		}
		peer = "ip " + dir + " " + set
	}
	if match == "" {
		return peer + " accept", nil
	}
	return peer + " " + match + " accept", nil
}

// protocolMatch returns the nft match for the protocol and ports of r, with proto normalised;
// "" for all traffic.
func (r Rule) protocolMatch(proto string) (string, error) {
	switch proto {
	case "-1":
		return "", nil
	case "tcp", "udp":
		if r.FromPort < 0 || r.ToPort > 65535 || r.FromPort > r.ToPort {
			return "", fmt.Errorf("%s port range %d-%d: want 0 <= from <= to <= 65535: %w", proto, r.FromPort, r.ToPort, errdefs.ErrInvalidArgument)
		}
		switch {
		case r.FromPort == 0 && r.ToPort == 65535:
			return "ip protocol " + proto, nil
		case r.FromPort == r.ToPort:
			return fmt.Sprintf("%s dport %d", proto, r.FromPort), nil
		default:
			return fmt.Sprintf("%s dport %d-%d", proto, r.FromPort, r.ToPort), nil
		}
	case "icmp":
		typ, code := r.FromPort, r.ToPort
		if typ < -1 || typ > 255 || code < -1 || code > 255 {
			return "", fmt.Errorf("icmp type %d code %d: want -1..255: %w", typ, code, errdefs.ErrInvalidArgument)
		}
		switch {
		case typ == -1 && code != -1:
			return "", fmt.Errorf("icmp code %d with any type: a code needs a type: %w", code, errdefs.ErrInvalidArgument)
		case typ == -1:
			return "ip protocol icmp", nil
		case code == -1:
			return fmt.Sprintf("icmp type %d", typ), nil
		default:
			return fmt.Sprintf("icmp type %d icmp code %d", typ, code), nil
		}
	default: // a number, by normalizeProtocol
		return "meta l4proto " + proto, nil
	}
}

// normalizeProtocol maps EC2's protocol forms to "tcp", "udp", "icmp", "-1", or a decimal number
// 0..255 for any other protocol.
func normalizeProtocol(p string) (string, error) {
	s := strings.ToLower(strings.TrimSpace(p))
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n <= 255 {
		s = strconv.Itoa(n) // "006" is "6"
	}
	switch s {
	case "tcp", "6":
		return "tcp", nil
	case "udp", "17":
		return "udp", nil
	case "icmp", "1":
		return "icmp", nil
	case "icmpv6", "58":
		return "58", nil
	case "-1":
		return "-1", nil
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n <= 255 {
		return s, nil
	}
	return "", fmt.Errorf("protocol %q: want tcp, udp, icmp, icmpv6, -1 or a number 0-255: %w", p, errdefs.ErrInvalidArgument)
}

// addrSet renders addrs, which must be IPv4, as an anonymous set (a single address for one),
// sorted and without duplicates so that the ruleset is the same for the same members.
func addrSet(addrs []netip.Addr) (string, error) {
	sorted := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		a = a.Unmap()
		if !a.Is4() {
			return "", fmt.Errorf("address %v: not IPv4: %w", a, errdefs.ErrInvalidArgument)
		}
		sorted = append(sorted, a)
	}
	slices.SortFunc(sorted, netip.Addr.Compare)
	sorted = slices.Compact(sorted)
	if len(sorted) == 1 {
		return sorted[0].String(), nil
	}
	parts := make([]string, len(sorted))
	for i, a := range sorted {
		parts[i] = a.String()
	}
	return "{ " + strings.Join(parts, ", ") + " }", nil
}

// prefixString renders p with its host bits cleared (nft refuses them), as a bare address when
// it is a single host.
func prefixString(p netip.Prefix) string {
	p = p.Masked()
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}
