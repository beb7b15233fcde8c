package ec2

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

// The read side of the default VPC, its subnets and its default security group. Creating VPCs,
// subnets and groups of one's own, and enforcing groups, are the networking issue's.

type describeNetInput struct {
	VpcIDs     []string `query:"VpcId"`
	SubnetIDs  []string `query:"SubnetId"`
	GroupIDs   []string `query:"GroupId"`
	GroupNames []string `query:"GroupName"`
	Filters    []Filter `query:"Filter"`
	MaxResults int      `query:"MaxResults"`
	NextToken  string   `query:"NextToken"`
	DryRun     bool     `query:"DryRun"`
}

type cidrAssociation struct {
	AssociationID  string `xml:"associationId"`
	CidrBlock      string `xml:"cidrBlock"`
	CidrBlockState struct {
		State string `xml:"state"`
	} `xml:"cidrBlockState"`
}

type vpcXML struct {
	VpcID            string                         `xml:"vpcId"`
	OwnerID          string                         `xml:"ownerId"`
	State            string                         `xml:"state"`
	CidrBlock        string                         `xml:"cidrBlock"`
	CidrAssociations awsproto.List[cidrAssociation] `xml:"cidrBlockAssociationSet"`
	DhcpOptionsID    string                         `xml:"dhcpOptionsId"`
	InstanceTenancy  string                         `xml:"instanceTenancy"`
	IsDefault        bool                           `xml:"isDefault"`
	Tags             awsproto.List[Tag]             `xml:"tagSet,omitempty"`
}

type subnetXML struct {
	SubnetID                string             `xml:"subnetId"`
	SubnetArn               string             `xml:"subnetArn"`
	State                   string             `xml:"state"`
	VpcID                   string             `xml:"vpcId"`
	OwnerID                 string             `xml:"ownerId"`
	CidrBlock               string             `xml:"cidrBlock"`
	AvailableIPAddressCount int                `xml:"availableIpAddressCount"`
	AvailabilityZone        string             `xml:"availabilityZone"`
	AvailabilityZoneID      string             `xml:"availabilityZoneId"`
	DefaultForAz            bool               `xml:"defaultForAz"`
	MapPublicIPOnLaunch     bool               `xml:"mapPublicIpOnLaunch"`
	AssignIpv6OnCreation    bool               `xml:"assignIpv6AddressOnCreation"`
	Tags                    awsproto.List[Tag] `xml:"tagSet,omitempty"`
}

type ipRange struct {
	CidrIP      string `xml:"cidrIp"`
	Description string `xml:"description,omitempty"`
}

type groupPair struct {
	Description string `xml:"description,omitempty"`
	GroupID     string `xml:"groupId"`
	UserID      string `xml:"userId"`
}

type ipPermissionXML struct {
	FromPort    *int                     `xml:"fromPort,omitempty"`
	ToPort      *int                     `xml:"toPort,omitempty"`
	IPProtocol  string                   `xml:"ipProtocol"`
	Groups      awsproto.List[groupPair] `xml:"groups"`
	IPRanges    awsproto.List[ipRange]   `xml:"ipRanges"`
	Ipv6Ranges  awsproto.List[ipRange]   `xml:"ipv6Ranges"`
	PrefixLists awsproto.List[string]    `xml:"prefixListIds"`
}

type securityGroupXML struct {
	OwnerID       string                         `xml:"ownerId"`
	GroupID       string                         `xml:"groupId"`
	GroupName     string                         `xml:"groupName"`
	Description   string                         `xml:"groupDescription"`
	VpcID         string                         `xml:"vpcId"`
	IPPermissions awsproto.List[ipPermissionXML] `xml:"ipPermissions"`
	Egress        awsproto.List[ipPermissionXML] `xml:"ipPermissionsEgress"`
	Tags          awsproto.List[Tag]             `xml:"tagSet,omitempty"`
}

type describeVpcsOutput struct {
	Vpcs awsproto.List[vpcXML] `xml:"vpcSet"`
}

