package ec2

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/network"
	"github.com/nubis/nubis/internal/store"
)

type blockDeviceMappingInput struct {
	DeviceName  string  `query:"DeviceName"`
	VirtualName string  `query:"VirtualName"`
	NoDevice    *string `query:"NoDevice"`
	Ebs         *struct {
		VolumeSize          int    `query:"VolumeSize"`
		VolumeType          string `query:"VolumeType"`
		DeleteOnTermination *bool  `query:"DeleteOnTermination"`
		Encrypted           bool   `query:"Encrypted"`
		Iops                int    `query:"Iops"`
		Throughput          int    `query:"Throughput"`
		SnapshotID          string `query:"SnapshotId"`
		KmsKeyID            string `query:"KmsKeyId"`
	} `query:"Ebs"`
}

type metadataOptionsInput struct {
	HttpTokens              string `query:"HttpTokens"`
	HttpPutResponseHopLimit int    `query:"HttpPutResponseHopLimit"`
	HttpEndpoint            string `query:"HttpEndpoint"`
	HttpProtocolIpv6        string `query:"HttpProtocolIpv6"`
	InstanceMetadataTags    string `query:"InstanceMetadataTags"`
}

type networkInterfaceInput struct {
	AssociatePublicIPAddress *bool    `query:"AssociatePublicIpAddress"`
	DeleteOnTermination      *bool    `query:"DeleteOnTermination"`
	Description              string   `query:"Description"`
	DeviceIndex              int      `query:"DeviceIndex"`
	Groups                   []string `query:"SecurityGroupId"`
	PrivateIPAddress         string   `query:"PrivateIpAddress"`
	SubnetID                 string   `query:"SubnetId"`
}

type runInstancesInput struct {
	ImageID            string                    `query:"ImageId"`
	InstanceType       string                    `query:"InstanceType"`
	KeyName            string                    `query:"KeyName"`
	MinCount           *int                      `query:"MinCount"`
	MaxCount           *int                      `query:"MaxCount"`
	SecurityGroupIDs   []string                  `query:"SecurityGroupId"`
	SecurityGroups     []string                  `query:"SecurityGroup"`
	SubnetID           string                    `query:"SubnetId"`
	UserData           []byte                    `query:"UserData"`
	BlockDeviceMapping []blockDeviceMappingInput `query:"BlockDeviceMapping"`
	MetadataOptions    *metadataOptionsInput     `query:"MetadataOptions"`
	NetworkInterfaces  []networkInterfaceInput   `query:"NetworkInterface"`
	TagSpecifications  []TagSpecification        `query:"TagSpecification"`
	ClientToken        string                    `query:"ClientToken"`
	DryRun             bool                      `query:"DryRun"`
	ShutdownBehavior   string                    `query:"InstanceInitiatedShutdownBehavior"`
	DisableAPITerm     *bool                     `query:"DisableApiTermination"`
	DisableAPIStop     *bool                     `query:"DisableApiStop"`
	PrivateIPAddress   string                    `query:"PrivateIpAddress"`
	EbsOptimized       *bool                     `query:"EbsOptimized"`
	Placement          *struct {
		AvailabilityZone string `query:"AvailabilityZone"`
		Tenancy          string `query:"Tenancy"`
		GroupName        string `query:"GroupName"`
	} `query:"Placement"`
	Monitoring *struct {
		Enabled bool `query:"Enabled"`
	} `query:"Monitoring"`
	CreditSpecification *struct {
		CPUCredits string `query:"CpuCredits"`
	} `query:"CreditSpecification"`
	IamInstanceProfile *struct {
		Arn  string `query:"Arn"`
		Name string `query:"Name"`
	} `query:"IamInstanceProfile"`
	LaunchTemplate *struct {
		ID      string `query:"LaunchTemplateId"`
		Name    string `query:"LaunchTemplateName"`
		Version string `query:"Version"`
	} `query:"LaunchTemplate"`
	PrivateDNSNameOptions *struct {
		HostnameType                    string `query:"HostnameType"`
		EnableResourceNameDNSARecord    bool   `query:"EnableResourceNameDnsARecord"`
		EnableResourceNameDNSAAAARecord bool   `query:"EnableResourceNameDnsAAAARecord"`
	} `query:"PrivateDnsNameOptions"`
}

