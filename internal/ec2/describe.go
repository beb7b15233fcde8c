package ec2

import (
	"context"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

type instanceState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type groupIdentifier struct {
	GroupID   string `xml:"groupId"`
	GroupName string `xml:"groupName"`
}

type placementXML struct {
	AvailabilityZone string `xml:"availabilityZone"`
	GroupName        string `xml:"groupName"`
	Tenancy          string `xml:"tenancy"`
}

type stateReasonXML struct {
	Code    string `xml:"code"`
	Message string `xml:"message"`
}

type instanceBlockDevice struct {
	DeviceName string `xml:"deviceName"`
	EBS        struct {
		VolumeID            string `xml:"volumeId"`
		Status              string `xml:"status"`
		AttachTime          string `xml:"attachTime"`
		DeleteOnTermination bool   `xml:"deleteOnTermination"`
	} `xml:"ebs"`
}

type associationXML struct {
	PublicIP      string `xml:"publicIp"`
	PublicDNSName string `xml:"publicDnsName"`
	IPOwnerID     string `xml:"ipOwnerId"`
}

type privateIPXML struct {
	PrivateIPAddress string          `xml:"privateIpAddress"`
	PrivateDNSName   string          `xml:"privateDnsName"`
	Primary          bool            `xml:"primary"`
	Association      *associationXML `xml:"association,omitempty"`
}

type networkInterfaceXML struct {
	NetworkInterfaceID string                         `xml:"networkInterfaceId"`
	SubnetID           string                         `xml:"subnetId"`
	VPCID              string                         `xml:"vpcId"`
	Description        string                         `xml:"description"`
	OwnerID            string                         `xml:"ownerId"`
	Status             string                         `xml:"status"`
	MACAddress         string                         `xml:"macAddress"`
	PrivateIPAddress   string                         `xml:"privateIpAddress"`
	PrivateDNSName     string                         `xml:"privateDnsName"`
	SourceDestCheck    bool                           `xml:"sourceDestCheck"`
	Groups             awsproto.List[groupIdentifier] `xml:"groupSet"`
	Attachment         struct {
		AttachmentID        string `xml:"attachmentId"`
		InstanceID          string `xml:"instanceId,omitempty"`
		InstanceOwnerID     string `xml:"instanceOwnerId,omitempty"`
		DeviceIndex         int    `xml:"deviceIndex"`
		Status              string `xml:"status"`
		AttachTime          string `xml:"attachTime"`
		DeleteOnTermination bool   `xml:"deleteOnTermination"`
		NetworkCardIndex    int    `xml:"networkCardIndex"`
	} `xml:"attachment"`
	Association   *associationXML             `xml:"association,omitempty"`
	PrivateIPs    awsproto.List[privateIPXML] `xml:"privateIpAddressesSet"`
	InterfaceType string                      `xml:"interfaceType"`
}

type metadataOptionsXML struct {
	State                   string `xml:"state"`
	HttpTokens              string `xml:"httpTokens"`
	HttpPutResponseHopLimit int    `xml:"httpPutResponseHopLimit"`
	HttpEndpoint            string `xml:"httpEndpoint"`
	HttpProtocolIpv6        string `xml:"httpProtocolIpv6"`
	InstanceMetadataTags    string `xml:"instanceMetadataTags"`
}

type instanceXML struct {
	InstanceID     string                `xml:"instanceId"`
	ImageID        string                `xml:"imageId"`
	InstanceState  instanceState         `xml:"instanceState"`
	PrivateDNSName string                `xml:"privateDnsName"`
	DNSName        string                `xml:"dnsName"`
	Reason         string                `xml:"reason"`
	KeyName        string                `xml:"keyName,omitempty"`
	AMILaunchIndex int                   `xml:"amiLaunchIndex"`
	ProductCodes   awsproto.List[string] `xml:"productCodes"`
	InstanceType   string                `xml:"instanceType"`
	LaunchTime     string                `xml:"launchTime"`
	Placement      placementXML          `xml:"placement"`
	Monitoring     struct {
		State string `xml:"state"`
	} `xml:"monitoring"`
	SubnetID           string                             `xml:"subnetId,omitempty"`
	VPCID              string                             `xml:"vpcId,omitempty"`
	PrivateIPAddress   string                             `xml:"privateIpAddress,omitempty"`
	IPAddress          string                             `xml:"ipAddress,omitempty"`
	SourceDestCheck    bool                               `xml:"sourceDestCheck"`
	Groups             awsproto.List[groupIdentifier]     `xml:"groupSet"`
	StateReason        *stateReasonXML                    `xml:"stateReason,omitempty"`
	Architecture       string                             `xml:"architecture"`
	RootDeviceType     string                             `xml:"rootDeviceType"`
	RootDeviceName     string                             `xml:"rootDeviceName"`
	BlockDevices       awsproto.List[instanceBlockDevice] `xml:"blockDeviceMapping"`
	VirtualizationType string                             `xml:"virtualizationType"`
	ClientToken        string                             `xml:"clientToken"`
	Tags               awsproto.List[Tag]                 `xml:"tagSet,omitempty"`
	Hypervisor         string                             `xml:"hypervisor"`
	NetworkInterfaces  awsproto.List[networkInterfaceXML] `xml:"networkInterfaceSet"`
	EbsOptimized       bool                               `xml:"ebsOptimized"`
	EnaSupport         bool                               `xml:"enaSupport"`
	CPUOptions         struct {
		CoreCount      int `xml:"coreCount"`
		ThreadsPerCore int `xml:"threadsPerCore"`
	} `xml:"cpuOptions"`
	MetadataOptions       metadataOptionsXML `xml:"metadataOptions"`
	PlatformDetails       string             `xml:"platformDetails"`
	UsageOperation        string             `xml:"usageOperation"`
	CurrentBootMode       string             `xml:"currentInstanceBootMode"`
	PrivateDNSNameOptions struct {
		HostnameType string `xml:"hostnameType"`
	} `xml:"privateDnsNameOptions"`
}

type reservationXML struct {
	ReservationID string                         `xml:"reservationId"`
	OwnerID       string                         `xml:"ownerId"`
	Groups        awsproto.List[groupIdentifier] `xml:"groupSet"`
	Instances     awsproto.List[instanceXML]     `xml:"instancesSet"`
}

// runInstancesOutput is a RunInstancesResponse: one reservation, inline.
type runInstancesOutput struct {
	reservationXML
}

func (s *Service) groupXML(account string, ids []string) awsproto.List[groupIdentifier] {
	out := awsproto.List[groupIdentifier]{}
	s.store.View(context.Background(), func(tx store.Tx) error {
		for _, id := range ids {
			g, _, err := s.getGroup(tx, account, id)
			if err != nil {
				return err
			}
			out = append(out, groupIdentifier{GroupID: id, GroupName: g.Name})
		}
		return nil
	})
	return out
}

// publicIP is the address the host reaches the instance at: its private address, on the VPC's
// bridge (nubis has no separate public addresses yet).
func (inst instance) publicIP() string {
	if inst.State == stateRunning || inst.State == statePending || inst.State == stateStopping {
		return inst.PrivateIP
	}
	return ""
}

func (s *Service) instanceXML(inst instance, tags tagList) instanceXML {
	it, _ := lookupInstanceType(inst.Type)
	x := instanceXML{InstanceID: inst.ID, ImageID: inst.ImageID,
		InstanceState:  instanceState{Code: stateCodes[inst.State], Name: inst.State},
		PrivateDNSName: s.privateDNSName(inst.PrivateIP), Reason: inst.TransitionReason, KeyName: inst.KeyName,
		AMILaunchIndex: inst.LaunchIndex, ProductCodes: awsproto.List[string]{}, InstanceType: inst.Type,
		LaunchTime: timestamp(inst.LaunchTime), Placement: placementXML{AvailabilityZone: inst.Zone, Tenancy: "default"},
		SourceDestCheck: true, Groups: s.groupXML(inst.Account, inst.Groups), Architecture: "x86_64",
		RootDeviceType: "ebs", RootDeviceName: inst.RootDevice, VirtualizationType: "hvm",
		ClientToken: inst.ClientToken, Tags: tags.xml(), Hypervisor: "xen", EnaSupport: true,
		PlatformDetails: "Linux/UNIX", UsageOperation: "RunInstances", CurrentBootMode: "legacy-bios"}
	x.Monitoring.State = "disabled"
	x.CPUOptions.CoreCount, x.CPUOptions.ThreadsPerCore = it.Cores, it.ThreadsPerCore
	x.PrivateDNSNameOptions.HostnameType = "ip-name"
	if inst.StateReason != "" {
		x.StateReason = &stateReasonXML{Code: inst.StateReason, Message: inst.StateReasonMsg}
	}
	mstate := "applied"
	if inst.State == statePending {
		mstate = "pending"
	}
	x.MetadataOptions = metadataOptionsXML{State: mstate, HttpTokens: inst.Metadata.HttpTokens,
		HttpPutResponseHopLimit: inst.Metadata.HopLimit, HttpEndpoint: inst.Metadata.HttpEndpoint,
		HttpProtocolIpv6: "disabled", InstanceMetadataTags: inst.Metadata.InstanceMetadataTags}
	if inst.State == stateTerminated {
		x.BlockDevices = awsproto.List[instanceBlockDevice]{}
		x.NetworkInterfaces = awsproto.List[networkInterfaceXML]{}
		return x
	}
	x.SubnetID, x.VPCID, x.PrivateIPAddress, x.IPAddress = inst.SubnetID, inst.VPCID, inst.PrivateIP, inst.publicIP()
	bd := instanceBlockDevice{DeviceName: inst.RootDevice}
	bd.EBS.VolumeID, bd.EBS.Status, bd.EBS.AttachTime, bd.EBS.DeleteOnTermination = inst.RootVolumeID, "attached", timestamp(inst.AttachTime), inst.DeleteOnTermination
	x.BlockDevices = awsproto.List[instanceBlockDevice]{bd}
	ni := networkInterfaceXML{NetworkInterfaceID: derivedID("eni", inst.ID), SubnetID: inst.SubnetID, VPCID: inst.VPCID,
		OwnerID: inst.Account, Status: "in-use", MACAddress: inst.MAC, PrivateIPAddress: inst.PrivateIP,
		PrivateDNSName: x.PrivateDNSName, SourceDestCheck: true, Groups: x.Groups, InterfaceType: "interface"}
	ni.Attachment.AttachmentID = derivedID("eni-attach", inst.ID)
	ni.Attachment.Status, ni.Attachment.AttachTime, ni.Attachment.DeleteOnTermination = "attached", timestamp(inst.LaunchTime), true
	pip := privateIPXML{PrivateIPAddress: inst.PrivateIP, PrivateDNSName: x.PrivateDNSName, Primary: true}
	if x.IPAddress != "" {
		ni.Association = &associationXML{PublicIP: x.IPAddress, IPOwnerID: "amazon"}
		pip.Association = ni.Association
	}
	ni.PrivateIPs = awsproto.List[privateIPXML]{pip}
	x.NetworkInterfaces = awsproto.List[networkInterfaceXML]{ni}
	return x
}

func (s *Service) reservationXML(ctx context.Context, r *awsproto.Request, insts []instance) (any, error) {
	tags, err := s.tagsByPrefix(ctx, r, "i-")
	if err != nil {
		return nil, err
	}
	out := runInstancesOutput{reservationXML{ReservationID: insts[0].ReservationID, OwnerID: insts[0].Account,
		Groups: awsproto.List[groupIdentifier]{}}}
	for _, inst := range insts {
		out.Instances = append(out.Instances, s.instanceXML(inst, tags[inst.ID]))
	}
	return out, nil
}

type describeInstancesInput struct {
	InstanceIDs []string `query:"InstanceId"`
	Filters     []Filter `query:"Filter"`
	MaxResults  int      `query:"MaxResults"`
	NextToken   string   `query:"NextToken"`
	DryRun      bool     `query:"DryRun"`
}

type describeInstancesOutput struct {
	Reservations awsproto.List[reservationXML] `xml:"reservationSet"`
	NextToken    string                        `xml:"nextToken,omitempty"`
}

var instanceFilters = map[string]bool{"instance-state-name": true, "instance-state-code": true, "instance-id": true,
	"image-id": true, "instance-type": true, "key-name": true, "tag-key": true, "private-ip-address": true,
	"ip-address": true, "availability-zone": true, "subnet-id": true, "vpc-id": true, "reservation-id": true,
	"instance.group-id": true, "group-id": true, "private-dns-name": true, "architecture": true,
	"root-device-type": true, "client-token": true, "launch-index": true}

func (inst instance) field(s *Service, tags tagList, name string) []string {
	one := func(v string) []string { return []string{v} }
	switch name {
	case "instance-state-name":
		return one(inst.State)
	case "instance-state-code":
		return one(strconv.Itoa(stateCodes[inst.State]))
	case "instance-id":
		return one(inst.ID)
	case "image-id":
		return one(inst.ImageID)
	case "instance-type":
		return one(inst.Type)
	case "key-name":
		return one(inst.KeyName)
	case "private-ip-address":
		return one(inst.PrivateIP)
	case "ip-address":
		return one(inst.publicIP())
	case "availability-zone":
		return one(inst.Zone)
	case "subnet-id":
		return one(inst.SubnetID)
	case "vpc-id":
		return one(inst.VPCID)
	case "reservation-id":
		return one(inst.ReservationID)
	case "instance.group-id", "group-id":
		return inst.Groups
	case "private-dns-name":
		return one(s.privateDNSName(inst.PrivateIP))
	case "architecture":
		return one("x86_64")
	case "root-device-type":
		return one("ebs")
	case "client-token":
		return one(inst.ClientToken)
	case "launch-index":
		return one(strconv.Itoa(inst.LaunchIndex))
	}
	return tags.filterValues(name)
}

// selectInstances returns the account's instances that ids (all when empty) and filters select,
// in launch order; an id that does not exist is InvalidInstanceID.NotFound.
func (s *Service) selectInstances(ctx context.Context, r *awsproto.Request, ids []string, filters []Filter) ([]instance, map[string]tagList, error) {
	if err := checkInstanceIDs(ids); err != nil {
		return nil, nil, err
	}
	if err := checkFilters(filters, func(n string) bool { return instanceFilters[n] || strings.HasPrefix(n, "tag:") }); err != nil {
		return nil, nil, err
	}
	all, err := s.listInstances(ctx, r.Caller.AccountID)
	if err != nil {
		return nil, nil, err
	}
	tags, err := s.tagsByPrefix(ctx, r, "i-")
	if err != nil {
		return nil, nil, err
	}
	want := setOf(ids)
	var missing []string
	for _, id := range ids {
		// A terminated instance is visible for a while, then gone as if it never was.
		if !slices.ContainsFunc(all, func(in instance) bool { return in.ID == id && !s.expired(in) }) {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return nil, nil, clientError("InvalidInstanceID.NotFound", "The instance IDs '%s' do not exist", strings.Join(missing, ", "))
	}
	var out []instance
	for _, inst := range all {
		if len(want) > 0 && !want[inst.ID] {
			continue
		}
		if s.expired(inst) {
			continue
		}
		if !matchFilters(filters, func(name string) []string { return inst.field(s, tags[inst.ID], name) }) {
			continue
		}
		out = append(out, inst)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].LaunchTime.Equal(out[j].LaunchTime) {
			return out[i].LaunchTime.Before(out[j].LaunchTime)
		}
		if out[i].ReservationID != out[j].ReservationID {
			return out[i].ReservationID < out[j].ReservationID
		}
		return out[i].LaunchIndex < out[j].LaunchIndex
	})
	return out, tags, nil
}

