package ec2

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/nubis/nubis/internal/awsproto"
)

// instanceType is one EC2 instance type nubis offers, with the values AWS's DescribeInstanceTypes
// reports for it. RunInstances sizes a virtual machine from VCPUs and MemoryMiB.
type instanceType struct {
	Name                 string
	VCPUs                int
	Cores                int
	ThreadsPerCore       int
	MemoryMiB            int64
	CurrentGeneration    bool
	FreeTierEligible     bool
	Burstable            bool
	Hibernation          bool
	AutoRecovery         bool
	DedicatedHosts       bool
	Hypervisor           string   // "nitro" or "xen"
	Architectures        []string // "i386", "x86_64"
	ClockGHz             float64  // sustained all-core clock speed
	UsageClasses         []string // "on-demand", "spot"
	BootModes            []string // "legacy-bios", "uefi"
	PlacementStrategies  []string // "cluster", "partition", "spread"
	EBSOptimizedSupport  string   // "unsupported" or "default"
	EBSNVMeSupport       string   // "unsupported" or "required"
	NetworkPerformance   string
	MaxNetworkInterfaces int
	IPv4PerInterface     int
	ENASupport           string // "unsupported" or "required"
	EncryptionInTransit  bool
}

// instanceFamily holds what the sizes of one family share.
type instanceFamily struct {
	current, burstable, dedicatedHosts, encryptionInTransit bool
	hypervisor, network                                     string
	clockGHz                                                float64
}

var (
	x86Only    = []string{"x86_64"}
	x86AndI386 = []string{"i386", "x86_64"}
)

// size returns the family's instance type of that name. Every type nubis offers (up to 2xlarge)
// supports hibernation and auto recovery, as AWS reports; Xen types (T2) have neither ENA, NVMe nor
// EBS optimization.
func (f instanceFamily) size(name string, vcpus, cores int, mib int64, enis, ipv4 int) instanceType {
	it := instanceType{Name: name, VCPUs: vcpus, Cores: cores, ThreadsPerCore: vcpus / cores, MemoryMiB: mib,
		CurrentGeneration: f.current, Burstable: f.burstable, Hibernation: true, AutoRecovery: true,
		DedicatedHosts: f.dedicatedHosts, Hypervisor: f.hypervisor, Architectures: x86Only, ClockGHz: f.clockGHz,
		UsageClasses: []string{"on-demand", "spot"}, NetworkPerformance: f.network,
		MaxNetworkInterfaces: enis, IPv4PerInterface: ipv4, EncryptionInTransit: f.encryptionInTransit,
		BootModes: []string{"legacy-bios", "uefi"}, EBSOptimizedSupport: "default", EBSNVMeSupport: "required",
		ENASupport: "required", PlacementStrategies: []string{"cluster", "partition", "spread"}}
	if f.hypervisor == "xen" {
		it.BootModes, it.EBSOptimizedSupport, it.EBSNVMeSupport, it.ENASupport =
			[]string{"legacy-bios"}, "unsupported", "unsupported", "unsupported"
	}
	if f.burstable {
		it.PlacementStrategies = []string{"partition", "spread"}
	}
	return it
}

func (it instanceType) clock(ghz float64) instanceType       { it.ClockGHz = ghz; return it }
func (it instanceType) archs(a []string) instanceType        { it.Architectures = a; return it }
func (it instanceType) network(perf string) instanceType     { it.NetworkPerformance = perf; return it }
func (it instanceType) usage(classes ...string) instanceType { it.UsageClasses = classes; return it }
func (it instanceType) freeTier() instanceType               { it.FreeTierEligible = true; return it }

// The families, with the values AWS reports for them. AWS reports C5, M5, M6i and R5 as previous
// generation now, and T2, T3, T3a and C6i as current.
var (
	famT2  = instanceFamily{current: true, burstable: true, hypervisor: "xen", network: "Low to Moderate", clockGHz: 2.3}
	famT3  = instanceFamily{current: true, burstable: true, dedicatedHosts: true, hypervisor: "nitro", network: "Up to 5 Gigabit", clockGHz: 2.5}
	famT3a = instanceFamily{current: true, burstable: true, hypervisor: "nitro", network: "Up to 5 Gigabit", clockGHz: 2.2}
	famM5  = instanceFamily{dedicatedHosts: true, hypervisor: "nitro", network: "Up to 10 Gigabit", clockGHz: 3.1}
	famM6i = instanceFamily{dedicatedHosts: true, encryptionInTransit: true, hypervisor: "nitro", network: "Up to 12.5 Gigabit", clockGHz: 3.5}
	famC5  = instanceFamily{dedicatedHosts: true, hypervisor: "nitro", network: "Up to 10 Gigabit", clockGHz: 3.4}
	famC6i = instanceFamily{current: true, dedicatedHosts: true, encryptionInTransit: true, hypervisor: "nitro", network: "Up to 12.5 Gigabit", clockGHz: 3.5}
	famR5  = instanceFamily{dedicatedHosts: true, hypervisor: "nitro", network: "Up to 10 Gigabit", clockGHz: 3.1}
)

