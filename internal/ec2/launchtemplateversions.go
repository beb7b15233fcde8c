package ec2

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strconv"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

type describeLTVersionsInput struct {
	ltRefInput
	Versions   []string `query:"LaunchTemplateVersion"`
	MinVersion string   `query:"MinVersion"`
	MaxVersion string   `query:"MaxVersion"`
	Filters    []Filter `query:"Filter"`
	MaxResults int      `query:"MaxResults"`
	NextToken  string   `query:"NextToken"`
}

func (s *Service) describeLaunchTemplateVersions(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in describeLTVersionsInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if err := checkFilters(in.Filters, func(n string) bool {
		switch n {
		case "create-time", "ebs-optimized", "http-endpoint", "http-put-response-hop-limit", "http-tokens",
			"iam-instance-profile", "image-id", "instance-type", "is-default-version", "instance-metadata-tags":
			return true
		}
		return false
	}); err != nil {
		return nil, err
	}
	if in.MaxResults != 0 && (in.MaxResults < 1 || in.MaxResults > 200) {
		return nil, invalidValue("MaxResults", itoa(in.MaxResults), "It must be between 1 and 200.")
	}
	// Without a template, the $Latest or $Default versions of every template, as EC2 lists them.
	across := in.ID == "" && in.Name == ""
	if across && (len(in.Versions) == 0 || slices.ContainsFunc(in.Versions, func(v string) bool { return v != "$Latest" && v != "$Default" })) {
		return nil, clientError("MissingParameter", "The request must contain the parameter LaunchTemplateName or LaunchTemplateId, "+
			"unless it asks only for the $Latest or $Default versions of all launch templates")
	}
	type ltv struct {
		lt launchTemplate
		v  ltVersion
	}
	var versions []ltv
	err := s.store.View(ctx, func(tx store.Tx) error {
		var lts []launchTemplate
		if across {
			var err error
			if lts, err = s.launchTemplates(tx, r); err != nil {
				return err
			}
		} else {
			lt, err := s.findLT(tx, r, in.ID, in.Name)
			if err != nil {
				return err
			}
			lts = []launchTemplate{lt}
		}
		for _, lt := range lts {
			if len(in.Versions) > 0 {
				for _, v := range in.Versions {
					ver, err := s.getLTVersion(tx, r, lt, v)
					if err != nil {
						return err
					}
					versions = append(versions, ltv{lt, ver})
				}
				continue
			}
			lo, hi := 1, lt.LatestVersion
			var err error
			if in.MinVersion != "" {
				if lo, err = ltVersionNumber(lt, in.MinVersion); err != nil {
					return err
				}
			}
			if in.MaxVersion != "" {
				if hi, err = ltVersionNumber(lt, in.MaxVersion); err != nil {
					return err
				}
			}
			kvs, err := tx.List(s.ltVersionsPrefix(r, lt.ID), "", 0)
			if err != nil {
				return err
			}
			for _, kv := range slices.Backward(kvs) { // newest first, as EC2 lists them
				var v ltVersion
				if err := json.Unmarshal(kv.Value, &v); err != nil {
					return err
				}
				if v.Number >= lo && v.Number <= hi {
					versions = append(versions, ltv{lt, v})
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	var shown []ltv
	for _, x := range versions {
		v := x.v
		if matchFilters(in.Filters, func(name string) []string {
			switch name {
			case "image-id":
				return []string{v.Data.ImageID}
			case "instance-type":
				return []string{v.Data.InstanceType}
			case "is-default-version":
				return []string{strconv.FormatBool(v.Number == x.lt.DefaultVersion)}
			case "create-time":
				return []string{timestamp(v.Created)}
			case "ebs-optimized":
				return []string{strconv.FormatBool(isTrue(v.Data.EbsOptimized))}
			case "iam-instance-profile":
				if p := v.Data.IamInstanceProfile; p != nil {
					return []string{p.Arn, p.Name}
				}
			}
			if m := v.Data.MetadataOptions; m != nil {
				switch name {
				case "http-endpoint":
					return []string{m.HttpEndpoint}
				case "http-put-response-hop-limit":
					return []string{itoa(m.HttpPutResponseHopLimit)}
				case "http-tokens":
					return []string{m.HttpTokens}
				case "instance-metadata-tags":
					return []string{m.InstanceMetadataTags}
				}
			}
			return nil
		}) {
			shown = append(shown, x)
		}
	}
	page, next, err := pageByID(shown, func(x ltv) string { return x.lt.ID + ":" + itoa(x.v.Number) }, in.MaxResults, in.NextToken)
	if err != nil {
		return nil, err
	}
	out := struct {
		Versions  awsproto.List[ltVersionXML] `xml:"launchTemplateVersionSet"`
		NextToken string                      `xml:"nextToken,omitempty"`
	}{Versions: awsproto.List[ltVersionXML]{}, NextToken: next}
	for _, x := range page {
		out.Versions = append(out.Versions, s.ltVersionToXML(r, x.lt, x.v))
	}
	return out, nil
}

type modifyLTInput struct {
	ltRefInput
	DefaultVersion string `query:"SetDefaultVersion"`
	ClientToken    string `query:"ClientToken"`
}

func (s *Service) modifyLaunchTemplate(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in modifyLTInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	var lt launchTemplate
	err := s.store.Update(ctx, func(tx store.Tx) error {
		var err error
		if lt, err = s.findLT(tx, r, in.ID, in.Name); err != nil {
			return err
		}
		if in.DefaultVersion == "" {
			return nil
		}
		v, err := s.getLTVersion(tx, r, lt, in.DefaultVersion)
		if err != nil {
			return err
		}
		lt.DefaultVersion = v.Number
		return store.PutJSON(tx, s.ltKey(r, lt.ID), lt)
	})
	if err != nil {
		return nil, err
	}
	return s.ltResponse(ctx, r, lt)
}

func (s *Service) ltResponse(ctx context.Context, r *awsproto.Request, lt launchTemplate) (any, error) {
	var tags tagList
	if err := s.store.View(ctx, func(tx store.Tx) (err error) {
		tags, err = loadTags(tx.Get(s.tagKey(r, lt.ID)))
		return err
	}); err != nil {
		return nil, err
	}
	return struct {
		LT ltXML `xml:"launchTemplate"`
	}{s.ltToXML(r, lt, tags)}, nil
}

func (s *Service) deleteLaunchTemplate(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in ltRefInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	var lt launchTemplate
	var tags tagList
	err := s.store.Update(ctx, func(tx store.Tx) error {
		var err error
		if lt, err = s.findLT(tx, r, in.ID, in.Name); err != nil {
			return err
		}
		if tags, err = loadTags(tx.Get(s.tagKey(r, lt.ID))); err != nil {
			return err
		}
		kvs, err := tx.List(s.ltVersionsPrefix(r, lt.ID), "", 0)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			if err := tx.Delete(kv.Key); err != nil {
				return err
			}
		}
		for _, key := range []string{s.ltKey(r, lt.ID), s.ltNameKey(r, lt.Name)} {
			if err := tx.Delete(key); err != nil {
				return err
			}
		}
		return putTags(tx, s.tagKey(r, lt.ID), nil)
	})
	if err != nil {
		return nil, err
	}
	return struct {
		LT ltXML `xml:"launchTemplate"`
	}{s.ltToXML(r, lt, tags)}, nil
}

type ltVersionResult struct {
	ID      string `xml:"launchTemplateId"`
	Name    string `xml:"launchTemplateName"`
	Version int64  `xml:"versionNumber"`
	Error   *struct {
		Code    string `xml:"code"`
		Message string `xml:"message"`
	} `xml:"responseError,omitempty"`
}

func (s *Service) deleteLaunchTemplateVersions(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in struct {
		ltRefInput
		Versions []string `query:"LaunchTemplateVersion"`
	}
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if len(in.Versions) == 0 {
		return nil, missingParameter("LaunchTemplateVersion")
	}
	if in.DryRun {
		return nil, errDryRun
	}
	out := struct {
		Deleted awsproto.List[ltVersionResult] `xml:"successfullyDeletedLaunchTemplateVersionSet"`
		Failed  awsproto.List[ltVersionResult] `xml:"unsuccessfullyDeletedLaunchTemplateVersionSet"`
	}{Deleted: awsproto.List[ltVersionResult]{}, Failed: awsproto.List[ltVersionResult]{}}
	err := s.store.Update(ctx, func(tx store.Tx) error {
		lt, err := s.findLT(tx, r, in.ID, in.Name)
		if err != nil {
			return err
		}
		for _, v := range in.Versions {
			res := ltVersionResult{ID: lt.ID, Name: lt.Name}
			n, err := ltVersionNumber(lt, v)
			res.Version = int64(n)
			fail := func(code, msg string) {
				res.Error = &struct {
					Code    string `xml:"code"`
					Message string `xml:"message"`
				}{code, msg}
				out.Failed = append(out.Failed, res)
			}
			switch {
			case err != nil || n < 1:
				fail("launchTemplateVersionDoesNotExist", "The launch template version "+v+" does not exist.")
			case n == lt.DefaultVersion:
				fail("launchTemplateVersionIsDefault", "The default version of a launch template cannot be deleted.")
			default:
				if err := tx.Delete(s.ltVersionKey(r, lt.ID, n)); errors.Is(err, store.ErrNotFound) {
					fail("launchTemplateVersionDoesNotExist", "The launch template version "+v+" does not exist.")
					continue
				} else if err != nil {
					return err
				}
				out.Deleted = append(out.Deleted, res)
			}
		}
		// The latest version is the highest one left (the default always is; numbers are never
		// reused: LastNumber).
		kvs, err := tx.List(s.ltVersionsPrefix(r, lt.ID), "", 0)
		if err != nil {
			return err
		}
		var latest ltVersion
		if err := json.Unmarshal(kvs[len(kvs)-1].Value, &latest); err != nil {
			return err
		}
		lt.LastNumber = max(lt.LastNumber, lt.LatestVersion)
		lt.LatestVersion = latest.Number
		return store.PutJSON(tx, s.ltKey(r, lt.ID), lt)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// mergeRunInput fills what req leaves unset from base (a launch template's data): the request's
// own parameters win, as RunInstances --launch-template and CreateLaunchTemplateVersion
// --source-version have it. A subnet or security groups of the request cannot be combined with
// the template's network interfaces (EC2 refuses that too).
func mergeRunInput(req, base runInstancesInput) (runInstancesInput, error) {
	out := req
	if len(base.NetworkInterfaces) > 0 && len(req.NetworkInterfaces) == 0 {
		if req.SubnetID != "" {
			return out, clientError("InvalidParameterCombination", "Network interfaces and an instance-level subnet ID may not be specified on the same request")
		}
		if len(req.SecurityGroupIDs) > 0 || len(req.SecurityGroups) > 0 {
			return out, clientError("InvalidParameterCombination", "Network interfaces and an instance-level security groups may not be specified on the same request")
		}
	}
	set := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	set(&out.ImageID, base.ImageID)
	set(&out.InstanceType, base.InstanceType)
	set(&out.KeyName, base.KeyName)
	set(&out.ShutdownBehavior, base.ShutdownBehavior)
	if len(out.SecurityGroupIDs) == 0 && len(out.SecurityGroups) == 0 && len(out.NetworkInterfaces) == 0 {
		out.SecurityGroupIDs, out.SecurityGroups = base.SecurityGroupIDs, base.SecurityGroups
	}
	if len(out.NetworkInterfaces) == 0 {
		out.NetworkInterfaces = base.NetworkInterfaces
	}
	if len(out.UserData) == 0 {
		out.UserData = base.UserData
	}
	if len(out.BlockDeviceMapping) == 0 {
		out.BlockDeviceMapping = base.BlockDeviceMapping
	}
	if out.MetadataOptions == nil {
		out.MetadataOptions = base.MetadataOptions
	}
	// Tags: the template's, for the resource types the request does not tag itself.
	for _, ts := range base.TagSpecifications {
		if !slicesContainsType(out.TagSpecifications, ts.ResourceType) {
			out.TagSpecifications = append(out.TagSpecifications, ts)
		}
	}
	for _, b := range []struct{ dst, src **bool }{{&out.DisableAPITerm, &base.DisableAPITerm},
		{&out.DisableAPIStop, &base.DisableAPIStop}, {&out.EbsOptimized, &base.EbsOptimized}} {
		if *b.dst == nil {
			*b.dst = *b.src
		}
	}
	if out.Placement == nil {
		out.Placement = base.Placement
	} else if base.Placement != nil {
		p := *out.Placement
		if p.AvailabilityZone == "" {
			p.AvailabilityZone = base.Placement.AvailabilityZone
		}
		if p.Tenancy == "" {
			p.Tenancy = base.Placement.Tenancy
		}
		if p.GroupName == "" {
			p.GroupName = base.Placement.GroupName
		}
		out.Placement = &p
	}
	if out.Monitoring == nil {
		out.Monitoring = base.Monitoring
	}
	if out.CreditSpecification == nil {
		out.CreditSpecification = base.CreditSpecification
	}
	if out.IamInstanceProfile == nil {
		out.IamInstanceProfile = base.IamInstanceProfile
	}
	if out.PrivateDNSNameOptions == nil {
		out.PrivateDNSNameOptions = base.PrivateDNSNameOptions
	}
	return out, nil
}

func slicesContainsType(specs []TagSpecification, t string) bool {
	for _, s := range specs {
		if s.ResourceType == t {
			return true
		}
	}
	return false
}

// ltDataXML is a launch template version's data as responses render it (ResponseLaunchTemplateData).
type ltDataXML struct {
	EbsOptimized        *bool                       `xml:"ebsOptimized,omitempty"`
	IamInstanceProfile  *ltProfileXML               `xml:"iamInstanceProfile,omitempty"`
	BlockDevices        awsproto.List[ltBlockXML]   `xml:"blockDeviceMappingSet,omitempty"`
	NetworkInterfaces   awsproto.List[ltNetIfXML]   `xml:"networkInterfaceSet,omitempty"`
	ImageID             string                      `xml:"imageId,omitempty"`
	InstanceType        string                      `xml:"instanceType,omitempty"`
	KeyName             string                      `xml:"keyName,omitempty"`
	Monitoring          *ltMonitoringXML            `xml:"monitoring,omitempty"`
	Placement           *ltPlacementXML             `xml:"placement,omitempty"`
	DisableAPITerm      *bool                       `xml:"disableApiTermination,omitempty"`
	ShutdownBehavior    string                      `xml:"instanceInitiatedShutdownBehavior,omitempty"`
	UserData            string                      `xml:"userData,omitempty"`
	TagSpecifications   awsproto.List[ltTagSpecXML] `xml:"tagSpecificationSet,omitempty"`
	SecurityGroupIDs    awsproto.List[string]       `xml:"securityGroupIdSet,omitempty"`
	SecurityGroups      awsproto.List[string]       `xml:"securityGroupSet,omitempty"`
	CreditSpecification *ltCreditXML                `xml:"creditSpecification,omitempty"`
	MetadataOptions     *ltMetadataXML              `xml:"metadataOptions,omitempty"`
	DisableAPIStop      *bool                       `xml:"disableApiStop,omitempty"`
}

type ltProfileXML struct {
	Arn  string `xml:"arn,omitempty"`
	Name string `xml:"name,omitempty"`
}

type ltBlockXML struct {
	DeviceName  string  `xml:"deviceName,omitempty"`
	VirtualName string  `xml:"virtualName,omitempty"`
	NoDevice    *string `xml:"noDevice,omitempty"`
	Ebs         *struct {
		Encrypted           bool   `xml:"encrypted,omitempty"`
		KmsKeyID            string `xml:"kmsKeyId,omitempty"`
		DeleteOnTermination *bool  `xml:"deleteOnTermination,omitempty"`
		VolumeSize          int    `xml:"volumeSize,omitempty"`
		VolumeType          string `xml:"volumeType,omitempty"`
		Iops                int    `xml:"iops,omitempty"`
		Throughput          int    `xml:"throughput,omitempty"`
		SnapshotID          string `xml:"snapshotId,omitempty"`
	} `xml:"ebs,omitempty"`
}

type ltNetIfXML struct {
	AssociatePublicIP   *bool                 `xml:"associatePublicIpAddress,omitempty"`
	DeleteOnTermination *bool                 `xml:"deleteOnTermination,omitempty"`
	DeviceIndex         int                   `xml:"deviceIndex"`
	SubnetID            string                `xml:"subnetId,omitempty"`
	Groups              awsproto.List[string] `xml:"groupSet,omitempty"`
	PrivateIPAddress    string                `xml:"privateIpAddress,omitempty"`
	Description         string                `xml:"description,omitempty"`
}

type ltMonitoringXML struct {
	Enabled bool `xml:"enabled"`
}

type ltCreditXML struct {
	CPUCredits string `xml:"cpuCredits"`
}

type ltPlacementXML struct {
	GroupName        string `xml:"groupName,omitempty"`
	AvailabilityZone string `xml:"availabilityZone,omitempty"`
	Tenancy          string `xml:"tenancy,omitempty"`
}

type ltTagSpecXML struct {
	ResourceType string             `xml:"resourceType"`
	Tags         awsproto.List[Tag] `xml:"tagSet"`
}

type ltMetadataXML struct {
	State                   string `xml:"state"`
	HttpTokens              string `xml:"httpTokens,omitempty"`
	HttpProtocolIpv6        string `xml:"httpProtocolIpv6,omitempty"`
	HttpPutResponseHopLimit int    `xml:"httpPutResponseHopLimit,omitempty"`
	HttpEndpoint            string `xml:"httpEndpoint,omitempty"`
	InstanceMetadataTags    string `xml:"instanceMetadataTags,omitempty"`
}

func ltDataToXML(d runInstancesInput) ltDataXML {
	x := ltDataXML{ImageID: d.ImageID, InstanceType: d.InstanceType, KeyName: d.KeyName, ShutdownBehavior: d.ShutdownBehavior,
		SecurityGroupIDs: d.SecurityGroupIDs, SecurityGroups: d.SecurityGroups}
	if len(d.UserData) > 0 {
		x.UserData = base64.StdEncoding.EncodeToString(d.UserData)
	}
	x.EbsOptimized, x.DisableAPITerm, x.DisableAPIStop = d.EbsOptimized, d.DisableAPITerm, d.DisableAPIStop
	if d.CreditSpecification != nil {
		x.CreditSpecification = &ltCreditXML{CPUCredits: d.CreditSpecification.CPUCredits}
	}
	if d.IamInstanceProfile != nil {
		x.IamInstanceProfile = &ltProfileXML{Arn: d.IamInstanceProfile.Arn, Name: d.IamInstanceProfile.Name}
	}
	for _, b := range d.BlockDeviceMapping {
		bx := ltBlockXML{DeviceName: b.DeviceName, VirtualName: b.VirtualName, NoDevice: b.NoDevice}
		if b.Ebs != nil {
			bx.Ebs = &struct {
				Encrypted           bool   `xml:"encrypted,omitempty"`
				KmsKeyID            string `xml:"kmsKeyId,omitempty"`
				DeleteOnTermination *bool  `xml:"deleteOnTermination,omitempty"`
				VolumeSize          int    `xml:"volumeSize,omitempty"`
				VolumeType          string `xml:"volumeType,omitempty"`
				Iops                int    `xml:"iops,omitempty"`
				Throughput          int    `xml:"throughput,omitempty"`
				SnapshotID          string `xml:"snapshotId,omitempty"`
			}{b.Ebs.Encrypted, b.Ebs.KmsKeyID, b.Ebs.DeleteOnTermination, b.Ebs.VolumeSize, b.Ebs.VolumeType, b.Ebs.Iops, b.Ebs.Throughput, b.Ebs.SnapshotID}
		}
		x.BlockDevices = append(x.BlockDevices, bx)
	}
	for _, ni := range d.NetworkInterfaces {
		x.NetworkInterfaces = append(x.NetworkInterfaces, ltNetIfXML{AssociatePublicIP: ni.AssociatePublicIPAddress,
			DeleteOnTermination: ni.DeleteOnTermination, DeviceIndex: ni.DeviceIndex, SubnetID: ni.SubnetID,
			Groups: ni.Groups, PrivateIPAddress: ni.PrivateIPAddress, Description: ni.Description})
	}
	if d.Monitoring != nil {
		x.Monitoring = &ltMonitoringXML{Enabled: d.Monitoring.Enabled}
	}
	if d.Placement != nil {
		x.Placement = &ltPlacementXML{GroupName: d.Placement.GroupName, AvailabilityZone: d.Placement.AvailabilityZone, Tenancy: d.Placement.Tenancy}
	}
	for _, ts := range d.TagSpecifications {
		x.TagSpecifications = append(x.TagSpecifications, ltTagSpecXML{ResourceType: ts.ResourceType, Tags: ts.Tags})
	}
	if m := d.MetadataOptions; m != nil {
		x.MetadataOptions = &ltMetadataXML{State: "applied", HttpTokens: m.HttpTokens, HttpProtocolIpv6: m.HttpProtocolIpv6,
			HttpPutResponseHopLimit: m.HttpPutResponseHopLimit,
			HttpEndpoint:            m.HttpEndpoint, InstanceMetadataTags: m.InstanceMetadataTags}
	}
	return x
}
