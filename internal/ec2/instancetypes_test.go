package ec2

import (
	"strings"
	"testing"
)

func TestInstanceTypeTableCoversTheFamilies(t *testing.T) {
	want := map[string]bool{}
	for _, fam := range []string{"t2", "t3", "t3a"} {
		for _, size := range []string{"nano", "micro", "small", "medium", "large", "xlarge", "2xlarge"} {
			want[fam+"."+size] = true
		}
	}
	for _, fam := range []string{"m5", "m6i", "c5", "c6i", "r5"} {
		for _, size := range []string{"large", "xlarge", "2xlarge"} {
			want[fam+"."+size] = true
		}
	}
	seen := map[string]bool{}
	for _, it := range instanceTypes {
		if seen[it.Name] {
			t.Errorf("%s is in the table twice", it.Name)
		}
		seen[it.Name] = true
		if !want[it.Name] {
			t.Errorf("%s is in the table but not expected", it.Name)
		}
	}
	for name := range want {
		it, ok := lookupInstanceType(name)
		if !ok {
			t.Errorf("lookupInstanceType(%q) found nothing", name)
			continue
		}
		if it.Name != name {
			t.Errorf("lookupInstanceType(%q) = %s", name, it.Name)
		}
	}
}

func TestInstanceTypeTableIsConsistent(t *testing.T) {
	for _, it := range instanceTypes {
		family, _, _ := strings.Cut(it.Name, ".")
		burstable := strings.HasPrefix(family, "t")
		switch {
		case it.VCPUs <= 0 || it.MemoryMiB <= 0:
			t.Errorf("%s: %d vCPUs, %d MiB", it.Name, it.VCPUs, it.MemoryMiB)
		case it.Cores*it.ThreadsPerCore != it.VCPUs:
			t.Errorf("%s: %d cores x %d threads != %d vCPUs", it.Name, it.Cores, it.ThreadsPerCore, it.VCPUs)
		case it.Burstable != burstable:
			t.Errorf("%s: burstable %v", it.Name, it.Burstable)
		case (it.Hypervisor == "xen") != (family == "t2") || it.Hypervisor != "xen" && it.Hypervisor != "nitro":
			t.Errorf("%s: hypervisor %q", it.Name, it.Hypervisor)
		case it.FreeTierEligible != (it.Name == "t2.micro" || it.Name == "t3.micro"):
			t.Errorf("%s: free tier %v", it.Name, it.FreeTierEligible)
		case it.MaxNetworkInterfaces < 2 || it.IPv4PerInterface < 2 || it.NetworkPerformance == "":
			t.Errorf("%s: network %d ENIs x %d IPv4, %q", it.Name, it.MaxNetworkInterfaces, it.IPv4PerInterface,
				it.NetworkPerformance)
		case it.ClockGHz < 2 || it.ClockGHz > 4:
			t.Errorf("%s: clock %v GHz", it.Name, it.ClockGHz)
		case len(it.Architectures) == 0 || it.Architectures[len(it.Architectures)-1] != "x86_64":
			t.Errorf("%s: architectures %v", it.Name, it.Architectures)
		}
	}
}

func TestInstanceTypeSizes(t *testing.T) {
	tests := []struct {
		name         string
		vcpus, cores int
		mib          int64
	}{
		{"t2.nano", 1, 1, 512},
		{"t2.micro", 1, 1, 1024},
		{"t2.2xlarge", 8, 8, 32768},
		{"t3.nano", 2, 1, 512},
		{"t3.micro", 2, 1, 1024},
		{"t3a.small", 2, 1, 2048},
		{"t3.2xlarge", 8, 4, 32768},
		{"m5.large", 2, 1, 8192},
		{"m6i.xlarge", 4, 2, 16384},
		{"c5.2xlarge", 8, 4, 16384},
		{"c6i.large", 2, 1, 4096},
		{"r5.xlarge", 4, 2, 32768},
		{"r5.2xlarge", 8, 4, 65536},
	}
	for _, tc := range tests {
		it, ok := lookupInstanceType(tc.name)
		if !ok {
			t.Fatalf("%s not found", tc.name)
		}
		if it.VCPUs != tc.vcpus || it.Cores != tc.cores || it.MemoryMiB != tc.mib {
			t.Errorf("%s: %d vCPUs, %d cores, %d MiB; want %d, %d, %d", tc.name, it.VCPUs, it.Cores, it.MemoryMiB,
				tc.vcpus, tc.cores, tc.mib)
		}
	}
	for _, name := range []string{"", "t2", "t2.micro ", "T2.MICRO", "m5.4xlarge", "m5.nano", "t4g.micro"} {
		if _, ok := lookupInstanceType(name); ok {
			t.Errorf("lookupInstanceType(%q) found a type", name)
		}
	}
}