// instanceTypes is every instance type nubis offers, in the order DescribeInstanceTypes lists them.
// Columns: name, vCPUs, cores, memory (MiB), network interfaces, IPv4 addresses per interface. The
// values are those of AWS's own DescribeInstanceTypes output. T2 nano to medium also run 32-bit
// AMIs, and t2.nano is not sold as Spot. Free-tier eligibility is that of the classic 12-month free
// tier (t2.micro, and t3.micro where T2 is not offered).
var instanceTypes = []instanceType{
	famT2.size("t2.nano", 1, 1, 512, 2, 2).clock(2.4).archs(x86AndI386).usage("on-demand"),
	famT2.size("t2.micro", 1, 1, 1024, 2, 2).clock(2.5).archs(x86AndI386).freeTier(),
	famT2.size("t2.small", 1, 1, 2048, 3, 4).clock(2.5).archs(x86AndI386),
	famT2.size("t2.medium", 2, 2, 4096, 3, 6).archs(x86AndI386),
	famT2.size("t2.large", 2, 2, 8192, 3, 12),
	famT2.size("t2.xlarge", 4, 4, 16384, 3, 15).network("Moderate"),
	famT2.size("t2.2xlarge", 8, 8, 32768, 3, 15).network("Moderate"),

	famT3.size("t3.nano", 2, 1, 512, 2, 2),
	famT3.size("t3.micro", 2, 1, 1024, 2, 2).freeTier(),
	famT3.size("t3.small", 2, 1, 2048, 3, 4),
	famT3.size("t3.medium", 2, 1, 4096, 3, 6),
	famT3.size("t3.large", 2, 1, 8192, 3, 12),
	famT3.size("t3.xlarge", 4, 2, 16384, 4, 15),
	famT3.size("t3.2xlarge", 8, 4, 32768, 4, 15),

	famT3a.size("t3a.nano", 2, 1, 512, 2, 2),
	famT3a.size("t3a.micro", 2, 1, 1024, 2, 2),
	famT3a.size("t3a.small", 2, 1, 2048, 2, 4),
	famT3a.size("t3a.medium", 2, 1, 4096, 3, 6),
	famT3a.size("t3a.large", 2, 1, 8192, 3, 12),
	famT3a.size("t3a.xlarge", 4, 2, 16384, 4, 15),
	famT3a.size("t3a.2xlarge", 8, 4, 32768, 4, 15),

	famM5.size("m5.large", 2, 1, 8192, 3, 10),
	famM5.size("m5.xlarge", 4, 2, 16384, 4, 15),
	famM5.size("m5.2xlarge", 8, 4, 32768, 4, 15),

	famM6i.size("m6i.large", 2, 1, 8192, 3, 10),
	famM6i.size("m6i.xlarge", 4, 2, 16384, 4, 15),
	famM6i.size("m6i.2xlarge", 8, 4, 32768, 4, 15),

	famC5.size("c5.large", 2, 1, 4096, 3, 10),
	famC5.size("c5.xlarge", 4, 2, 8192, 4, 15),
	famC5.size("c5.2xlarge", 8, 4, 16384, 4, 15),

	famC6i.size("c6i.large", 2, 1, 4096, 3, 10),
	famC6i.size("c6i.xlarge", 4, 2, 8192, 4, 15),
	famC6i.size("c6i.2xlarge", 8, 4, 16384, 4, 15),

	famR5.size("r5.large", 2, 1, 16384, 3, 10),
	famR5.size("r5.xlarge", 4, 2, 32768, 4, 15),
	famR5.size("r5.2xlarge", 8, 4, 65536, 4, 15),
}

// lookupInstanceType returns the instance type called name; ok is false when nubis does not offer it.
func lookupInstanceType(name string) (instanceType, bool) {
	for _, it := range instanceTypes {
		if it.Name == name {
			return it, true
		}
	}
	return instanceType{}, false
}