type describeSubnetsOutput struct {
	Subnets awsproto.List[subnetXML] `xml:"subnetSet"`
}

type describeSecurityGroupsOutput struct {
	Groups awsproto.List[securityGroupXML] `xml:"securityGroupInfo"`
}

func simpleFilters(filters []Filter, known ...string) error {
	return checkFilters(filters, func(n string) bool {
		for _, k := range known {
			if n == k {
				return true
			}
		}
		return strings.HasPrefix(n, "tag:") || n == "tag-key"
	})
}

func (s *Service) describeVpcs(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in describeNetInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if err := simpleFilters(in.Filters, "vpc-id", "cidr", "cidr-block-association.cidr-block", "is-default", "state", "owner-id"); err != nil {
		return nil, err
	}
	account := r.Caller.AccountID
	var vpcs []vpc
	if err := s.store.View(ctx, func(tx store.Tx) (err error) {
		vpcs, err = s.vpcs(tx, account)
		return err
	}); err != nil {
		return nil, err
	}
	for _, id := range in.VpcIDs {
		if !slices.ContainsFunc(vpcs, func(v vpc) bool { return v.ID == id }) {
			return nil, clientError("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", id)
		}
	}
	if in.DryRun {
		return nil, errDryRun
	}
	tags, err := s.tagsByPrefix(ctx, r, "vpc-")
	if err != nil {
		return nil, err
	}
	want := setOf(in.VpcIDs)
	out := describeVpcsOutput{Vpcs: awsproto.List[vpcXML]{}}
	for _, v := range vpcs {
		if len(want) > 0 && !want[v.ID] {
			continue
		}
		tl := tags[v.ID]
		ok := matchFilters(in.Filters, func(name string) []string {
			switch name {
			case "vpc-id":
				return []string{v.ID}
			case "cidr", "cidr-block-association.cidr-block":
				return []string{v.CIDR.String()}
			case "is-default":
				return []string{strconv.FormatBool(v.Default)}
			case "state":
				return []string{"available"}
			case "owner-id":
				return []string{account}
			}
			return tl.filterValues(name)
		})
		if ok {
			out.Vpcs = append(out.Vpcs, s.vpcToXML(account, v, tl))
		}
	}
	return out, nil
}

