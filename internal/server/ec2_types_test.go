package server_test

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/nubis/nubis/internal/server/servertest"
)

// typesClient is an EC2 client for these tests (servertest's configuration avoids the SDK's
// connection race that large responses like these would otherwise hit).
func typesClient(t *testing.T, s *servertest.Server) *ec2.Client { return ec2Client(t, s) }

// allInstanceTypes lists every page of DescribeInstanceTypes with the SDK's paginator.
func allInstanceTypes(t *testing.T, c *ec2.Client, in *ec2.DescribeInstanceTypesInput) (infos []types.InstanceTypeInfo, pages int) {
	t.Helper()
	p := ec2.NewDescribeInstanceTypesPaginator(c, in)
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		infos = append(infos, out.InstanceTypes...)
		pages++
	}
	return infos, pages
}

func instanceTypeNames(infos []types.InstanceTypeInfo) []string {
	var names []string
	for _, it := range infos {
		names = append(names, string(it.InstanceType))
	}
	sort.Strings(names)
	return names
}

func ec2Filter(name string, values ...string) types.Filter {
	return types.Filter{Name: aws.String(name), Values: values}
}

func TestDescribeInstanceTypesPaginates(t *testing.T) {
	s := servertest.Start(t, "")
	c := typesClient(t, s)
	all, pages := allInstanceTypes(t, c, &ec2.DescribeInstanceTypesInput{})
	if len(all) != 36 || pages != 1 {
		t.Fatalf("%d types in %d pages, want 36 in 1", len(all), pages)
	}
	paged, pages := allInstanceTypes(t, c, &ec2.DescribeInstanceTypesInput{MaxResults: aws.Int32(5)})
	if pages != 8 || !slices.Equal(instanceTypeNames(paged), instanceTypeNames(all)) {
		t.Fatalf("%d pages of 5 gave %v, want %v", pages, instanceTypeNames(paged), instanceTypeNames(all))
	}
	for _, n := range []int32{4, 101} {
		_, err := c.DescribeInstanceTypes(context.Background(), &ec2.DescribeInstanceTypesInput{MaxResults: aws.Int32(n)})
		wantAPIError(t, err, "InvalidParameterValue", 400)
	}
	_, err := c.DescribeInstanceTypes(context.Background(), &ec2.DescribeInstanceTypesInput{NextToken: aws.String("bogus")})
	wantAPIError(t, err, "InvalidPaginationToken", 400)
}