func TestInstanceTypeFieldsForFilters(t *testing.T) {
	t2micro, _ := lookupInstanceType("t2.micro")
	c6i, _ := lookupInstanceType("c6i.2xlarge")
	tests := []struct {
		it     instanceType
		filter string
		want   string
	}{
		{t2micro, "instance-type", "t2.micro"},
		{t2micro, "current-generation", "true"},
		{t2micro, "free-tier-eligible", "true"},
		{t2micro, "vcpu-info.default-vcpus", "1"},
		{t2micro, "memory-info.size-in-mib", "1024"},
		{t2micro, "burstable-performance-supported", "true"},
		{t2micro, "processor-info.supported-architecture", "i386 x86_64"},
		{t2micro, "hypervisor", "xen"},
		{t2micro, "ebs-info.ebs-optimized-support", "unsupported"},
		{t2micro, "processor-info.sustained-clock-speed-in-ghz", "2.5"},
		{c6i, "vcpu-info.default-cores", "4"},
		{c6i, "vcpu-info.default-threads-per-core", "2"},
		{c6i, "hypervisor", "nitro"},
		{c6i, "supported-boot-mode", "legacy-bios uefi"},
		{c6i, "network-info.network-performance", "Up to 12.5 Gigabit"},
		{c6i, "network-info.encryption-in-transit-supported", "true"},
		{c6i, "free-tier-eligible", "false"},
	}
	for _, tc := range tests {
		got, ok := tc.it.field(tc.filter)
		if !ok || strings.Join(got, " ") != tc.want {
			t.Errorf("%s %s = %v (%v), want %q", tc.it.Name, tc.filter, got, ok, tc.want)
		}
	}
	if _, ok := t2micro.field("no-such-filter"); ok {
		t.Error("an unknown filter name is accepted")
	}
}

func TestInstanceTypePageTokens(t *testing.T) {
	items := []int{0, 1, 2, 3, 4, 5, 6}
	var got []int
	start, pages := 0, 0
	for {
		pageItems, next := page(items, start, 3)
		got = append(got, pageItems...)
		pages++
		if next == "" {
			break
		}
		var err error
		if start, err = pageStart(next, len(items)); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != len(items) || pages != 3 {
		t.Fatalf("got %v in %d pages", got, pages)
	}
	for _, bad := range []string{"x", "cGFnZTo5OQ", "cGFnZTow", "MTI"} { // junk, page:99, page:0, "12"
		if _, err := pageStart(bad, len(items)); err == nil {
			t.Errorf("token %q accepted", bad)
		}
	}
}

func TestZoneIDPrefix(t *testing.T) {
	tests := map[string]string{
		"us-east-1":      "use1",
		"us-west-2":      "usw2",
		"eu-central-1":   "euc1",
		"ap-northeast-1": "apne1",
		"ap-southeast-2": "apse2",
		"sa-east-1":      "sae1",
		"us-gov-west-1":  "usgw1",
		"local":          "local",
		"my-lab-1":       "mylab1",
	}
	for region, want := range tests {
		if got := zoneIDPrefix(region); got != want {
			t.Errorf("zoneIDPrefix(%q) = %q, want %q", region, got, want)
		}
	}
}