func (s *Service) describeSubnets(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in describeNetInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if err := simpleFilters(in.Filters, "subnet-id", "vpc-id", "availability-zone", "availability-zone-id",
		"cidr-block", "default-for-az", "state", "owner-id", "map-public-ip-on-launch"); err != nil {
		return nil, err
	}
	account := r.Caller.AccountID
	var subnets []subnet
	var insts []instance
	if err := s.store.View(ctx, func(tx store.Tx) (err error) {
		if subnets, err = s.subnets(tx, account); err != nil {
			return err
		}
		insts, err = s.listInstancesTx(tx, account)
		return err
	}); err != nil {
		return nil, err
	}
	for _, id := range in.SubnetIDs {
		if !slices.ContainsFunc(subnets, func(sn subnet) bool { return sn.ID == id }) {
			return nil, clientError("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
		}
	}
	if in.DryRun {
		return nil, errDryRun
	}
	tags, err := s.tagsByPrefix(ctx, r, "subnet-")
	if err != nil {
		return nil, err
	}
	want := setOf(in.SubnetIDs)
	out := describeSubnetsOutput{Subnets: awsproto.List[subnetXML]{}}
	for _, sn := range subnets {
		if len(want) > 0 && !want[sn.ID] {
			continue
		}
		free := 1<<(32-sn.CIDR.Bits()) - 5
		for _, inst := range insts {
			if inst.SubnetID == sn.ID && inst.State != stateTerminated {
				free--
			}
		}
		x := s.subnetToXML(account, sn, free, tags[sn.ID])
		tl := tags[sn.ID]
		ok := matchFilters(in.Filters, func(name string) []string {
			switch name {
			case "subnet-id":
				return []string{sn.ID}
			case "vpc-id":
				return []string{sn.VPC.ID}
			case "availability-zone":
				return []string{sn.Zone}
			case "availability-zone-id":
				return []string{x.AvailabilityZoneID}
			case "cidr-block":
				return []string{sn.CIDR.String()}
			case "default-for-az", "map-public-ip-on-launch":
				return []string{strconv.FormatBool(sn.Default)}
			case "state":
				return []string{"available"}
			case "owner-id":
				return []string{account}
			}
			return tl.filterValues(name)
		})
		if ok {
			out.Subnets = append(out.Subnets, x)
		}
	}
	return out, nil
}

func (s *Service) describeSecurityGroups(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in describeNetInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if err := simpleFilters(in.Filters, "group-id", "group-name", "vpc-id", "description", "owner-id"); err != nil {
		return nil, err
	}
	account := r.Caller.AccountID
	var groups []secGroup
	err := s.store.View(ctx, func(tx store.Tx) error {
		for _, id := range in.GroupIDs {
			if _, err := s.resolveGroup(tx, account, id, ""); err != nil {
				return err
			}
		}
		for _, name := range in.GroupNames {
			if _, err := s.resolveGroup(tx, account, "", name); err != nil {
				return err
			}
		}
		var err error
		groups, err = s.listGroups(tx, account)
		return err
	})
	if err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	tags, err := s.tagsByPrefix(ctx, r, "sg-")
	if err != nil {
		return nil, err
	}
	wantID, wantName := setOf(in.GroupIDs), setOf(in.GroupNames)
	out := describeSecurityGroupsOutput{Groups: awsproto.List[securityGroupXML]{}}
	for _, g := range groups {
		if len(wantID) > 0 && !wantID[g.ID] || len(wantName) > 0 && !wantName[g.Name] {
			continue
		}
		tl := tags[g.ID]
		ok := matchFilters(in.Filters, func(name string) []string {
			switch name {
			case "group-id":
				return []string{g.ID}
			case "group-name":
				return []string{g.Name}
			case "vpc-id":
				return []string{g.VPCID}
			case "description":
				return []string{g.Description}
			case "owner-id":
				return []string{account}
			}
			return tl.filterValues(name)
		})
		if ok {
			out.Groups = append(out.Groups, securityGroupXML{OwnerID: account, GroupID: g.ID, GroupName: g.Name,
				Description: g.Description, VpcID: g.VPCID, IPPermissions: permissionsXML(account, g.Ingress),
				Egress: permissionsXML(account, g.Egress), Tags: tl.xml()})
		}
	}
	return out, nil
}

// permissionsXML groups rules as EC2 shows them: one IpPermission per protocol and port range,
// with its CIDRs and groups.
func permissionsXML(account string, rules []sgRule) awsproto.List[ipPermissionXML] {
	out := awsproto.List[ipPermissionXML]{}
	index := map[[3]string]int{}
	for _, rule := range rules {
		k := [3]string{rule.Protocol, strconv.Itoa(rule.FromPort), strconv.Itoa(rule.ToPort)}
		i, ok := index[k]
		if !ok {
			x := ipPermissionXML{IPProtocol: rule.Protocol, Groups: awsproto.List[groupPair]{}, IPRanges: awsproto.List[ipRange]{},
				Ipv6Ranges: awsproto.List[ipRange]{}, PrefixLists: awsproto.List[string]{}}
			if rule.Protocol != "-1" {
				x.FromPort, x.ToPort = &rule.FromPort, &rule.ToPort
			}
			out = append(out, x)
			i = len(out) - 1
			index[k] = i
		}
		if rule.CIDR != "" {
			out[i].IPRanges = append(out[i].IPRanges, ipRange{CidrIP: rule.CIDR, Description: rule.Description})
		} else {
			out[i].Groups = append(out[i].Groups, groupPair{GroupID: rule.Group, UserID: account, Description: rule.Description})
		}
	}
	return out
}
