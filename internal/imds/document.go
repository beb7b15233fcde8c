package imds

import (
	"bytes"
	"encoding/json"
)

// identityDocument is dynamic/instance-identity/document in AWS's exact shape: the fields in
// this order, two-space indent, " : " between name and value (AWS writes it with Jackson's pretty
// printer), no trailing newline, served as text/plain. kernelId is null when there is no kernel;
// billingProducts, devpayProductCodes, marketplaceProductCodes and ramdiskId are always null in
// nubis. pendingTime is the launch time in UTC to the second.
//
//	{
//	  "accountId" : "123456789012",
//	  "architecture" : "x86_64",
//	  ...
//	  "version" : "2017-09-30"
//	}
func identityDocument(md Metadata) []byte {
	arch := md.Architecture
	if arch == "" {
		arch = "x86_64"
	}
	fields := []struct {
		name  string
		value *string // nil is JSON null
	}{
		{"accountId", &md.AccountID},
		{"architecture", &arch},
		{"availabilityZone", &md.AvailabilityZone},
		{"billingProducts", nil},
		{"devpayProductCodes", nil},
		{"marketplaceProductCodes", nil},
		{"imageId", &md.ImageID},
		{"instanceId", &md.InstanceID},
		{"instanceType", &md.InstanceType},
		{"kernelId", nullIfEmpty(md.KernelID)},
		{"pendingTime", ptr(md.LaunchTime.UTC().Format("2006-01-02T15:04:05Z"))},
		{"privateIp", &md.LocalIPv4},
		{"ramdiskId", nil},
		{"region", &md.Region},
		{"version", ptr("2017-09-30")},
	}
	var b bytes.Buffer
	b.WriteString("{\n")
	for i, f := range fields {
		b.WriteString("  ")
		writeJSONString(&b, f.name)
		b.WriteString(" : ")
		if f.value == nil {
			b.WriteString("null")
		} else {
			writeJSONString(&b, *f.value)
		}
		if i < len(fields)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteByte('}')
	return b.Bytes()
}

// writeJSONString writes s as a JSON string, without the HTML escaping of encoding/json's default.
func writeJSONString(b *bytes.Buffer, s string) {
	e := json.NewEncoder(b)
	e.SetEscapeHTML(false)
	// Encoding a string cannot fail; Encode ends it with a newline, dropped here.
	e.Encode(s)
	b.Truncate(b.Len() - 1)
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func ptr(s string) *string { return &s }
