package ec2

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/nubis/nubis/internal/awsproto"
)

// awsRegions are AWS's commercial Regions (the aws partition). optIn marks the Regions launched
// after March 2019, which an account must opt in to.
var awsRegions = []struct {
	name  string
	optIn bool
}{
	{"af-south-1", true}, {"ap-east-1", true}, {"ap-east-2", true}, {"ap-northeast-1", false},
	{"ap-northeast-2", false}, {"ap-northeast-3", false}, {"ap-south-1", false}, {"ap-south-2", true},
	{"ap-southeast-1", false}, {"ap-southeast-2", false}, {"ap-southeast-3", true}, {"ap-southeast-4", true},
	{"ap-southeast-5", true}, {"ap-southeast-6", true}, {"ap-southeast-7", true}, {"ca-central-1", false},
	{"ca-west-1", true}, {"eu-central-1", false}, {"eu-central-2", true}, {"eu-north-1", false},
	{"eu-south-1", true}, {"eu-south-2", true}, {"eu-west-1", false}, {"eu-west-2", false},
	{"eu-west-3", false}, {"il-central-1", true}, {"me-central-1", true}, {"me-south-1", true},
	{"me-west-1", true}, {"mx-central-1", true}, {"sa-east-1", false}, {"sa-west-1", true},
	{"us-east-1", false}, {"us-east-2", false}, {"us-west-1", false}, {"us-west-2", false},
}

type regionInfo struct {
	Endpoint    string `xml:"regionEndpoint"`
	RegionName  string `xml:"regionName"`
	OptInStatus string `xml:"optInStatus"`
}

// regions returns the Regions DescribeRegions knows, ordered by name: AWS's commercial Regions and
// this server's own (which may have a name of its own), in which the account is always opted in.
func (s *Service) regions() []regionInfo {
	var out []regionInfo
	seen := false
	for _, reg := range awsRegions {
		status := "opt-in-not-required"
		switch {
		case reg.optIn && reg.name == s.region:
			status = "opted-in"
		case reg.optIn:
			status = "not-opted-in"
		}
		seen = seen || reg.name == s.region
		out = append(out, regionInfo{Endpoint: "ec2." + reg.name + ".amazonaws.com", RegionName: reg.name, OptInStatus: status})
	}
	if !seen {
		out = append(out, regionInfo{Endpoint: "ec2." + s.region + ".amazonaws.com", RegionName: s.region,
			OptInStatus: "opt-in-not-required"})
		sort.Slice(out, func(i, j int) bool { return out[i].RegionName < out[j].RegionName })
	}
	return out
}

type describeRegionsInput struct {
	Filters     []Filter `query:"Filter"`
	RegionNames []string `query:"RegionName"`
	DryRun      bool     `query:"DryRun"`
	AllRegions  bool     `query:"AllRegions"`
}

type describeRegionsOutput struct {
	Regions awsproto.List[regionInfo] `xml:"regionInfo"`
}

var regionFilters = map[string]bool{"endpoint": true, "opt-in-status": true, "region-name": true}