type describeInstanceTypesInput struct {
	DryRun        bool     `query:"DryRun"`
	InstanceTypes []string `query:"InstanceType"`
	Filters       []Filter `query:"Filter"`
	MaxResults    *int     `query:"MaxResults"`
	NextToken     string   `query:"NextToken"`
}

type instanceTypeInfo struct {
	InstanceType                  string                `xml:"instanceType"`
	CurrentGeneration             bool                  `xml:"currentGeneration"`
	FreeTierEligible              bool                  `xml:"freeTierEligible"`
	SupportedUsageClasses         awsproto.List[string] `xml:"supportedUsageClasses"`
	SupportedRootDeviceTypes      awsproto.List[string] `xml:"supportedRootDeviceTypes"`
	SupportedVirtualizationTypes  awsproto.List[string] `xml:"supportedVirtualizationTypes"`
	BareMetal                     bool                  `xml:"bareMetal"`
	Hypervisor                    string                `xml:"hypervisor"`
	ProcessorInfo                 processorInfo         `xml:"processorInfo"`
	VCPUInfo                      vcpuInfo              `xml:"vCpuInfo"`
	MemoryInfo                    memoryInfo            `xml:"memoryInfo"`
	InstanceStorageSupported      bool                  `xml:"instanceStorageSupported"`
	EBSInfo                       ebsInfo               `xml:"ebsInfo"`
	NetworkInfo                   networkInfo           `xml:"networkInfo"`
	PlacementGroupInfo            placementGroupInfo    `xml:"placementGroupInfo"`
	HibernationSupported          bool                  `xml:"hibernationSupported"`
	BurstablePerformanceSupported bool                  `xml:"burstablePerformanceSupported"`
	DedicatedHostsSupported       bool                  `xml:"dedicatedHostsSupported"`
	AutoRecoverySupported         bool                  `xml:"autoRecoverySupported"`
	SupportedBootModes            awsproto.List[string] `xml:"supportedBootModes"`
}

type processorInfo struct {
	SupportedArchitectures   awsproto.List[string] `xml:"supportedArchitectures"`
	SustainedClockSpeedInGhz float64               `xml:"sustainedClockSpeedInGhz"`
}

type vcpuInfo struct {
	DefaultVCPUs          int `xml:"defaultVCpus"`
	DefaultCores          int `xml:"defaultCores"`
	DefaultThreadsPerCore int `xml:"defaultThreadsPerCore"`
}

type memoryInfo struct {
	SizeInMiB int64 `xml:"sizeInMiB"`
}

type ebsInfo struct {
	EBSOptimizedSupport string `xml:"ebsOptimizedSupport"`
	EncryptionSupport   string `xml:"encryptionSupport"`
	NVMeSupport         string `xml:"nvmeSupport"`
}

type networkInfo struct {
	NetworkPerformance           string `xml:"networkPerformance"`
	MaximumNetworkInterfaces     int    `xml:"maximumNetworkInterfaces"`
	MaximumNetworkCards          int    `xml:"maximumNetworkCards"`
	DefaultNetworkCardIndex      int    `xml:"defaultNetworkCardIndex"`
	IPv4AddressesPerInterface    int    `xml:"ipv4AddressesPerInterface"`
	IPv6AddressesPerInterface    int    `xml:"ipv6AddressesPerInterface"`
	IPv6Supported                bool   `xml:"ipv6Supported"`
	ENASupport                   string `xml:"enaSupport"`
	EFASupported                 bool   `xml:"efaSupported"`
	EncryptionInTransitSupported bool   `xml:"encryptionInTransitSupported"`
}

type placementGroupInfo struct {
	SupportedStrategies awsproto.List[string] `xml:"supportedStrategies"`
}

type describeInstanceTypesOutput struct {
	InstanceTypes awsproto.List[instanceTypeInfo] `xml:"instanceTypeSet"`
	NextToken     string                          `xml:"nextToken,omitempty"`
}