func TestDescribeInstanceTypesValues(t *testing.T) {
	s := servertest.Start(t, "")
	c := typesClient(t, s)
	out, err := c.DescribeInstanceTypes(context.Background(), &ec2.DescribeInstanceTypesInput{
		InstanceTypes: []types.InstanceType{"t2.micro", "m5.large", "c5.2xlarge", "r5.xlarge", "t3.micro"}})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[types.InstanceType]types.InstanceTypeInfo{}
	for _, it := range out.InstanceTypes {
		byName[it.InstanceType] = it
	}
	if len(byName) != 5 {
		t.Fatalf("got %v", instanceTypeNames(out.InstanceTypes))
	}
	sizes := map[types.InstanceType][2]int64{"t2.micro": {1, 1024}, "t3.micro": {2, 1024}, "m5.large": {2, 8192},
		"c5.2xlarge": {8, 16384}, "r5.xlarge": {4, 32768}}
	for name, want := range sizes {
		it := byName[name]
		if int64(*it.VCpuInfo.DefaultVCpus) != want[0] || *it.MemoryInfo.SizeInMiB != want[1] {
			t.Errorf("%s: %d vCPUs %d MiB, want %v", name, *it.VCpuInfo.DefaultVCpus, *it.MemoryInfo.SizeInMiB, want)
		}
	}

	micro := byName["t2.micro"]
	switch {
	case !*micro.CurrentGeneration || !*micro.FreeTierEligible || !*micro.BurstablePerformanceSupported || *micro.BareMetal:
		t.Errorf("t2.micro flags: %+v", micro)
	case micro.Hypervisor != types.InstanceTypeHypervisorXen || *micro.VCpuInfo.DefaultCores != 1 ||
		*micro.VCpuInfo.DefaultThreadsPerCore != 1:
		t.Errorf("t2.micro: hypervisor %s, vCPU %+v", micro.Hypervisor, *micro.VCpuInfo)
	case !slices.Equal(micro.SupportedUsageClasses, []types.UsageClassType{"on-demand", "spot"}) ||
		!slices.Equal(micro.SupportedRootDeviceTypes, []types.RootDeviceType{"ebs"}) ||
		!slices.Equal(micro.SupportedVirtualizationTypes, []types.VirtualizationType{"hvm"}) ||
		!slices.Equal(micro.SupportedBootModes, []types.BootModeType{"legacy-bios"}):
		t.Errorf("t2.micro lists: %+v", micro)
	case !slices.Equal(micro.ProcessorInfo.SupportedArchitectures, []types.ArchitectureType{"i386", "x86_64"}) ||
		*micro.ProcessorInfo.SustainedClockSpeedInGhz != 2.5:
		t.Errorf("t2.micro processor: %+v", *micro.ProcessorInfo)
	case *micro.InstanceStorageSupported || micro.EbsInfo.EbsOptimizedSupport != types.EbsOptimizedSupportUnsupported:
		t.Errorf("t2.micro storage: %+v", *micro.EbsInfo)
	case *micro.NetworkInfo.NetworkPerformance != "Low to Moderate" || *micro.NetworkInfo.MaximumNetworkInterfaces != 2 ||
		*micro.NetworkInfo.Ipv4AddressesPerInterface != 2:
		t.Errorf("t2.micro network: %+v", *micro.NetworkInfo)
	case !slices.Equal(micro.PlacementGroupInfo.SupportedStrategies, []types.PlacementGroupStrategy{"partition", "spread"}) ||
		!*micro.HibernationSupported:
		t.Errorf("t2.micro placement %v, hibernation %v", micro.PlacementGroupInfo.SupportedStrategies, *micro.HibernationSupported)
	}

	c5 := byName["c5.2xlarge"]
	switch {
	case c5.Hypervisor != types.InstanceTypeHypervisorNitro || *c5.BurstablePerformanceSupported || *c5.FreeTierEligible:
		t.Errorf("c5.2xlarge flags: %+v", c5)
	case *c5.VCpuInfo.DefaultCores != 4 || *c5.VCpuInfo.DefaultThreadsPerCore != 2:
		t.Errorf("c5.2xlarge vCPU: %+v", *c5.VCpuInfo)
	case c5.EbsInfo.EbsOptimizedSupport != types.EbsOptimizedSupportDefault ||
		*c5.NetworkInfo.NetworkPerformance != "Up to 10 Gigabit" || *c5.NetworkInfo.MaximumNetworkInterfaces != 4 ||
		*c5.NetworkInfo.Ipv4AddressesPerInterface != 15 || *c5.ProcessorInfo.SustainedClockSpeedInGhz != 3.4:
		t.Errorf("c5.2xlarge: ebs %+v, network %+v", *c5.EbsInfo, *c5.NetworkInfo)
	case !slices.Equal(c5.SupportedBootModes, []types.BootModeType{"legacy-bios", "uefi"}) ||
		!slices.Equal(c5.PlacementGroupInfo.SupportedStrategies, []types.PlacementGroupStrategy{"cluster", "partition", "spread"}):
		t.Errorf("c5.2xlarge boot %v, placement %v", c5.SupportedBootModes, c5.PlacementGroupInfo.SupportedStrategies)
	}
}

func TestDescribeInstanceTypesFilters(t *testing.T) {
	s := servertest.Start(t, "")
	c := typesClient(t, s)
	tests := []struct {
		filters []types.Filter
		want    []string
	}{
		{[]types.Filter{ec2Filter("instance-type", "c6i.*", "r5.x*")}, []string{"c6i.2xlarge", "c6i.large", "c6i.xlarge", "r5.xlarge"}},
		{[]types.Filter{ec2Filter("free-tier-eligible", "true")}, []string{"t2.micro", "t3.micro"}},
		{[]types.Filter{ec2Filter("vcpu-info.default-vcpus", "8"), ec2Filter("memory-info.size-in-mib", "16384")},
			[]string{"c5.2xlarge", "c6i.2xlarge"}},
		{[]types.Filter{ec2Filter("burstable-performance-supported", "false"), ec2Filter("memory-info.size-in-mib", "4096")},
			[]string{"c5.large", "c6i.large"}},
		{[]types.Filter{ec2Filter("processor-info.supported-architecture", "i386")},
			[]string{"t2.medium", "t2.micro", "t2.nano", "t2.small"}},
		{[]types.Filter{ec2Filter("hypervisor", "xen"), ec2Filter("instance-type", "*large")}, []string{"t2.2xlarge", "t2.large", "t2.xlarge"}},
		{[]types.Filter{ec2Filter("current-generation", "true"), ec2Filter("instance-type", "*.2xlarge")},
			[]string{"c6i.2xlarge", "t2.2xlarge", "t3.2xlarge", "t3a.2xlarge"}},
		{[]types.Filter{ec2Filter("current-generation", "false"), ec2Filter("vcpu-info.default-vcpus", "2")},
			[]string{"c5.large", "m5.large", "m6i.large", "r5.large"}},
		{[]types.Filter{ec2Filter("processor-info.supported-architecture", "arm64")}, nil},
	}
	for _, tc := range tests {
		got, _ := allInstanceTypes(t, c, &ec2.DescribeInstanceTypesInput{Filters: tc.filters})
		if names := instanceTypeNames(got); !slices.Equal(names, tc.want) {
			t.Errorf("filters %v: got %v, want %v", filterString(tc.filters), names, tc.want)
		}
	}
	_, err := c.DescribeInstanceTypes(context.Background(), &ec2.DescribeInstanceTypesInput{
		Filters: []types.Filter{ec2Filter("colour", "blue")}})
	wantAPIError(t, err, "InvalidParameterValue", 400)
}

