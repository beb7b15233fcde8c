package ec2

import (
	"context"
	"encoding/base64"
	"slices"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

type describeInstanceAttributeInput struct {
	InstanceID string `query:"InstanceId"`
	Attribute  string `query:"Attribute"`
	DryRun     bool   `query:"DryRun"`
}

type attrValue struct {
	Value string `xml:"value"`
}

type describeInstanceAttributeOutput struct {
	InstanceID            string                             `xml:"instanceId"`
	InstanceType          *attrValue                         `xml:"instanceType,omitempty"`
	UserData              *attrValue                         `xml:"userData,omitempty"`
	DisableAPITermination *attrValue                         `xml:"disableApiTermination,omitempty"`
	DisableAPIStop        *attrValue                         `xml:"disableApiStop,omitempty"`
	ShutdownBehavior      *attrValue                         `xml:"instanceInitiatedShutdownBehavior,omitempty"`
	RootDeviceName        *attrValue                         `xml:"rootDeviceName,omitempty"`
	Kernel                *attrValue                         `xml:"kernel,omitempty"`
	Ramdisk               *attrValue                         `xml:"ramdisk,omitempty"`
	SourceDestCheck       *attrValue                         `xml:"sourceDestCheck,omitempty"`
	EbsOptimized          *attrValue                         `xml:"ebsOptimized,omitempty"`
	EnaSupport            *attrValue                         `xml:"enaSupport,omitempty"`
	SriovNetSupport       *attrValue                         `xml:"sriovNetSupport,omitempty"`
	Groups                awsproto.List[groupIdentifier]     `xml:"groupSet,omitempty"`
	BlockDevices          awsproto.List[instanceBlockDevice] `xml:"blockDeviceMapping,omitempty"`
	ProductCodes          *awsproto.List[string]             `xml:"productCodes,omitempty"`
}

func (s *Service) describeInstanceAttribute(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in describeInstanceAttributeInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if in.InstanceID != "" && in.Attribute == "" {
		return nil, missingParameter("Attribute")
	}
	inst, err := s.readInstance(ctx, r, in.InstanceID, in.DryRun)
	if err != nil {
		return nil, err
	}
	out := describeInstanceAttributeOutput{InstanceID: inst.ID}
	v := func(s string) *attrValue { return &attrValue{Value: s} }
	switch in.Attribute {
	case "instanceType":
		out.InstanceType = v(inst.Type)
	case "userData":
		out.UserData = &attrValue{}
		if len(inst.UserData) > 0 {
			out.UserData.Value = base64.StdEncoding.EncodeToString(inst.UserData)
		}
	case "disableApiTermination":
		out.DisableAPITermination = v(boolString(inst.DisableAPITerm))
	case "disableApiStop":
		out.DisableAPIStop = v(boolString(inst.DisableAPIStop))
	case "instanceInitiatedShutdownBehavior":
		out.ShutdownBehavior = v(inst.ShutdownBehavior)
	case "rootDeviceName":
		out.RootDeviceName = v(inst.RootDevice)
	case "kernel":
		out.Kernel = &attrValue{}
	case "ramdisk":
		out.Ramdisk = &attrValue{}
	case "sourceDestCheck":
		out.SourceDestCheck = v("true")
	case "ebsOptimized":
		out.EbsOptimized = v("false")
	case "enaSupport":
		out.EnaSupport = v("true")
	case "sriovNetSupport":
		out.SriovNetSupport = v("simple")
	case "groupSet":
		out.Groups = s.groupXML(inst.Account, inst.Groups)
	case "blockDeviceMapping":
		out.BlockDevices = s.instanceXML(inst, nil).BlockDevices
	case "productCodes":
		out.ProductCodes = &awsproto.List[string]{}
	default:
		return nil, invalidValue("attribute", in.Attribute, "Unknown attribute.")
	}
	return out, nil
}

type boolAttr struct {
	Value *bool `query:"Value"`
}

type stringAttr struct {
	Value *string `query:"Value"`
}

type modifyInstanceAttributeInput struct {
	InstanceID   string      `query:"InstanceId"`
	Attribute    string      `query:"Attribute"`
	Value        *string     `query:"Value"`
	InstanceType *stringAttr `query:"InstanceType"`
	UserData     *struct {
		Value []byte `query:"Value"`
	} `query:"UserData"`
	DisableAPITermination *boolAttr   `query:"DisableApiTermination"`
	DisableAPIStop        *boolAttr   `query:"DisableApiStop"`
	ShutdownBehavior      *stringAttr `query:"InstanceInitiatedShutdownBehavior"`
	SourceDestCheck       *boolAttr   `query:"SourceDestCheck"`
	EbsOptimized          *boolAttr   `query:"EbsOptimized"`
	EnaSupport            *boolAttr   `query:"EnaSupport"`
	Groups                []string    `query:"GroupId"`
	DryRun                bool        `query:"DryRun"`
}

type returnOutput struct {
	Return bool `xml:"return"`
}

func (s *Service) modifyInstanceAttribute(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in modifyInstanceAttributeInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if in.InstanceID == "" {
		return nil, missingParameter("InstanceId")
	}
	// The Attribute/Value form names one attribute; turn it into the structured form.
	if in.Attribute != "" {
		if in.Value == nil {
			return nil, missingParameter("Value")
		}
		val := *in.Value
		b := val == "true"
		switch in.Attribute {
		case "instanceType":
			in.InstanceType = &stringAttr{Value: &val}
		case "userData":
			in.UserData = &struct {
				Value []byte `query:"Value"`
			}{Value: []byte(val)}
		case "disableApiTermination":
			in.DisableAPITermination = &boolAttr{Value: &b}
		case "disableApiStop":
			in.DisableAPIStop = &boolAttr{Value: &b}
		case "instanceInitiatedShutdownBehavior":
			in.ShutdownBehavior = &stringAttr{Value: &val}
		case "sourceDestCheck", "ebsOptimized", "enaSupport":
		default:
			return nil, invalidValue("attribute", in.Attribute, "Unknown or unsupported attribute.")
		}
	}
	var newType *instanceType
	if in.InstanceType != nil && in.InstanceType.Value != nil {
		it, ok := lookupInstanceType(*in.InstanceType.Value)
		if !ok {
			return nil, clientError("InvalidParameterValue", "Invalid value '%s' for InstanceType.", *in.InstanceType.Value)
		}
		newType = &it
	}
	if in.UserData != nil && len(in.UserData.Value) > maxUserData {
		return nil, clientError("InvalidParameterValue", "User data is limited to %d bytes", maxUserData)
	}
	if in.ShutdownBehavior != nil && in.ShutdownBehavior.Value != nil {
		if v := *in.ShutdownBehavior.Value; v != "stop" && v != "terminate" {
			return nil, invalidValue("InstanceInitiatedShutdownBehavior", v, "Valid values are stop and terminate.")
		}
	}
	err := s.store.Update(ctx, func(tx store.Tx) error {
		for _, g := range in.Groups {
			if _, err := s.resolveGroup(tx, r.Caller.AccountID, g, ""); err != nil {
				return err
			}
		}
		inst, err := s.getInstance(tx, r, in.InstanceID)
		if err != nil {
			return err
		}
		if inst.State == stateTerminated || inst.State == stateShuttingDown {
			return clientError("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be modified.", inst.ID)
		}
		if newType != nil {
			if inst.State != stateStopped {
				return clientError("IncorrectInstanceState", "The instance '%s' is not in the 'stopped' state.", inst.ID)
			}
			if err := s.checkCapacity(*newType, inst.Zone); err != nil {
				return err
			}
			inst.Type = newType.Name
		}
		if in.UserData != nil {
			if inst.State != stateStopped {
				return clientError("IncorrectInstanceState", "The instance '%s' is not in the 'stopped' state.", inst.ID)
			}
			inst.UserData = in.UserData.Value
		}
		if in.DisableAPITermination != nil && in.DisableAPITermination.Value != nil {
			inst.DisableAPITerm = *in.DisableAPITermination.Value
		}
		if in.DisableAPIStop != nil && in.DisableAPIStop.Value != nil {
			inst.DisableAPIStop = *in.DisableAPIStop.Value
		}
		if in.ShutdownBehavior != nil && in.ShutdownBehavior.Value != nil {
			inst.ShutdownBehavior = *in.ShutdownBehavior.Value
		}
		if len(in.Groups) > 0 {
			inst.Groups = slices.Compact(slices.Sorted(slices.Values(in.Groups)))
		}
		if in.DryRun {
			return errDryRun
		}
		return s.putInstance(tx, inst)
	})
	if err != nil {
		return nil, err
	}
	if len(in.Groups) > 0 {
		s.groupsChanged(r.Caller.AccountID)
	}
	return returnOutput{Return: true}, nil
}

type modifyMetadataInput struct {
	InstanceID              string `query:"InstanceId"`
	HttpTokens              string `query:"HttpTokens"`
	HttpPutResponseHopLimit int    `query:"HttpPutResponseHopLimit"`
	HttpEndpoint            string `query:"HttpEndpoint"`
	HttpProtocolIpv6        string `query:"HttpProtocolIpv6"`
	InstanceMetadataTags    string `query:"InstanceMetadataTags"`
	DryRun                  bool   `query:"DryRun"`
}

type modifyMetadataOutput struct {
	InstanceID string             `xml:"instanceId"`
	Options    metadataOptionsXML `xml:"instanceMetadataOptions"`
}

func (s *Service) modifyInstanceMetadataOptions(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in modifyMetadataInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if in.InstanceID == "" {
		return nil, missingParameter("InstanceId")
	}
	var out modifyMetadataOutput
	err := s.store.Update(ctx, func(tx store.Tx) error {
		inst, err := s.getInstance(tx, r, in.InstanceID)
		if err != nil {
			return err
		}
		m := inst.Metadata
		base := &metadataOptionsInput{HttpTokens: m.HttpTokens, HttpEndpoint: m.HttpEndpoint,
			HttpPutResponseHopLimit: m.HopLimit, InstanceMetadataTags: m.InstanceMetadataTags}
		if in.HttpTokens != "" {
			base.HttpTokens = in.HttpTokens
		}
		if in.HttpEndpoint != "" {
			base.HttpEndpoint = in.HttpEndpoint
		}
		if in.HttpPutResponseHopLimit != 0 {
			base.HttpPutResponseHopLimit = in.HttpPutResponseHopLimit
		}
		if in.InstanceMetadataTags != "" {
			base.InstanceMetadataTags = in.InstanceMetadataTags
		}
		if inst.Metadata, err = metadataFromInput(base); err != nil {
			return err
		}
		if in.DryRun {
			return errDryRun
		}
		m = inst.Metadata
		out = modifyMetadataOutput{InstanceID: inst.ID, Options: metadataOptionsXML{State: "applied", HttpTokens: m.HttpTokens,
			HttpPutResponseHopLimit: m.HopLimit, HttpEndpoint: m.HttpEndpoint, HttpProtocolIpv6: "disabled",
			InstanceMetadataTags: m.InstanceMetadataTags}}
		return s.putInstance(tx, inst)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

type modifyNetworkInterfaceAttributeInput struct {
	NetworkInterfaceID string      `query:"NetworkInterfaceId"`
	Groups             []string    `query:"SecurityGroupId"`
	SourceDestCheck    *boolAttr   `query:"SourceDestCheck"`
	Description        *stringAttr `query:"Description"`
	DryRun             bool        `query:"DryRun"`
}

// modifyNetworkInterfaceAttribute changes the security groups of an instance's (only) network
// interface, eni-... as DescribeInstances shows it.
func (s *Service) modifyNetworkInterfaceAttribute(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in modifyNetworkInterfaceAttributeInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if in.NetworkInterfaceID == "" {
		return nil, missingParameter("NetworkInterfaceId")
	}
	account := r.Caller.AccountID
	err := s.store.Update(ctx, func(tx store.Tx) error {
		insts, err := s.listInstancesTx(tx, account)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(insts, func(x instance) bool {
			return x.State != stateTerminated && derivedID("eni", x.ID) == in.NetworkInterfaceID
		})
		if i < 0 {
			return clientError("InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", in.NetworkInterfaceID)
		}
		inst := insts[i]
		for _, g := range in.Groups {
			if _, err := s.resolveGroup(tx, account, g, ""); err != nil {
				return err
			}
		}
		if in.DryRun {
			return errDryRun
		}
		if len(in.Groups) > 0 {
			inst.Groups = slices.Compact(slices.Sorted(slices.Values(in.Groups)))
		}
		return s.putInstance(tx, inst)
	})
	if err != nil {
		return nil, err
	}
	s.groupsChanged(account)
	return returnOutput{Return: true}, nil
}