// info renders it as DescribeInstanceTypes does.
func (it instanceType) info() instanceTypeInfo {
	return instanceTypeInfo{
		InstanceType: it.Name, CurrentGeneration: it.CurrentGeneration, FreeTierEligible: it.FreeTierEligible,
		SupportedUsageClasses:        it.UsageClasses,
		SupportedRootDeviceTypes:     awsproto.List[string]{"ebs"},
		SupportedVirtualizationTypes: awsproto.List[string]{"hvm"},
		Hypervisor:                   it.Hypervisor,
		ProcessorInfo:                processorInfo{SupportedArchitectures: it.Architectures, SustainedClockSpeedInGhz: it.ClockGHz},
		VCPUInfo:                     vcpuInfo{DefaultVCPUs: it.VCPUs, DefaultCores: it.Cores, DefaultThreadsPerCore: it.ThreadsPerCore},
		MemoryInfo:                   memoryInfo{SizeInMiB: it.MemoryMiB},
		EBSInfo:                      ebsInfo{EBSOptimizedSupport: it.EBSOptimizedSupport, EncryptionSupport: "supported", NVMeSupport: it.EBSNVMeSupport},
		NetworkInfo: networkInfo{NetworkPerformance: it.NetworkPerformance, MaximumNetworkInterfaces: it.MaxNetworkInterfaces,
			MaximumNetworkCards: 1, IPv4AddressesPerInterface: it.IPv4PerInterface, IPv6AddressesPerInterface: it.IPv4PerInterface,
			IPv6Supported: true, ENASupport: it.ENASupport, EncryptionInTransitSupported: it.EncryptionInTransit},
		PlacementGroupInfo:            placementGroupInfo{SupportedStrategies: it.PlacementStrategies},
		HibernationSupported:          it.Hibernation,
		BurstablePerformanceSupported: it.Burstable,
		DedicatedHostsSupported:       it.DedicatedHosts,
		AutoRecoverySupported:         it.AutoRecovery,
		SupportedBootModes:            it.BootModes,
	}
}

func boolString(b bool) string { return strconv.FormatBool(b) }

// field returns the values of it that the DescribeInstanceTypes filter name matches against; ok is
// false for a filter name EC2 does not have.
func (it instanceType) field(name string) (values []string, ok bool) {
	one := func(s string) []string { return []string{s} }
	switch name {
	case "instance-type":
		return one(it.Name), true
	case "current-generation":
		return one(boolString(it.CurrentGeneration)), true
	case "free-tier-eligible":
		return one(boolString(it.FreeTierEligible)), true
	case "burstable-performance-supported":
		return one(boolString(it.Burstable)), true
	case "bare-metal", "instance-storage-supported", "network-info.efa-supported":
		return one("false"), true
	case "hibernation-supported":
		return one(boolString(it.Hibernation)), true
	case "auto-recovery-supported":
		return one(boolString(it.AutoRecovery)), true
	case "network-info.ipv6-supported":
		return one("true"), true
	case "dedicated-hosts-supported":
		return one(boolString(it.DedicatedHosts)), true
	case "hypervisor":
		return one(it.Hypervisor), true
	case "memory-info.size-in-mib":
		return one(strconv.FormatInt(it.MemoryMiB, 10)), true
	case "vcpu-info.default-vcpus":
		return one(itoa(it.VCPUs)), true
	case "vcpu-info.default-cores":
		return one(itoa(it.Cores)), true
	case "vcpu-info.default-threads-per-core":
		return one(itoa(it.ThreadsPerCore)), true
	case "processor-info.supported-architecture":
		return it.Architectures, true
	case "processor-info.sustained-clock-speed-in-ghz":
		return one(strconv.FormatFloat(it.ClockGHz, 'f', -1, 64)), true
	case "supported-usage-class":
		return it.UsageClasses, true
	case "supported-root-device-type":
		return one("ebs"), true
	case "supported-virtualization-type":
		return one("hvm"), true
	case "supported-boot-mode":
		return it.BootModes, true
	case "ebs-info.ebs-optimized-support":
		return one(it.EBSOptimizedSupport), true
	case "ebs-info.encryption-support":
		return one("supported"), true
	case "ebs-info.nvme-support":
		return one(it.EBSNVMeSupport), true
	case "network-info.network-performance":
		return one(it.NetworkPerformance), true
	case "network-info.maximum-network-interfaces":
		return one(itoa(it.MaxNetworkInterfaces)), true
	case "network-info.maximum-network-cards":
		return one("1"), true
	case "network-info.ipv4-addresses-per-interface", "network-info.ipv6-addresses-per-interface":
		return one(itoa(it.IPv4PerInterface)), true
	case "network-info.ena-support":
		return one(it.ENASupport), true
	case "network-info.encryption-in-transit-supported":
		return one(boolString(it.EncryptionInTransit)), true
	}
	return nil, false
}

// maxResults checks MaxResults against EC2's range for the action and returns the page size.
func maxResults(n *int, lo, hi int) (int, error) {
	if n == nil {
		return hi, nil
	}
	if *n < lo || *n > hi {
		return 0, invalidValue("MaxResults", itoa(*n), "Valid values are from "+itoa(lo)+" to "+itoa(hi)+".")
	}
	return *n, nil
}