func filterString(fs []types.Filter) []string {
	var out []string
	for _, f := range fs {
		out = append(out, *f.Name+"="+strings.Join(f.Values, ","))
	}
	return out
}

func TestDescribeInstanceTypesErrors(t *testing.T) {
	s := servertest.Start(t, "")
	c := typesClient(t, s)
	ctx := context.Background()
	_, err := c.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []types.InstanceType{"t2.micro", "t2.mega"}})
	wantAPIError(t, err, "InvalidInstanceType", 400)
	var ae smithy.APIError
	if errors.As(err, &ae); ae.ErrorMessage() != "The following supplied instance types do not exist: [t2.mega]" {
		t.Errorf("message %q", ae.ErrorMessage())
	}
	_, err = c.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{DryRun: aws.Bool(true)})
	wantAPIError(t, err, "DryRunOperation", 412)
	_, err = c.DescribeInstanceTypeOfferings(ctx, &ec2.DescribeInstanceTypeOfferingsInput{DryRun: aws.Bool(true)})
	wantAPIError(t, err, "DryRunOperation", 412)
}

func TestDescribeInstanceTypeOfferings(t *testing.T) {
	s := servertest.Start(t, "")
	c := typesClient(t, s)
	ctx := context.Background()
	list := func(in *ec2.DescribeInstanceTypeOfferingsInput) (offers []types.InstanceTypeOffering, pages int) {
		t.Helper()
		p := ec2.NewDescribeInstanceTypeOfferingsPaginator(c, in)
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			offers = append(offers, out.InstanceTypeOfferings...)
			pages++
		}
		return offers, pages
	}
	region, _ := list(&ec2.DescribeInstanceTypeOfferingsInput{})
	if len(region) != 36 || region[0].LocationType != types.LocationTypeRegion || *region[0].Location != "us-east-1" {
		t.Fatalf("region offerings: %d, first %+v", len(region), region[0])
	}
	zones, pages := list(&ec2.DescribeInstanceTypeOfferingsInput{LocationType: types.LocationTypeAvailabilityZone,
		MaxResults: aws.Int32(10)})
	if len(zones) != 3*36 || pages != 11 {
		t.Fatalf("%d zone offerings in %d pages", len(zones), pages)
	}
	got, _ := list(&ec2.DescribeInstanceTypeOfferingsInput{LocationType: types.LocationTypeAvailabilityZone,
		Filters: []types.Filter{ec2Filter("location", "us-east-1b"), ec2Filter("instance-type", "t3.micro", "m5.*")}})
	if len(got) != 4 || *got[0].Location != "us-east-1b" || got[0].LocationType != types.LocationTypeAvailabilityZone {
		t.Fatalf("filtered: %+v", got)
	}
	ids, _ := list(&ec2.DescribeInstanceTypeOfferingsInput{LocationType: types.LocationTypeAvailabilityZoneId,
		Filters: []types.Filter{ec2Filter("instance-type", "t2.micro")}})
	var locs []string
	for _, o := range ids {
		locs = append(locs, *o.Location)
	}
	if !slices.Equal(locs, []string{"use1-az1", "use1-az2", "use1-az3"}) {
		t.Fatalf("zone id offerings: %v", locs)
	}
	_, err := c.DescribeInstanceTypeOfferings(ctx, &ec2.DescribeInstanceTypeOfferingsInput{LocationType: "galaxy"})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	_, err = c.DescribeInstanceTypeOfferings(ctx, &ec2.DescribeInstanceTypeOfferingsInput{
		Filters: []types.Filter{ec2Filter("vcpu-info.default-vcpus", "2")}})
	wantAPIError(t, err, "InvalidParameterValue", 400)
}