// maxUserData is EC2's limit on user data, before base64.
const maxUserData = 16 * 1024

// runPlan is a validated RunInstances request.
type runPlan struct {
	count, min int
	img        machineImage
	itype      instanceType
	key        keyPair
	subnet     subnet
	groups     []string
	privateIP  netip.Addr
	tags       []storedTag
	template   instance
}

func (s *Service) runInstances(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in runInstancesInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if in.ClientToken != "" {
		if res, ok, err := s.reservationForToken(ctx, r, in.ClientToken); err != nil || ok {
			return res, err
		}
	}
	var ltTags []storedTag
	if lt := in.LaunchTemplate; lt != nil {
		err := s.store.View(ctx, func(tx store.Tx) error {
			t, err := s.findLT(tx, r, lt.ID, lt.Name)
			if err != nil {
				return err
			}
			v, err := s.getLTVersion(tx, r, t, lt.Version)
			if err != nil {
				return err
			}
			if in, err = mergeRunInput(in, v.Data); err != nil {
				return err
			}
			// As EC2 marks instances launched from a template.
			ltTags = []storedTag{{Key: "aws:ec2launchtemplate:id", Value: t.ID}, {Key: "aws:ec2launchtemplate:version", Value: itoa(v.Number)}}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	plan, err := s.planRun(ctx, r, &in)
	if err != nil {
		return nil, err
	}
	plan.tags = append(plan.tags, ltTags...)
	if in.DryRun {
		return nil, errDryRun
	}
	if s.fleet == nil {
		return nil, clientError("Unsupported", "Instances cannot run on this host: %s", s.noFleet)
	}
	insts, err := s.createInstances(ctx, r, plan, in.ClientToken)
	if err != nil {
		return nil, err
	}
	for _, inst := range insts {
		s.fleet.launch(inst)
	}
	return s.reservationXML(ctx, r, insts)
}

// planRun validates a RunInstances request as EC2 does, in its order.
func (s *Service) planRun(ctx context.Context, r *awsproto.Request, in *runInstancesInput) (runPlan, error) {
	var plan runPlan
	if in.MinCount == nil {
		return plan, missingParameter("MinCount")
	}
	if in.MaxCount == nil {
		return plan, missingParameter("MaxCount")
	}
	if *in.MinCount < 1 {
		return plan, invalidValue("MinCount", itoa(*in.MinCount), "MinCount must be at least 1.")
	}
	if *in.MaxCount < *in.MinCount {
		return plan, clientError("InvalidParameterValue", "MaxCount (%d) must be greater than or equal to MinCount (%d).", *in.MaxCount, *in.MinCount)
	}
	if in.ImageID == "" {
		return plan, missingParameter("ImageId")
	}
	if !validImageID(in.ImageID) {
		return plan, clientError("InvalidAMIID.Malformed", "Invalid id: \"%s\" (expecting \"ami-...\")", in.ImageID)
	}
	var img machineImage
	if err := s.store.View(ctx, func(tx store.Tx) error {
		im, found, err := s.findImage(tx, r.Caller.AccountID, in.ImageID)
		if err == nil && !found {
			err = imageNotFound(in.ImageID)
		}
		img = im
		return err
	}); err != nil {
		return plan, err
	}
	if img.state() != "available" {
		return plan, clientError("InvalidAMIID.Unavailable", "The image id '[%s]' is not available (it is %s)", img.ID, img.state())
	}
	plan.img = img
	if in.InstanceType == "" {
		in.InstanceType = "t2.micro"
	}
	it, ok := lookupInstanceType(in.InstanceType)
	if !ok {
		return plan, clientError("InvalidParameterValue", "Invalid value '%s' for InstanceType.", in.InstanceType)
	}
	plan.itype = it
	if in.IamInstanceProfile != nil {
		return plan, invalidValue("iamInstanceProfile.name", in.IamInstanceProfile.Name+in.IamInstanceProfile.Arn,
			"Invalid IAM Instance Profile (nubis has no IAM instance profiles yet).")
	}
	if len(in.UserData) > maxUserData {
		return plan, clientError("InvalidParameterValue", "User data is limited to %d bytes", maxUserData)
	}
	behavior := in.ShutdownBehavior
	switch behavior {
	case "":
		behavior = "stop"
	case "stop", "terminate":
	default:
		return plan, invalidValue("InstanceInitiatedShutdownBehavior", behavior, "Valid values are stop and terminate.")
	}
	meta, err := metadataFromInput(in.MetadataOptions)
	if err != nil {
		return plan, err
	}
	rootGiB, rootType, deleteOnTerm, err := rootVolume(in.BlockDeviceMapping, img)
	if err != nil {
		return plan, err
	}
	plan.tags, err = tagsFromSpecs(in.TagSpecifications, "instance")
	if err != nil {
		if err := s.tagSpecsOtherTypes(in, err); err != nil {
			return plan, err
		}
		if plan.tags, err = tagsFromSpecs(in.TagSpecifications, "instance"); err != nil {
			return plan, err
		}
	}

	// Placement: a subnet (of the request or its network interface), a zone, or the first zone.
	account := r.Caller.AccountID
	subnetID, groups, privateIP := in.SubnetID, slices.Clone(in.SecurityGroupIDs), in.PrivateIPAddress
	for _, ni := range in.NetworkInterfaces {
		if ni.DeviceIndex != 0 {
			return plan, clientError("InvalidParameterValue", "nubis instances have one network interface (device index 0).")
		}
		if ni.SubnetID != "" {
			subnetID = ni.SubnetID
		}
		groups = append(groups, ni.Groups...)
		if ni.PrivateIPAddress != "" {
			privateIP = ni.PrivateIPAddress
		}
	}
	switch {
	case subnetID != "":
		sn, ok := s.findSubnet(account, subnetID)
		if !ok {
			return plan, clientError("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", subnetID)
		}
		plan.subnet = sn
	case in.Placement != nil && in.Placement.AvailabilityZone != "":
		sn, ok := s.subnetInZone(account, in.Placement.AvailabilityZone)
		if !ok {
			return plan, invalidValue("AvailabilityZone", in.Placement.AvailabilityZone, "Invalid availability zone.")
		}
		plan.subnet = sn
	default:
		plan.subnet = s.defaultSubnets(account)[0]
	}
	if in.Placement != nil && in.Placement.AvailabilityZone != "" && in.Placement.AvailabilityZone != plan.subnet.Zone {
		return plan, clientError("InvalidParameterValue", "The subnet %s is in %s, not in the requested zone %s.", plan.subnet.ID, plan.subnet.Zone, in.Placement.AvailabilityZone)
	}
	err = s.store.View(ctx, func(tx store.Tx) error {
		for _, name := range in.SecurityGroups {
			g, err := s.resolveGroup(tx, account, "", name)
			if err != nil {
				return err
			}
			groups = append(groups, g.ID)
		}
		for _, id := range groups {
			g, err := s.resolveGroup(tx, account, id, "")
			if err != nil {
				return err
			}
			if g.VPCID != plan.subnet.VPC.ID {
				return clientError("InvalidParameter", "Security group %s and subnet %s belong to different networks.", g.ID, plan.subnet.ID)
			}
		}
		return nil
	})
	if err != nil {
		return plan, err
	}
	if len(groups) == 0 {
		groups = []string{s.defaultGroup(account).ID}
	}
	plan.groups = slices.Compact(slices.Sorted(slices.Values(groups)))
	if privateIP != "" {
		a, err := netip.ParseAddr(privateIP)
		if err != nil || !a.Is4() {
			return plan, invalidValue("PrivateIpAddress", privateIP, "It is not a valid IPv4 address.")
		}
		if first, last := usableRange(plan.subnet.CIDR); !plan.subnet.CIDR.Contains(a) || a.Less(first) || last.Less(a) {
			return plan, clientError("InvalidParameterValue", "Address %s does not fall within the subnet's address range", a)
		}
		if *in.MaxCount > 1 {
			return plan, clientError("InvalidParameterCombination", "Network interfaces and an instance-level private IP address should not be specified on the same request")
		}
		plan.privateIP = a
	}
	if in.KeyName != "" {
		err := s.store.View(ctx, func(tx store.Tx) error {
			kp, found, err := s.findKeyPair(tx, r, in.KeyName, true)
			if err == nil && !found {
				err = clientError("InvalidKeyPair.NotFound", "The key pair '%s' does not exist", in.KeyName)
			}
			plan.key = kp
			return err
		})
		if err != nil {
			return plan, err
		}
	}
	// This host's capacity: one instance must fit on it.
	if err := s.checkCapacity(it, plan.subnet.Zone); err != nil {
		return plan, err
	}
	plan.count, plan.min = *in.MaxCount, *in.MinCount
	base := img.Base
	if img.Recipe != nil {
		base = img.ID
	}
	plan.template = instance{Account: account, ImageID: img.ID, ImageLayers: img.Layers, BaseImage: base,
		Type: it.Name, KeyName: plan.key.Name,
		PublicKey: plan.key.PublicKey, Zone: plan.subnet.Zone, SubnetID: plan.subnet.ID, VPCID: plan.subnet.VPC.ID,
		Groups: plan.groups, UserData: in.UserData, Metadata: meta, ShutdownBehavior: behavior,
		DisableAPITerm: isTrue(in.DisableAPITerm), DisableAPIStop: isTrue(in.DisableAPIStop), RootDevice: "/dev/xvda",
		RootGiB: rootGiB, RootVolumeType: rootType, DeleteOnTermination: deleteOnTerm}
	return plan, nil
}

// tagSpecsOtherTypes accepts TagSpecifications for the instance's volume and network interface
// (which nubis does not model as separate resources yet) by leaving them out.
func (s *Service) tagSpecsOtherTypes(in *runInstancesInput, err error) error {
	var keep []TagSpecification
	for _, ts := range in.TagSpecifications {
		if ts.ResourceType == "instance" {
			keep = append(keep, ts)
		} else if ts.ResourceType != "volume" && ts.ResourceType != "network-interface" {
			return err
		}
	}
	if len(keep) == len(in.TagSpecifications) {
		return err
	}
	in.TagSpecifications = keep
	return nil
}

func isTrue(b *bool) bool { return b != nil && *b }

func metadataFromInput(m *metadataOptionsInput) (metadataOptions, error) {
	// Images that declare IMDSv2 support (ours do, ImdsSupport v2.0) launch with tokens required.
	out := metadataOptions{HttpTokens: "required", HttpEndpoint: "enabled", HopLimit: 2, InstanceMetadataTags: "disabled"}
	if m == nil {
		return out, nil
	}
	switch m.HttpTokens {
	case "":
	case "optional", "required":
		out.HttpTokens = m.HttpTokens
	default:
		return out, invalidValue("HttpTokens", m.HttpTokens, "Valid values are optional and required.")
	}
	switch m.HttpEndpoint {
	case "":
	case "enabled", "disabled":
		out.HttpEndpoint = m.HttpEndpoint
	default:
		return out, invalidValue("HttpEndpoint", m.HttpEndpoint, "Valid values are enabled and disabled.")
	}
	switch m.InstanceMetadataTags {
	case "":
	case "enabled", "disabled":
		out.InstanceMetadataTags = m.InstanceMetadataTags
	default:
		return out, invalidValue("InstanceMetadataTags", m.InstanceMetadataTags, "Valid values are enabled and disabled.")
	}
	if m.HttpPutResponseHopLimit != 0 {
		if m.HttpPutResponseHopLimit < 1 || m.HttpPutResponseHopLimit > 64 {
			return out, invalidValue("HttpPutResponseHopLimit", itoa(m.HttpPutResponseHopLimit), "Valid values are 1 to 64.")
		}
		out.HopLimit = m.HttpPutResponseHopLimit
	}
	return out, nil
}

// rootVolume reads the root device's size and type from BlockDeviceMappings.
func rootVolume(bdms []blockDeviceMappingInput, img machineImage) (gib int, typ string, deleteOnTerm bool, err error) {
	gib, typ, deleteOnTerm = img.RootGiB, "gp2", true
	for _, b := range bdms {
		if b.DeviceName == "" {
			return 0, "", false, missingParameter("BlockDeviceMapping.DeviceName")
		}
		if b.DeviceName != "/dev/xvda" && b.DeviceName != "/dev/sda1" {
			return 0, "", false, clientError("InvalidBlockDeviceMapping",
				"nubis instances have only their root volume (/dev/xvda) so far; %s cannot be mapped", b.DeviceName)
		}
		if b.Ebs == nil {
			continue
		}
		if b.Ebs.VolumeSize != 0 {
			if b.Ebs.VolumeSize < img.RootGiB {
				return 0, "", false, clientError("InvalidBlockDeviceMapping",
					"Volume of size %dGB is smaller than snapshot '%s', expect size >= %dGB", b.Ebs.VolumeSize, derivedID("snap", img.ID), img.RootGiB)
			}
			if b.Ebs.VolumeSize > 16384 {
				return 0, "", false, clientError("InvalidBlockDeviceMapping", "Volume size %d GiB exceeds the maximum of 16384 GiB", b.Ebs.VolumeSize)
			}
			gib = b.Ebs.VolumeSize
		}
		switch b.Ebs.VolumeType {
		case "":
		case "gp2", "gp3", "io1", "io2", "st1", "sc1", "standard":
			typ = b.Ebs.VolumeType
		default:
			return 0, "", false, invalidValue("VolumeType", b.Ebs.VolumeType, "Valid values are gp2, gp3, io1, io2, st1, sc1 and standard.")
		}
		if b.Ebs.DeleteOnTermination != nil {
			deleteOnTerm = *b.Ebs.DeleteOnTermination
		}
	}
	return gib, typ, deleteOnTerm, nil
}

// createInstances stores the new instances (pending), their tags and the client token in one
// transaction, with private addresses that no other instance of the VPC has.
func (s *Service) createInstances(ctx context.Context, r *awsproto.Request, plan runPlan, token string) ([]instance, error) {
	var out []instance
	err := s.store.Update(ctx, func(tx store.Tx) error {
		out = out[:0]
		kvs, err := tx.List("ec2/"+r.Caller.AccountID+"/"+s.region+"/instance/", "", 0)
		if err != nil {
			return err
		}
		used := map[netip.Addr]bool{}
		active := 0
		for _, kv := range kvs {
			var other instance
			if err := json.Unmarshal(kv.Value, &other); err != nil {
				return err
			}
			if other.State == stateTerminated {
				continue
			}
			active++
			if a, err := netip.ParseAddr(other.PrivateIP); err == nil && other.VPCID == plan.subnet.VPC.ID {
				used[a] = true
			}
		}
		n := min(plan.count, s.maxInstances-active)
		if n < plan.min {
			return clientError("InstanceLimitExceeded",
				"You have requested more instances (%d) than your current instance limit of %d allows for the specified instance type. Please visit http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit.",
				plan.min+active, s.maxInstances)
		}
		if plan.privateIP.IsValid() && used[plan.privateIP] {
			return clientError("InvalidIPAddress.InUse", "Address %s is in use.", plan.privateIP)
		}
		now := s.now().UTC()
		resID := newID("r")
		for i := range n {
			inst := plan.template
			inst.ID = newID("i")
			inst.ReservationID = resID
			inst.LaunchIndex = i
			inst.LaunchTime = now
			inst.AttachTime = now
			inst.ClientToken = token
			inst.State = statePending
			inst.RootVolumeID = newID("vol")
			inst.MAC = network.MAC(inst.ID).String()
			ip := plan.privateIP
			if !ip.IsValid() {
				if ip, err = pickAddress(plan.subnet.CIDR, used); err != nil {
					return err
				}
			}
			used[ip] = true
			inst.PrivateIP = ip.String()
			if err := s.putInstance(tx, inst); err != nil {
				return err
			}
			if err := putTags(tx, s.tagKey(r, inst.ID), tagList(nil).set(plan.tags)); err != nil {
				return err
			}
			if s.fleet != nil && s.fleet.volumes != nil {
				// The root volume, an EBS volume like any other (its data is made at first boot).
				root := ebsVolume{ID: inst.RootVolumeID, Account: inst.Account, SizeGiB: inst.RootGiB, Type: inst.RootVolumeType,
					Zone: inst.Zone, SnapshotID: derivedID("snap", inst.ImageID), Created: now,
					Attachment: &ebsAttachment{InstanceID: inst.ID, Device: inst.RootDevice, AttachTime: now, DeleteOnTermination: inst.DeleteOnTermination}}
				if err := s.putVolume(tx, root); err != nil {
					return err
				}
			}
			out = append(out, inst)
		}
		if token != "" {
			ids := make([]string, len(out))
			for i, inst := range out {
				ids[i] = inst.ID
			}
			b, _ := json.Marshal(ids)
			if err := tx.Create(s.clientTokenKey(r.Caller.AccountID, token), b); err != nil {
				if errors.Is(err, store.ErrExists) {
					return clientError("IdempotentParameterMismatch", "The client token %s is being used by another request", token)
				}
				return err
			}
		}
		return nil
	})
	return out, err
}

// pickAddress picks a free address of a subnet at random (as EC2 does), skipping the reserved ones.
func pickAddress(cidr netip.Prefix, used map[netip.Addr]bool) (netip.Addr, error) {
	first, last := usableRange(cidr)
	var free []netip.Addr
	for a := first; !last.Less(a); a = a.Next() {
		if !used[a] {
			free = append(free, a)
		}
	}
	if len(free) == 0 {
		return netip.Addr{}, clientError("InsufficientFreeAddressesInSubnet", "There are not enough free addresses in subnet to satisfy the requested number of instances.")
	}
	return free[rand.IntN(len(free))], nil
}

// reservationForToken returns the reservation a client token made already, for an idempotent retry.
func (s *Service) reservationForToken(ctx context.Context, r *awsproto.Request, token string) (any, bool, error) {
	var ids []string
	var insts []instance
	err := s.store.View(ctx, func(tx store.Tx) error {
		kv, err := tx.Get(s.clientTokenKey(r.Caller.AccountID, token))
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := json.Unmarshal(kv.Value, &ids); err != nil {
			return fmt.Errorf("client token %s: %w", token, err)
		}
		for _, id := range ids {
			inst, err := s.getInstance(tx, r, id)
			if err != nil {
				return err
			}
			insts = append(insts, inst)
		}
		return nil
	})
	if err != nil || len(insts) == 0 {
		return nil, false, err
	}
	res, err := s.reservationXML(ctx, r, insts)
	return res, true, err
}
