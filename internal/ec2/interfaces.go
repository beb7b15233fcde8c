package ec2

import (
	"context"
	"strings"

	"github.com/nubis/nubis/internal/awsproto"
)

type describeNetworkInterfacesInput struct {
	IDs        []string `query:"NetworkInterfaceId"`
	Filters    []Filter `query:"Filter"`
	MaxResults int      `query:"MaxResults"`
	NextToken  string   `query:"NextToken"`
	DryRun     bool     `query:"DryRun"`
}

type interfaceXML struct {
	networkInterfaceXML
	AvailabilityZone string             `xml:"availabilityZone"`
	RequesterManaged bool               `xml:"requesterManaged"`
	Tags             awsproto.List[Tag] `xml:"tagSet"`
}

type describeNetworkInterfacesOutput struct {
	Interfaces awsproto.List[interfaceXML] `xml:"networkInterfaceSet"`
}

var interfaceFilters = map[string]bool{"network-interface-id": true, "attachment.instance-id": true, "subnet-id": true,
	"vpc-id": true, "private-ip-address": true, "group-id": true, "status": true, "availability-zone": true,
	"mac-address": true, "addresses.private-ip-address": true}

// describeNetworkInterfaces lists the instances' network interfaces: one per instance that is not
// terminated (nubis has no interfaces of their own yet).
func (s *Service) describeNetworkInterfaces(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in describeNetworkInterfacesInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if err := checkFilters(in.Filters, func(n string) bool { return interfaceFilters[n] }); err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	insts, err := s.listInstances(ctx, r.Caller.AccountID)
	if err != nil {
		return nil, err
	}
	req := request(in.IDs)
	out := describeNetworkInterfacesOutput{Interfaces: awsproto.List[interfaceXML]{}}
	for _, inst := range insts {
		if inst.State == stateTerminated {
			continue
		}
		x := s.instanceXML(inst, nil)
		ni := x.NetworkInterfaces[0]
		if !req.shows(ni.NetworkInterfaceID) {
			continue
		}
		ok := matchFilters(in.Filters, func(name string) []string {
			switch name {
			case "network-interface-id":
				return []string{ni.NetworkInterfaceID}
			case "attachment.instance-id":
				return []string{inst.ID}
			case "subnet-id":
				return []string{inst.SubnetID}
			case "vpc-id":
				return []string{inst.VPCID}
			case "private-ip-address", "addresses.private-ip-address":
				return []string{inst.PrivateIP}
			case "group-id":
				return inst.Groups
			case "status":
				return []string{"in-use"}
			case "availability-zone":
				return []string{inst.Zone}
			case "mac-address":
				return []string{strings.ToLower(inst.MAC)}
			}
			return nil
		})
		if ok {
			ni.Attachment.InstanceID, ni.Attachment.InstanceOwnerID = inst.ID, inst.Account
			ni.Description = "Primary network interface"
			out.Interfaces = append(out.Interfaces, interfaceXML{networkInterfaceXML: ni, AvailabilityZone: inst.Zone,
				Tags: awsproto.List[Tag]{}})
		}
	}
	if err := req.notFound(func(id string) error {
		return clientError("InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", id)
	}); err != nil {
		return nil, err
	}
	return out, nil
}
