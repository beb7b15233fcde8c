package ec2

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"strings"

	"github.com/nubis/nubis/internal/store"
)

// The default VPC of every account and region, with one default /20 subnet per Availability Zone
// and its default security group, as AWS creates them. They are derived from the account and
// region, not stored (and nubis keeps them: they cannot be deleted). VPCs and subnets of one's
// own are stored (vpcs.go).
const defaultVPCCIDR = "172.31.0.0/16"

type vpc struct {
	ID      string       `json:"id"`
	CIDR    netip.Prefix `json:"cidr"`
	Default bool         `json:"-"`
}

type subnet struct {
	ID      string       `json:"id"`
	VPC     vpc          `json:"vpc"`
	Zone    string       `json:"zone"`
	CIDR    netip.Prefix `json:"cidr"`
	Default bool         `json:"-"`
}

type securityGroup struct {
	ID, Name, Description string
	VPCID                 string
}

// derivedID makes a stable resource id ("vpc-" and 17 hex digits) from the parts that name it.
func derivedID(prefix string, parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return prefix + "-" + hex.EncodeToString(sum[:9])[:17]
}

func (s *Service) defaultVPC(account string) vpc {
	return vpc{ID: derivedID("vpc", account, s.region, "default"), CIDR: netip.MustParsePrefix(defaultVPCCIDR), Default: true}
}

// defaultSubnets are 172.31.0.0/20, 172.31.16.0/20... in zone order.
func (s *Service) defaultSubnets(account string) []subnet {
	v := s.defaultVPC(account)
	var out []subnet
	for i, z := range s.zones() {
		cidr := netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 31, byte(16 * i), 0}), 20)
		out = append(out, subnet{ID: derivedID("subnet", account, s.region, z.ZoneName), VPC: v, Zone: z.ZoneName, CIDR: cidr, Default: true})
	}
	return out
}

// findSubnet finds a subnet, default or not (false if there is none or it cannot be read).
func (s *Service) findSubnet(account, id string) (subnet, bool) {
	var sn subnet
	var ok bool
	s.store.View(context.Background(), func(tx store.Tx) (err error) {
		sn, ok, err = s.getSubnet(tx, account, id)
		return err
	})
	return sn, ok
}

func (s *Service) subnetInZone(account, zone string) (subnet, bool) {
	for _, sn := range s.defaultSubnets(account) {
		if sn.Zone == zone {
			return sn, true
		}
	}
	return subnet{}, false
}

func (s *Service) defaultGroup(account string) securityGroup {
	return s.defaultGroupOf(account, s.defaultVPC(account).ID)
}

// defaultGroupOf is the default security group of a VPC, which exists as long as the VPC.
func (s *Service) defaultGroupOf(account, vpcID string) securityGroup {
	return securityGroup{ID: derivedID("sg", account, s.region, vpcID, "default"), Name: "default",
		Description: "default VPC security group", VPCID: vpcID}
}

// gatewayOf is a subnet's router address: its first host address, as on AWS.
func gatewayOf(p netip.Prefix) netip.Addr { return p.Masked().Addr().Next() }

// hostAddresses is the number of addresses of a subnet instances can have: AWS reserves the first
// four and the last.
func usableRange(p netip.Prefix) (first, last netip.Addr) {
	base := p.Masked().Addr()
	first = base
	for range 4 {
		first = first.Next()
	}
	b := base.As4()
	size := uint32(1) << (32 - p.Bits())
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n += size - 2
	last = netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
	return first, last
}

// privateDNSName is the instance's private host name, as AWS names it in us-east-1
// (ip-172-31-5-9.ec2.internal) and elsewhere (ip-...<region>.compute.internal).
func (s *Service) privateDNSName(ip string) string {
	return hostnameOf(ip) + "." + s.dnsDomain()
}

func (s *Service) dnsDomain() string {
	if s.region == "us-east-1" {
		return "ec2.internal"
	}
	return s.region + ".compute.internal"
}

func hostnameOf(ip string) string { return "ip-" + strings.ReplaceAll(ip, ".", "-") }
