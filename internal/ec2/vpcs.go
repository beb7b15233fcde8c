package ec2

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

// VPCs and subnets of one's own, stored under ec2/<account>/<region>/vpc/<id> and .../subnet/<id>,
// beside the default ones (vpc.go). Each VPC is a bridge of its own on the host (package
// network), holding its subnets' gateways; the host does not route between bridges, so the
// instances of two VPCs cannot reach each other.

func (s *Service) vpcKey(account, id string) string {
	return "ec2/" + account + "/" + s.region + "/vpc/" + id
}

func (s *Service) subnetKey(account, id string) string {
	return "ec2/" + account + "/" + s.region + "/subnet/" + id
}

// vpcs lists the account's VPCs, the default one first.
func (s *Service) vpcs(tx store.Tx, account string) ([]vpc, error) {
	out := []vpc{s.defaultVPC(account)}
	kvs, err := tx.List("ec2/"+account+"/"+s.region+"/vpc/", "", 0)
	if err != nil {
		return nil, err
	}
	for _, kv := range kvs {
		var v vpc
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, fmt.Errorf("vpc %s: %w", kv.Key, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func (s *Service) getVPC(tx store.Tx, account, id string) (vpc, bool, error) {
	vs, err := s.vpcs(tx, account)
	if err != nil {
		return vpc{}, false, err
	}
	i := slices.IndexFunc(vs, func(v vpc) bool { return v.ID == id })
	if i < 0 {
		return vpc{}, false, nil
	}
	return vs[i], true, nil
}

// subnets lists the account's subnets, the default ones first.
func (s *Service) subnets(tx store.Tx, account string) ([]subnet, error) {
	out := s.defaultSubnets(account)
	kvs, err := tx.List("ec2/"+account+"/"+s.region+"/subnet/", "", 0)
	if err != nil {
		return nil, err
	}
	for _, kv := range kvs {
		var sn subnet
		if err := json.Unmarshal(kv.Value, &sn); err != nil {
			return nil, fmt.Errorf("subnet %s: %w", kv.Key, err)
		}
		out = append(out, sn)
	}
	return out, nil
}

func (s *Service) getSubnet(tx store.Tx, account, id string) (subnet, bool, error) {
	sns, err := s.subnets(tx, account)
	if err != nil {
		return subnet{}, false, err
	}
	i := slices.IndexFunc(sns, func(sn subnet) bool { return sn.ID == id })
	if i < 0 {
		return subnet{}, false, nil
	}
	return sns[i], true, nil
}

// vpcSubnets are the subnets of one VPC.
func (s *Service) vpcSubnets(tx store.Tx, account, vpcID string) ([]subnet, error) {
	sns, err := s.subnets(tx, account)
	return slices.DeleteFunc(sns, func(sn subnet) bool { return sn.VPC.ID != vpcID }), err
}

// checkCIDR checks a VPC's or subnet's IPv4 block as EC2 does: a /16 to a /28, written as its
// network address.
func checkCIDR(code, cidr string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() || p.Bits() < 16 || p.Bits() > 28 || p.Masked() != p {
		return netip.Prefix{}, clientError(code, "The CIDR '%s' is invalid.", cidr)
	}
	return p, nil
}

type createVpcInput struct {
	CidrBlock         string             `query:"CidrBlock"`
	InstanceTenancy   string             `query:"InstanceTenancy"`
	AmazonIpv6        bool               `query:"AmazonProvidedIpv6CidrBlock"`
	TagSpecifications []TagSpecification `query:"TagSpecification"`
	DryRun            bool               `query:"DryRun"`
}

type createVpcOutput struct {
	Vpc vpcXML `xml:"vpc"`
}

func (s *Service) vpcToXML(account string, v vpc, tags tagList) vpcXML {
	assoc := cidrAssociation{AssociationID: derivedID("vpc-cidr-assoc", v.ID), CidrBlock: v.CIDR.String()}
	assoc.CidrBlockState.State = "associated"
	return vpcXML{VpcID: v.ID, OwnerID: account, State: "available", CidrBlock: v.CIDR.String(),
		CidrAssociations: awsproto.List[cidrAssociation]{assoc}, DhcpOptionsID: derivedID("dopt", account, s.region),
		InstanceTenancy: "default", IsDefault: v.Default, Tags: tags.xml()}
}

func (s *Service) createVpc(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in createVpcInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if in.CidrBlock == "" {
		return nil, missingParameter("CidrBlock")
	}
	cidr, err := checkCIDR("InvalidVpc.Range", in.CidrBlock)
	if err != nil {
		return nil, err
	}
	if in.AmazonIpv6 {
		return nil, clientError("InvalidParameterValue", "nubis VPCs are IPv4-only")
	}
	if in.InstanceTenancy != "" && in.InstanceTenancy != "default" {
		return nil, invalidValue("InstanceTenancy", in.InstanceTenancy, "nubis runs default tenancy only.")
	}
	tags, err := tagsFromSpecs(in.TagSpecifications, "vpc")
	if err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	account := r.Caller.AccountID
	v := vpc{ID: newID("vpc"), CIDR: cidr}
	err = s.store.Update(ctx, func(tx store.Tx) error {
		b, _ := json.Marshal(v)
		if err := tx.Create(s.vpcKey(account, v.ID), b); err != nil {
			return err
		}
		return putTags(tx, s.tagKey(r, v.ID), tagList(nil).set(tags))
	})
	if err != nil {
		return nil, err
	}
	return createVpcOutput{Vpc: s.vpcToXML(account, v, tagList(nil).set(tags))}, nil
}

type deleteVpcInput struct {
	VpcID  string `query:"VpcId"`
	DryRun bool   `query:"DryRun"`
}

func (s *Service) deleteVpc(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in deleteVpcInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if in.VpcID == "" {
		return nil, missingParameter("VpcId")
	}
	account := r.Caller.AccountID
	err := s.store.Update(ctx, func(tx store.Tx) error {
		v, found, err := s.getVPC(tx, account, in.VpcID)
		if err != nil {
			return err
		}
		if !found {
			return clientError("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", in.VpcID)
		}
		if v.Default {
			return clientError("OperationNotPermitted", "nubis keeps the default VPC %s", v.ID)
		}
		sns, err := s.vpcSubnets(tx, account, v.ID)
		if err != nil {
			return err
		}
		groups, err := s.listGroups(tx, account)
		if err != nil {
			return err
		}
		def := s.defaultGroupOf(account, v.ID).ID
		if len(sns) > 0 || slices.ContainsFunc(groups, func(g secGroup) bool { return g.VPCID == v.ID && g.ID != def }) {
			return clientError("DependencyViolation", "The vpc '%s' has dependencies and cannot be deleted.", v.ID)
		}
		if in.DryRun {
			return errDryRun
		}
		for _, key := range []string{s.vpcKey(account, v.ID), s.sgKey(account, def), s.sgNameKey(account, v.ID, "default")} {
			if err := tx.Delete(key); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		return putTags(tx, s.tagKey(r, v.ID), nil)
	})
	if err != nil {
		return nil, err
	}
	return returnOutput{Return: true}, nil
}

type createSubnetInput struct {
	VpcID              string             `query:"VpcId"`
	CidrBlock          string             `query:"CidrBlock"`
	AvailabilityZone   string             `query:"AvailabilityZone"`
	AvailabilityZoneID string             `query:"AvailabilityZoneId"`
	TagSpecifications  []TagSpecification `query:"TagSpecification"`
	DryRun             bool               `query:"DryRun"`
}

type createSubnetOutput struct {
	Subnet subnetXML `xml:"subnet"`
}

func (s *Service) subnetToXML(account string, sn subnet, free int, tags tagList) subnetXML {
	zoneID := ""
	for _, z := range s.zones() {
		if z.ZoneName == sn.Zone {
			zoneID = z.ZoneID
		}
	}
	return subnetXML{SubnetID: sn.ID, SubnetArn: "arn:aws:ec2:" + s.region + ":" + account + ":subnet/" + sn.ID,
		State: "available", VpcID: sn.VPC.ID, OwnerID: account, CidrBlock: sn.CIDR.String(), AvailableIPAddressCount: free,
		AvailabilityZone: sn.Zone, AvailabilityZoneID: zoneID, DefaultForAz: sn.Default, MapPublicIPOnLaunch: sn.Default,
		Tags: tags.xml()}
}

func (s *Service) createSubnet(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in createSubnetInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if in.VpcID == "" {
		return nil, missingParameter("VpcId")
	}
	if in.CidrBlock == "" {
		return nil, missingParameter("CidrBlock")
	}
	cidr, err := checkCIDR("InvalidSubnet.Range", in.CidrBlock)
	if err != nil {
		return nil, err
	}
	zone := s.zones()[0].ZoneName
	for _, z := range s.zones() {
		if in.AvailabilityZone == z.ZoneName || in.AvailabilityZoneID == z.ZoneID {
			zone = z.ZoneName
		}
	}
	if in.AvailabilityZone != "" && in.AvailabilityZone != zone || in.AvailabilityZoneID != "" && zone == s.zones()[0].ZoneName && in.AvailabilityZoneID != s.zones()[0].ZoneID {
		return nil, invalidValue("AvailabilityZone", in.AvailabilityZone+in.AvailabilityZoneID, "Invalid availability zone.")
	}
	tags, err := tagsFromSpecs(in.TagSpecifications, "subnet")
	if err != nil {
		return nil, err
	}
	account := r.Caller.AccountID
	var sn subnet
	err = s.store.Update(ctx, func(tx store.Tx) error {
		v, found, err := s.getVPC(tx, account, in.VpcID)
		if err != nil {
			return err
		}
		if !found {
			return clientError("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", in.VpcID)
		}
		if !v.CIDR.Contains(cidr.Addr()) || cidr.Bits() < v.CIDR.Bits() {
			return clientError("InvalidSubnet.Range", "The CIDR '%s' is invalid.", in.CidrBlock)
		}
		others, err := s.vpcSubnets(tx, account, v.ID)
		if err != nil {
			return err
		}
		for _, o := range others {
			if o.CIDR.Overlaps(cidr) {
				return clientError("InvalidSubnet.Conflict", "The CIDR '%s' conflicts with another subnet", in.CidrBlock)
			}
		}
		if in.DryRun {
			return errDryRun
		}
		sn = subnet{ID: newID("subnet"), VPC: v, Zone: zone, CIDR: cidr}
		b, _ := json.Marshal(sn)
		if err := tx.Create(s.subnetKey(account, sn.ID), b); err != nil {
			return err
		}
		return putTags(tx, s.tagKey(r, sn.ID), tagList(nil).set(tags))
	})
	if err != nil {
		return nil, err
	}
	return createSubnetOutput{Subnet: s.subnetToXML(account, sn, 1<<(32-cidr.Bits())-5, tagList(nil).set(tags))}, nil
}

type deleteSubnetInput struct {
	SubnetID string `query:"SubnetId"`
	DryRun   bool   `query:"DryRun"`
}

func (s *Service) deleteSubnet(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in deleteSubnetInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if in.SubnetID == "" {
		return nil, missingParameter("SubnetId")
	}
	account := r.Caller.AccountID
	err := s.store.Update(ctx, func(tx store.Tx) error {
		sn, found, err := s.getSubnet(tx, account, in.SubnetID)
		if err != nil {
			return err
		}
		if !found {
			return clientError("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", in.SubnetID)
		}
		if sn.Default {
			return clientError("OperationNotPermitted", "nubis keeps the default subnets of the default VPC")
		}
		insts, err := s.listInstancesTx(tx, account)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(insts, func(i instance) bool { return i.SubnetID == sn.ID && i.State != stateTerminated }) {
			return clientError("DependencyViolation", "The subnet '%s' has dependencies and cannot be deleted.", sn.ID)
		}
		if in.DryRun {
			return errDryRun
		}
		if err := tx.Delete(s.subnetKey(account, sn.ID)); err != nil {
			return err
		}
		return putTags(tx, s.tagKey(r, sn.ID), nil)
	})
	if err != nil {
		return nil, err
	}
	return returnOutput{Return: true}, nil
}