func (s *Service) describeInstances(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in describeInstancesInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if in.MaxResults != 0 && len(in.InstanceIDs) > 0 {
		return nil, clientError("InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults")
	}
	if in.MaxResults != 0 && (in.MaxResults < 5 || in.MaxResults > 1000) {
		return nil, invalidValue("MaxResults", itoa(in.MaxResults), "MaxResults must be between 5 and 1000.")
	}
	insts, tags, err := s.selectInstances(ctx, r, in.InstanceIDs, in.Filters)
	if err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	start := 0
	if in.NextToken != "" {
		start = slices.IndexFunc(insts, func(i instance) bool { return i.ID == in.NextToken })
		if start < 0 {
			return nil, clientError("InvalidParameterValue", "Invalid value '%s' for nextToken", in.NextToken)
		}
	}
	out := describeInstancesOutput{Reservations: awsproto.List[reservationXML]{}}
	end := len(insts)
	if in.MaxResults > 0 && start+in.MaxResults < end {
		end = start + in.MaxResults
		out.NextToken = insts[end].ID
	}
	for _, inst := range insts[start:end] {
		n := len(out.Reservations)
		if n == 0 || out.Reservations[n-1].ReservationID != inst.ReservationID {
			out.Reservations = append(out.Reservations, reservationXML{ReservationID: inst.ReservationID,
				OwnerID: inst.Account, Groups: awsproto.List[groupIdentifier]{}})
			n++
		}
		out.Reservations[n-1].Instances = append(out.Reservations[n-1].Instances, s.instanceXML(inst, tags[inst.ID]))
	}
	return out, nil
}