// describeRegions lists this server's Region; with AllRegions, or for Regions asked for by name,
// AWS's commercial Regions too.
func (s *Service) describeRegions(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in describeRegionsInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if err := checkFilters(in.Filters, func(n string) bool { return regionFilters[n] }); err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	all := s.regions()
	known := map[string]bool{}
	for _, reg := range all {
		known[reg.RegionName] = true
	}
	var unknown []string
	for _, n := range in.RegionNames {
		if !known[n] {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		return nil, clientError("InvalidParameterValue", "Invalid region: [%s]", strings.Join(unknown, ", "))
	}
	want := setOf(in.RegionNames)
	var out describeRegionsOutput
	for _, reg := range all {
		switch {
		case len(want) > 0 && !want[reg.RegionName]:
			continue
		case len(want) == 0 && !in.AllRegions && reg.RegionName != s.region:
			continue
		}
		ok := matchFilters(in.Filters, func(n string) []string {
			switch n {
			case "endpoint":
				return []string{reg.Endpoint}
			case "opt-in-status":
				return []string{reg.OptInStatus}
			}
			return []string{reg.RegionName}
		})
		if ok {
			out.Regions = append(out.Regions, reg)
		}
	}
	return out, nil
}

// availabilityZone is one zone as DescribeAvailabilityZones renders it.
type availabilityZone struct {
	State              string                `xml:"zoneState"`
	OptInStatus        string                `xml:"optInStatus"`
	Messages           awsproto.List[string] `xml:"messageSet"`
	RegionName         string                `xml:"regionName"`
	ZoneName           string                `xml:"zoneName"`
	ZoneID             string                `xml:"zoneId"`
	GroupName          string                `xml:"groupName"`
	NetworkBorderGroup string                `xml:"networkBorderGroup"`
	ZoneType           string                `xml:"zoneType"`
}

// SetZones sets the server's Availability Zones: names in its region, such as us-east-1a (at most
// 16: the default VPC has a /20 subnet per zone). The default is <region>a to <region>c.
func (s *Service) SetZones(names []string) error {
	if len(names) == 0 || len(names) > 16 {
		return fmt.Errorf("zones: give 1 to 16 zones, not %d", len(names))
	}
	seen := map[string]bool{}
	for _, n := range names {
		letter, ok := strings.CutPrefix(n, s.region)
		if !ok || len(letter) != 1 || letter[0] < 'a' || letter[0] > 'z' || seen[n] {
			return fmt.Errorf("zones: %q is not a zone of %s such as %sa (or is given twice)", n, s.region, s.region)
		}
		seen[n] = true
	}
	s.zoneNames = slices.Clone(names)
	return nil
}

// zones returns the server's Availability Zones (by default <region>a to <region>c), with
// AWS-style zone IDs (us-east-1a is use1-az1).
func (s *Service) zones() []availabilityZone {
	names := s.zoneNames
	if len(names) == 0 {
		names = []string{s.region + "a", s.region + "b", s.region + "c"}
	}
	out := make([]availabilityZone, 0, len(names))
	for i, name := range names {
		out = append(out, availabilityZone{State: "available", OptInStatus: "opt-in-not-required",
			Messages: awsproto.List[string]{}, RegionName: s.region, ZoneName: name,
			ZoneID: zoneIDPrefix(s.region) + "-az" + itoa(i+1), GroupName: s.region, NetworkBorderGroup: s.region,
			ZoneType: "availability-zone"})
	}
	return out
}

// zoneIDPrefix abbreviates a Region name as AWS's zone IDs do: us-east-1 is use1, ap-southeast-2
// apse2, us-gov-west-1 usgw1. A name of another shape is used as it is, without dashes.
func zoneIDPrefix(region string) string {
	short := map[string]string{"north": "n", "south": "s", "east": "e", "west": "w", "central": "c",
		"northeast": "ne", "northwest": "nw", "southeast": "se", "southwest": "sw", "gov": "g"}
	parts := strings.Split(region, "-")
	if len(parts) < 3 {
		return strings.ReplaceAll(region, "-", "")
	}
	out := parts[0]
	for _, part := range parts[1 : len(parts)-1] {
		abbr, ok := short[part]
		if !ok {
			return strings.ReplaceAll(region, "-", "")
		}
		out += abbr
	}
	return out + parts[len(parts)-1]
}

type describeAvailabilityZonesInput struct {
	Filters              []Filter `query:"Filter"`
	ZoneNames            []string `query:"ZoneName"`
	ZoneIDs              []string `query:"ZoneId"`
	AllAvailabilityZones bool     `query:"AllAvailabilityZones"`
	DryRun               bool     `query:"DryRun"`
}

type describeAvailabilityZonesOutput struct {
	Zones awsproto.List[availabilityZone] `xml:"availabilityZoneInfo"`
}

var zoneFilters = map[string]bool{"group-name": true, "message": true, "network-border-group": true,
	"opt-in-status": true, "parent-zone-id": true, "parent-zone-name": true, "region-name": true,
	"state": true, "zone-id": true, "zone-name": true, "zone-type": true}

// describeAvailabilityZones lists the server's Availability Zones. It has no Local or Wavelength
// Zones, so AllAvailabilityZones changes nothing.
func (s *Service) describeAvailabilityZones(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in describeAvailabilityZonesInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if err := checkFilters(in.Filters, func(n string) bool { return zoneFilters[n] }); err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	zones := s.zones()
	names, ids := map[string]bool{}, map[string]bool{}
	for _, z := range zones {
		names[z.ZoneName], ids[z.ZoneID] = true, true
	}
	for _, n := range in.ZoneNames {
		if !names[n] {
			return nil, clientError("InvalidParameterValue", "Invalid availability zone: [%s]", n)
		}
	}
	for _, id := range in.ZoneIDs {
		if !ids[id] {
			return nil, clientError("InvalidParameterValue", "Invalid availability zone ID: [%s]", id)
		}
	}
	wantName, wantID := setOf(in.ZoneNames), setOf(in.ZoneIDs)
	var out describeAvailabilityZonesOutput
	for _, z := range zones {
		if len(wantName)+len(wantID) > 0 && !wantName[z.ZoneName] && !wantID[z.ZoneID] {
			continue
		}
		ok := matchFilters(in.Filters, func(n string) []string {
			switch n {
			case "group-name":
				return []string{z.GroupName}
			case "network-border-group":
				return []string{z.NetworkBorderGroup}
			case "opt-in-status":
				return []string{z.OptInStatus}
			case "region-name":
				return []string{z.RegionName}
			case "state":
				return []string{z.State}
			case "zone-id":
				return []string{z.ZoneID}
			case "zone-name":
				return []string{z.ZoneName}
			case "zone-type":
				return []string{z.ZoneType}
			}
			return nil // message, parent-zone-id, parent-zone-name: AZs have none
		})
		if ok {
			out.Zones = append(out.Zones, z)
		}
	}
	return out, nil
}