// pageStart returns the index a NextToken continues from (0 without a token). The token is the
// index of the next result, which is stable because the results come from fixed tables.
func pageStart(token string, total int) (int, error) {
	if token == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	n, convErr := strconv.Atoi(strings.TrimPrefix(string(b), "page:"))
	if err != nil || convErr != nil || !strings.HasPrefix(string(b), "page:") || n <= 0 || n > total {
		return 0, clientError("InvalidPaginationToken", "The specified pagination token is not valid or is expired.")
	}
	return n, nil
}

// page returns items[start:start+limit] and the token for what follows ("" at the end).
func page[T any](items []T, start, limit int) ([]T, string) {
	end := min(start+limit, len(items))
	if end == len(items) {
		return items[start:], ""
	}
	return items[start:end], base64.RawURLEncoding.EncodeToString([]byte("page:" + itoa(end)))
}

func (s *Service) describeInstanceTypes(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in describeInstanceTypesInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	limit, err := maxResults(in.MaxResults, 5, 100)
	if err != nil {
		return nil, err
	}
	err = checkFilters(in.Filters, func(n string) bool {
		_, ok := instanceTypes[0].field(n)
		return ok
	})
	if err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	var unknown []string
	for _, name := range in.InstanceTypes {
		if _, ok := lookupInstanceType(name); !ok {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		return nil, clientError("InvalidInstanceType", "The following supplied instance types do not exist: [%s]",
			strings.Join(unknown, ", "))
	}
	want := setOf(in.InstanceTypes)
	var matched []instanceTypeInfo
	for _, it := range instanceTypes {
		if len(want) > 0 && !want[it.Name] {
			continue
		}
		if !matchFilters(in.Filters, func(n string) []string { v, _ := it.field(n); return v }) {
			continue
		}
		matched = append(matched, it.info())
	}
	start, err := pageStart(in.NextToken, len(matched))
	if err != nil {
		return nil, err
	}
	var out describeInstanceTypesOutput
	out.InstanceTypes, out.NextToken = page(matched, start, limit)
	return out, nil
}

type describeInstanceTypeOfferingsInput struct {
	DryRun       bool     `query:"DryRun"`
	LocationType string   `query:"LocationType"`
	Filters      []Filter `query:"Filter"`
	MaxResults   *int     `query:"MaxResults"`
	NextToken    string   `query:"NextToken"`
}

type instanceTypeOffering struct {
	InstanceType string `xml:"instanceType"`
	LocationType string `xml:"locationType"`
	Location     string `xml:"location"`
}

type describeInstanceTypeOfferingsOutput struct {
	Offerings awsproto.List[instanceTypeOffering] `xml:"instanceTypeOfferingSet"`
	NextToken string                              `xml:"nextToken,omitempty"`
}

// describeInstanceTypeOfferings lists where each instance type is offered: every type in the
// region and in each of its Availability Zones.
func (s *Service) describeInstanceTypeOfferings(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in describeInstanceTypeOfferingsInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	var locations []string
	switch in.LocationType {
	case "", "region":
		in.LocationType, locations = "region", []string{s.region}
	case "availability-zone", "availability-zone-id":
		for _, z := range s.zones() {
			if in.LocationType == "availability-zone" {
				locations = append(locations, z.ZoneName)
			} else {
				locations = append(locations, z.ZoneID)
			}
		}
	default:
		return nil, invalidValue("LocationType", in.LocationType,
			"Valid values are: region, availability-zone, availability-zone-id.")
	}
	limit, err := maxResults(in.MaxResults, 5, 1000)
	if err != nil {
		return nil, err
	}
	err = checkFilters(in.Filters, func(n string) bool { return n == "location" || n == "instance-type" })
	if err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	var matched []instanceTypeOffering
	for _, loc := range locations {
		for _, it := range instanceTypes {
			o := instanceTypeOffering{InstanceType: it.Name, LocationType: in.LocationType, Location: loc}
			ok := matchFilters(in.Filters, func(n string) []string {
				if n == "location" {
					return []string{o.Location}
				}
				return []string{o.InstanceType}
			})
			if ok {
				matched = append(matched, o)
			}
		}
	}
	start, err := pageStart(in.NextToken, len(matched))
	if err != nil {
		return nil, err
	}
	var out describeInstanceTypeOfferingsOutput
	out.Offerings, out.NextToken = page(matched, start, limit)
	return out, nil
}