func TestDescribeRegions(t *testing.T) {
	s := servertest.Start(t, "")
	c := typesClient(t, s)
	ctx := context.Background()
	out, err := c.DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Regions) != 1 || *out.Regions[0].RegionName != "us-east-1" ||
		*out.Regions[0].Endpoint != "ec2.us-east-1.amazonaws.com" || *out.Regions[0].OptInStatus != "opt-in-not-required" {
		t.Fatalf("regions: %+v", out.Regions)
	}
	all, err := c.DescribeRegions(ctx, &ec2.DescribeRegionsInput{AllRegions: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	for _, r := range all.Regions {
		status[*r.RegionName] = *r.OptInStatus
	}
	if len(all.Regions) < 30 || status["eu-west-1"] != "opt-in-not-required" || status["af-south-1"] != "not-opted-in" ||
		status["us-east-1"] != "opt-in-not-required" {
		t.Fatalf("all regions: %v", status)
	}
	optIn, err := c.DescribeRegions(ctx, &ec2.DescribeRegionsInput{AllRegions: aws.Bool(true),
		Filters: []types.Filter{ec2Filter("opt-in-status", "opt-in-not-required"), ec2Filter("region-name", "us-*")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(optIn.Regions) != 4 {
		t.Fatalf("default US regions: %+v", optIn.Regions)
	}
	named, err := c.DescribeRegions(ctx, &ec2.DescribeRegionsInput{RegionNames: []string{"eu-west-1", "ap-east-1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(named.Regions) != 2 || *named.Regions[0].RegionName != "ap-east-1" || *named.Regions[1].Endpoint != "ec2.eu-west-1.amazonaws.com" {
		t.Fatalf("named regions: %+v", named.Regions)
	}
	_, err = c.DescribeRegions(ctx, &ec2.DescribeRegionsInput{RegionNames: []string{"us-north-9"}})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	_, err = c.DescribeRegions(ctx, &ec2.DescribeRegionsInput{Filters: []types.Filter{ec2Filter("zone-name", "x")}})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	_, err = c.DescribeRegions(ctx, &ec2.DescribeRegionsInput{DryRun: aws.Bool(true)})
	wantAPIError(t, err, "DryRunOperation", 412)
}

func TestDescribeAvailabilityZones(t *testing.T) {
	s := servertest.Start(t, "")
	c := typesClient(t, s)
	ctx := context.Background()
	out, err := c.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.AvailabilityZones) != 3 {
		t.Fatalf("zones: %+v", out.AvailabilityZones)
	}
	for i, z := range out.AvailabilityZones {
		letter, id := string(rune('a'+i)), "use1-az"+string(rune('1'+i))
		if *z.ZoneName != "us-east-1"+letter || *z.ZoneId != id || z.State != types.AvailabilityZoneStateAvailable ||
			*z.RegionName != "us-east-1" || *z.ZoneType != "availability-zone" || *z.GroupName != "us-east-1" ||
			*z.NetworkBorderGroup != "us-east-1" || z.OptInStatus != types.AvailabilityZoneOptInStatusOptInNotRequired ||
			z.Messages == nil || len(z.Messages) != 0 {
			t.Errorf("zone %d: %+v", i, z)
		}
	}
	names := func(in *ec2.DescribeAvailabilityZonesInput) []string {
		t.Helper()
		out, err := c.DescribeAvailabilityZones(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		var n []string
		for _, z := range out.AvailabilityZones {
			n = append(n, *z.ZoneName)
		}
		return n
	}
	tests := []struct {
		in   *ec2.DescribeAvailabilityZonesInput
		want []string
	}{
		{&ec2.DescribeAvailabilityZonesInput{ZoneNames: []string{"us-east-1c", "us-east-1a"}}, []string{"us-east-1a", "us-east-1c"}},
		{&ec2.DescribeAvailabilityZonesInput{ZoneIds: []string{"use1-az2"}}, []string{"us-east-1b"}},
		{&ec2.DescribeAvailabilityZonesInput{Filters: []types.Filter{ec2Filter("zone-name", "*b", "*c")}}, []string{"us-east-1b", "us-east-1c"}},
		{&ec2.DescribeAvailabilityZonesInput{Filters: []types.Filter{ec2Filter("state", "available"),
			ec2Filter("region-name", "us-east-1")}}, []string{"us-east-1a", "us-east-1b", "us-east-1c"}},
		{&ec2.DescribeAvailabilityZonesInput{Filters: []types.Filter{ec2Filter("state", "impaired")}}, nil},
		{&ec2.DescribeAvailabilityZonesInput{Filters: []types.Filter{ec2Filter("region-name", "eu-west-1")}}, nil},
		{&ec2.DescribeAvailabilityZonesInput{AllAvailabilityZones: aws.Bool(true)}, []string{"us-east-1a", "us-east-1b", "us-east-1c"}},
	}
	for i, tc := range tests {
		if got := names(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("case %d: got %v, want %v", i, got, tc.want)
		}
	}
	_, err = c.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{ZoneNames: []string{"us-east-1z"}})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	_, err = c.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{Filters: []types.Filter{ec2Filter("colour", "x")}})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	_, err = c.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{DryRun: aws.Bool(true)})
	wantAPIError(t, err, "DryRunOperation", 412)
}
