package network

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/nubis/nubis/internal/errdefs"
)

// VPC is one VPC's place on the host, for the host's rules: its bridge and its address block.
type VPC struct {
	Bridge string
	CIDR   netip.Prefix
}

// The host's own rules for instances, in one nftables table of nubis's (family ip) and nowhere
// else: traffic of a VPC that leaves the host is masqueraded to the host's address (outbound NAT,
// as a VPC's internet gateway does for instances with public addresses), and the host does not
// forward between two VPCs' bridges (so their instances cannot reach each other). Forwarding
// needs net.ipv4.ip_forward, which ApplyHostRules turns on; the forward chain accepts everything
// else, so the host's other forwarding is as it was.
var tableRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

// RenderHostRules returns the ruleset of ApplyHostRules, for table.
func RenderHostRules(table string, vpcs []VPC) (string, error) {
	if !tableRE.MatchString(table) {
		return "", fmt.Errorf("host rules: table name %q: %w", table, errdefs.ErrInvalidArgument)
	}
	vs := append([]VPC(nil), vpcs...)
	sort.Slice(vs, func(i, j int) bool { return vs[i].Bridge < vs[j].Bridge })
	var b strings.Builder
	fmt.Fprintf(&b, "table ip %s\nflush table ip %s\ntable ip %s {\n", table, table, table)
	b.WriteString("\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n")
	for _, v := range vs {
		if err := validIfName("bridge name", v.Bridge); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "\t\tiifname %q oifname %q oifname != %q drop\n", v.Bridge, bridgePrefix+"*", v.Bridge)
	}
	b.WriteString("\t}\n\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n")
	for _, v := range vs {
		if !v.CIDR.Addr().Is4() {
			return "", fmt.Errorf("host rules: VPC block %v is not IPv4: %w", v.CIDR, errdefs.ErrInvalidArgument)
		}
		fmt.Fprintf(&b, "\t\tip saddr %s oifname != %q masquerade\n", v.CIDR.Masked(), bridgePrefix+"*")
	}
	b.WriteString("\t}\n}\n")
	return b.String(), nil
}

var hostRulesMu sync.Mutex

// ApplyHostRules installs the host's rules for vpcs in table, atomically (one nft transaction),
// and turns IPv4 forwarding on when there is a VPC.
func ApplyHostRules(ctx context.Context, table string, vpcs []VPC) error {
	rules, err := RenderHostRules(table, vpcs)
	if err != nil {
		return err
	}
	hostRulesMu.Lock()
	defer hostRulesMu.Unlock()
	if err := nft(ctx, rules); err != nil {
		return fmt.Errorf("host rules: %w", err)
	}
	if len(vpcs) > 0 {
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644); err != nil {
			return fmt.Errorf("host rules: turn on IPv4 forwarding: %w", err)
		}
	}
	return nil
}

// RemoveHostRules deletes table (no error if it is absent). IPv4 forwarding stays as it is: other
// software may rely on it by now.
func RemoveHostRules(ctx context.Context, table string) error {
	if !tableRE.MatchString(table) {
		return fmt.Errorf("host rules: table name %q: %w", table, errdefs.ErrInvalidArgument)
	}
	hostRulesMu.Lock()
	defer hostRulesMu.Unlock()
	if err := nft(ctx, fmt.Sprintf("table ip %s\ndelete table ip %s\n", table, table)); err != nil {
		return fmt.Errorf("host rules: %w", err)
	}
	return nil
}

func nft(ctx context.Context, rules string) error {
	bin := "/usr/sbin/nft"
	if p, err := exec.LookPath("nft"); err == nil {
		bin = p
	}
	cmd := exec.CommandContext(ctx, bin, "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nft: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
