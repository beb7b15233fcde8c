package imds

import (
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const macDir = "/latest/meta-data/network/interfaces/macs/0a:1b:2c:3d:4e:5f/"

// TestTree reads many paths over IMDSv1 and checks status, content type and body exactly.
func TestTree(t *testing.T) {
	h, _, _ := newTest(t, fixture(), Options{})
	metaData := strings.Join([]string{
		"ami-id", "ami-launch-index", "ami-manifest-path", "block-device-mapping/", "events/",
		"hostname", "instance-action", "instance-id", "instance-life-cycle", "instance-type",
		"local-hostname", "local-ipv4", "mac", "metrics/", "network/", "placement/", "profile",
		"public-hostname", "public-ipv4", "public-keys/", "reservation-id", "security-groups",
		"services/", "system",
	}, "\n")
	macListing := strings.Join([]string{
		"device-number", "interface-id", "ipv4-associations/", "local-hostname", "local-ipv4s",
		"mac", "network-card-index", "owner-id", "public-hostname", "public-ipv4s",
		"security-group-ids", "security-groups", "subnet-id", "subnet-ipv4-cidr-block", "vpc-id",
		"vpc-ipv4-cidr-block", "vpc-ipv4-cidr-blocks",
	}, "\n")
	root := strings.Join(append(append([]string{}, versions...), "latest"), "\n")

	tests := []struct {
		path  string
		code  int
		ctype string
		body  string
	}{
		{"/", 200, "text/plain", root},
		{"/latest", 200, "text/plain", "dynamic\nmeta-data\nuser-data"},
		{"/latest/", 200, "text/plain", "dynamic\nmeta-data\nuser-data"},
		{"/latest/meta-data", 200, "text/plain", metaData},
		{"/latest/meta-data/", 200, "text/plain", metaData},
		{"/latest/meta-data/ami-id", 200, "text/plain", "ami-0abcdef1234567890"},
		{"/latest/meta-data/ami-id/", 200, "text/plain", "ami-0abcdef1234567890"},
		{"/latest/meta-data/ami-launch-index", 200, "text/plain", "0"},
		{"/latest/meta-data/ami-manifest-path", 200, "text/plain", "(unknown)"},
		{"/latest/meta-data/block-device-mapping/", 200, "text/plain", "ami\nroot"},
		{"/latest/meta-data/block-device-mapping/ami", 200, "text/plain", "/dev/xvda"},
		{"/latest/meta-data/block-device-mapping/root", 200, "text/plain", "/dev/xvda"},
		{"/latest/meta-data/block-device-mapping/ebs1", 404, "text/html", ""},
		{"/latest/meta-data/events/", 200, "text/plain", "maintenance/"},
		{"/latest/meta-data/events/maintenance/", 200, "text/plain", "history\nscheduled"},
		{"/latest/meta-data/events/maintenance/scheduled", 200, "text/plain", "[]"},
		{"/latest/meta-data/hostname", 200, "text/plain", "ip-172-31-5-9.ec2.internal"},
		{"/latest/meta-data/instance-action", 200, "text/plain", "none"},
		{"/latest/meta-data/instance-id", 200, "text/plain", "i-0123456789abcdef0"},
		{"/latest/meta-data/instance-life-cycle", 200, "text/plain", "on-demand"},
		{"/latest/meta-data/instance-type", 200, "text/plain", "t3.micro"},
		{"/latest/meta-data/kernel-id", 404, "text/html", ""},
		{"/latest/meta-data/local-hostname", 200, "text/plain", "ip-172-31-5-9.ec2.internal"},
		{"/latest/meta-data/local-ipv4", 200, "text/plain", "172.31.5.9"},
		{"/latest/meta-data/mac", 200, "text/plain", "0a:1b:2c:3d:4e:5f"},
		{"/latest/meta-data/metrics/", 200, "text/plain", "vhostmd"},
		{"/latest/meta-data/metrics/vhostmd", 200, "text/plain", `<?xml version="1.0" encoding="UTF-8"?>`},
		{"/latest/meta-data/network", 200, "text/plain", "interfaces/"},
		{"/latest/meta-data/network/interfaces/", 200, "text/plain", "macs/"},
		{"/latest/meta-data/network/interfaces/macs/", 200, "text/plain", "0a:1b:2c:3d:4e:5f/"},
		{macDir, 200, "text/plain", macListing},
		{strings.TrimSuffix(macDir, "/"), 200, "text/plain", macListing},
		{macDir + "device-number", 200, "text/plain", "0"},
		{macDir + "interface-id", 200, "text/plain", "eni-4cd5671257316bc27"},
		{macDir + "ipv4-associations/", 200, "text/plain", "203.0.113.10"},
		{macDir + "ipv4-associations/203.0.113.10", 200, "text/plain", "172.31.5.9"},
		{macDir + "local-hostname", 200, "text/plain", "ip-172-31-5-9.ec2.internal"},
		{macDir + "local-ipv4s", 200, "text/plain", "172.31.5.9"},
		{macDir + "mac", 200, "text/plain", "0a:1b:2c:3d:4e:5f"},
		{macDir + "owner-id", 200, "text/plain", "123456789012"},
		{macDir + "public-hostname", 200, "text/plain", "ec2-203-0-113-10.compute-1.amazonaws.com"},
		{macDir + "public-ipv4s", 200, "text/plain", "203.0.113.10"},
		{macDir + "security-group-ids", 200, "text/plain", "sg-0123456789abcdef0\nsg-0fedcba9876543210"},
		{macDir + "security-groups", 200, "text/plain", "default\nweb"},
		{macDir + "subnet-id", 200, "text/plain", "subnet-0123456789abcdef0"},
		{macDir + "subnet-ipv4-cidr-block", 200, "text/plain", "172.31.0.0/20"},
		{macDir + "vpc-id", 200, "text/plain", "vpc-0123456789abcdef0"},
		{macDir + "vpc-ipv4-cidr-block", 200, "text/plain", "172.31.0.0/16"},
		{macDir + "vpc-ipv4-cidr-blocks", 200, "text/plain", "172.31.0.0/16"},
		{"/latest/meta-data/network/interfaces/macs/0a:00:00:00:00:00/", 404, "text/html", ""},
		{"/latest/meta-data/placement/", 200, "text/plain", "availability-zone\navailability-zone-id\nregion"},
		{"/latest/meta-data/placement/availability-zone", 200, "text/plain", "us-east-1a"},
		{"/latest/meta-data/placement/availability-zone-id", 200, "text/plain", "use1-az1"},
		{"/latest/meta-data/placement/region", 200, "text/plain", "us-east-1"},
		{"/latest/meta-data/profile", 200, "text/plain", "default-hvm"},
		{"/latest/meta-data/public-hostname", 200, "text/plain", "ec2-203-0-113-10.compute-1.amazonaws.com"},
		{"/latest/meta-data/public-ipv4", 200, "text/plain", "203.0.113.10"},
		{"/latest/meta-data/public-keys", 200, "text/plain", "0=my-key"},
		{"/latest/meta-data/public-keys/", 200, "text/plain", "0=my-key"},
		{"/latest/meta-data/public-keys/0", 200, "text/plain", "openssh-key"},
		{"/latest/meta-data/public-keys/0/", 200, "text/plain", "openssh-key"},
		{"/latest/meta-data/public-keys/0/openssh-key", 200, "text/plain", fixture().PublicKey},
		{"/latest/meta-data/public-keys/0=my-key", 404, "text/html", ""},
		{"/latest/meta-data/public-keys/1/", 404, "text/html", ""},
		{"/latest/meta-data/reservation-id", 200, "text/plain", "r-0123456789abcdef0"},
		{"/latest/meta-data/security-groups", 200, "text/plain", "default\nweb"},
		{"/latest/meta-data/services/", 200, "text/plain", "domain\npartition"},
		{"/latest/meta-data/services/domain", 200, "text/plain", "amazonaws.com"},
		{"/latest/meta-data/services/partition", 200, "text/plain", "aws"},
		{"/latest/meta-data/system", 200, "text/plain", "nitro"},
		{"/latest/meta-data/iam/", 404, "text/html", ""},
		{"/latest/meta-data/iam/security-credentials/", 404, "text/html", ""},
		{"/latest/meta-data/tags/instance/", 404, "text/html", ""},
		{"/latest/meta-data/nope", 404, "text/html", ""},
		{"/latest/meta-data//ami-id", 404, "text/html", ""},
		{"/latest/meta-data/ami-id/x", 404, "text/html", ""},
		{"/latest/dynamic", 200, "text/plain", "instance-identity/"},
		{"/latest/dynamic/", 200, "text/plain", "instance-identity/"},
		{"/latest/dynamic/instance-identity/", 200, "text/plain", "document"},
		{"/latest/dynamic/instance-identity/signature", 404, "text/html", ""},
		{"/latest/dynamic/instance-identity/pkcs7", 404, "text/html", ""},
		{"/latest/user-data", 200, "application/octet-stream", "#!/bin/sh\necho hello\n"},
		{"/latest/api", 404, "text/html", ""},
		{"/latest/api/", 404, "text/html", ""},
		{"/2021-07-15/meta-data/instance-id", 200, "text/plain", "i-0123456789abcdef0"},
		{"/1.0/", 200, "text/plain", "dynamic\nmeta-data\nuser-data"},
		{"/2099-01-01/meta-data/instance-id", 404, "text/html", ""},
		{"/meta-data/", 404, "text/html", ""},
		{"/latest/../latest/meta-data/ami-id", 404, "text/html", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			w := do(h, http.MethodGet, tt.path)
			checkCommon(t, w)
			if w.Code != tt.code {
				t.Fatalf("status %d, want %d; body %q", w.Code, tt.code, w.Body.String())
			}
			if got := w.Header().Get("Content-Type"); got != tt.ctype {
				t.Errorf("Content-Type %q, want %q", got, tt.ctype)
			}
			want := tt.body
			if tt.code == http.StatusNotFound {
				want = string(errorPage(http.StatusNotFound))
			}
			if got := w.Body.String(); got != want {
				t.Errorf("body\n%q\nwant\n%q", got, want)
			}
		})
	}
}

// TestNotFoundPage pins AWS's XHTML 404 page.
func TestNotFoundPage(t *testing.T) {
	want := `<?xml version="1.0" encoding="iso-8859-1"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
         "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title>404 - Not Found</title>
 </head>
 <body>
  <h1>404 - Not Found</h1>
 </body>
</html>`
	h, _, _ := newTest(t, fixture(), Options{})
	w := do(h, http.MethodGet, "/latest/meta-data/no-such-thing")
	if w.Code != http.StatusNotFound || w.Body.String() != want {
		t.Fatalf("got %d %q", w.Code, w.Body.String())
	}
}

// TestIdentityDocument compares the document with a golden file written by hand from AWS's
// format (-update rewrites it).
func TestIdentityDocument(t *testing.T) {
	h, _, _ := newTest(t, fixture(), Options{})
	w := do(h, http.MethodGet, "/latest/dynamic/instance-identity/document")
	if w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	if got := w.Header().Get("Content-Type"); got != "text/plain" {
		t.Errorf("Content-Type %q, want text/plain (AWS does not send application/json)", got)
	}
	golden := filepath.Join("testdata", "identity-document.json")
	if *update {
		if err := os.WriteFile(golden, w.Body.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Body.String(); got != string(want) {
		t.Errorf("document\n%s\nwant\n%s", got, want)
	}
}

// TestIdentityDocumentFields covers the nullable and defaulted fields.
func TestIdentityDocumentFields(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Metadata)
		want []string
	}{
		{"kernel", func(m *Metadata) { m.KernelID = "aki-12345678" }, []string{`  "kernelId" : "aki-12345678",`}},
		{"no kernel", func(m *Metadata) {}, []string{`  "kernelId" : null,`}},
		{"default architecture", func(m *Metadata) { m.Architecture = "" }, []string{`  "architecture" : "x86_64",`}},
		{"arm", func(m *Metadata) { m.Architecture = "arm64" }, []string{`  "architecture" : "arm64",`}},
		{"no html escaping", func(m *Metadata) { m.InstanceType = `<&>"` }, []string{`  "instanceType" : "<&>\"",`}},
		{"pending time utc seconds", func(m *Metadata) {}, []string{`  "pendingTime" : "2026-01-01T00:02:03Z",`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md := fixture()
			tt.edit(&md)
			doc := string(identityDocument(md))
			for _, line := range tt.want {
				if !strings.Contains(doc, "\n"+line+"\n") {
					t.Errorf("no line %q in\n%s", line, doc)
				}
			}
		})
	}
}

// TestOptionalEntries checks what disappears when the instance lacks it.
func TestOptionalEntries(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Metadata)
		path  string
		code  int
		body  string
		check func(t *testing.T, listing string)
	}{
		{name: "no user-data", edit: func(m *Metadata) { m.UserData = nil }, path: "/latest/user-data", code: 404},
		{name: "empty user-data", edit: func(m *Metadata) { m.UserData = []byte{} }, path: "/latest/user-data", code: 404},
		{name: "no user-data listing", edit: func(m *Metadata) { m.UserData = nil }, path: "/latest/", code: 200, body: "dynamic\nmeta-data"},
		{name: "binary user-data", edit: func(m *Metadata) { m.UserData = []byte{0x1f, 0x8b, 0, 0xff} }, path: "/latest/user-data", code: 200, body: "\x1f\x8b\x00\xff"},
		{name: "no public ip", edit: func(m *Metadata) { m.PublicIPv4 = "" }, path: "/latest/meta-data/public-ipv4", code: 404},
		{name: "no public ip hostname", edit: func(m *Metadata) { m.PublicIPv4 = "" }, path: "/latest/meta-data/public-hostname", code: 404},
		{name: "no public ip listing", edit: func(m *Metadata) { m.PublicIPv4 = "" }, path: "/latest/meta-data/", code: 200,
			check: func(t *testing.T, l string) {
				if strings.Contains(l, "public-ipv4") || strings.Contains(l, "public-hostname") {
					t.Errorf("listing has public entries:\n%s", l)
				}
			}},
		{name: "no public ip interface", edit: func(m *Metadata) { m.PublicIPv4 = "" }, path: macDir, code: 200,
			check: func(t *testing.T, l string) {
				for _, e := range []string{"public-ipv4s", "public-hostname", "ipv4-associations/"} {
					if strings.Contains(l, e) {
						t.Errorf("listing has %s:\n%s", e, l)
					}
				}
			}},
		{name: "public ip without hostname", edit: func(m *Metadata) { m.PublicHostname = "" }, path: "/latest/meta-data/public-hostname", code: 404},
		{name: "no key", edit: func(m *Metadata) { m.KeyName = "" }, path: "/latest/meta-data/public-keys/", code: 404},
		{name: "no key openssh", edit: func(m *Metadata) { m.KeyName = "" }, path: "/latest/meta-data/public-keys/0/openssh-key", code: 404},
		{name: "kernel", edit: func(m *Metadata) { m.KernelID = "aki-12345678" }, path: "/latest/meta-data/kernel-id", code: 200, body: "aki-12345678"},
		{name: "no block devices", edit: func(m *Metadata) { m.BlockDevices = nil }, path: "/latest/meta-data/block-device-mapping/", code: 404},
		{name: "given interface id", edit: func(m *Metadata) { m.InterfaceID = "eni-0aaaabbbbccccdddd" }, path: macDir + "interface-id", code: 200, body: "eni-0aaaabbbbccccdddd"},
		{name: "one security group", edit: func(m *Metadata) { m.SecurityGroups = []string{"default"} }, path: "/latest/meta-data/security-groups", code: 200, body: "default"},
		{name: "china", edit: func(m *Metadata) { m.Region, m.AvailabilityZone = "cn-north-1", "cn-north-1b" }, path: "/latest/meta-data/services/domain", code: 200, body: "amazonaws.com.cn"},
		{name: "china az id", edit: func(m *Metadata) { m.Region, m.AvailabilityZone = "cn-north-1", "cn-north-1b" }, path: "/latest/meta-data/placement/availability-zone-id", code: 200, body: "cnn1-az2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md := fixture()
			tt.edit(&md)
			h, _, _ := newTest(t, md, Options{})
			w := do(h, http.MethodGet, tt.path)
			if w.Code != tt.code {
				t.Fatalf("status %d, want %d; body %q", w.Code, tt.code, w.Body.String())
			}
			if tt.body != "" && w.Body.String() != tt.body {
				t.Errorf("body %q, want %q", w.Body.String(), tt.body)
			}
			if tt.check != nil {
				tt.check(t, w.Body.String())
			}
		})
	}
}

// TestTags checks that tags are served only when InstanceMetadataTags is "enabled", and only
// keys AWS allows there.
func TestTags(t *testing.T) {
	tests := []struct {
		opt    string
		path   string
		code   int
		body   string
		listed bool // tags/ in meta-data/
	}{
		{"", "/latest/meta-data/tags/", 404, "", false},
		{"disabled", "/latest/meta-data/tags/instance/", 404, "", false},
		{"disabled", "/latest/meta-data/tags/instance/Name", 404, "", false},
		{"enabled", "/latest/meta-data/tags/", 200, "instance/", true},
		{"enabled", "/latest/meta-data/tags/instance", 200, "Name\nempty\nenv", true},
		{"enabled", "/latest/meta-data/tags/instance/", 200, "Name\nempty\nenv", true},
		{"enabled", "/latest/meta-data/tags/instance/Name", 200, "web-1", true},
		{"enabled", "/latest/meta-data/tags/instance/env", 200, "prod", true},
		{"enabled", "/latest/meta-data/tags/instance/empty", 200, "", true},
		{"enabled", "/latest/meta-data/tags/instance/has%20space", 404, "", true},
		{"enabled", "/latest/meta-data/tags/instance/_index", 404, "", true},
		{"enabled", "/latest/meta-data/tags/instance/a", 404, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.opt+tt.path, func(t *testing.T) {
			h, _, _ := newTest(t, fixture(), Options{InstanceMetadataTags: tt.opt})
			w := do(h, http.MethodGet, tt.path)
			if w.Code != tt.code {
				t.Fatalf("status %d, want %d", w.Code, tt.code)
			}
			if tt.code == 200 && w.Body.String() != tt.body {
				t.Errorf("body %q, want %q", w.Body.String(), tt.body)
			}
			listing := do(h, http.MethodGet, "/latest/meta-data/").Body.String()
			if got := strings.HasSuffix(listing, "\nsystem\ntags/"); got != tt.listed {
				t.Errorf("tags/ listed = %v, want %v:\n%s", got, tt.listed, listing)
			}
		})
	}
}

// TestManagedSSHKeys: EC2 Instance Connect's keys for a user, with and without the trailing
// slash its key-fetching script uses; none when there are none.
func TestManagedSSHKeys(t *testing.T) {
	md := fixture()
	h, _, _ := newTest(t, md, Options{})
	if w := do(h, http.MethodGet, "/latest/meta-data/managed-ssh-keys/active-keys/ec2-user/"); w.Code != 404 {
		t.Fatalf("no keys: %d", w.Code)
	}
	md.ManagedSSHKeys = map[string][]string{"ec2-user": {"ssh-ed25519 AAAA a", "ssh-rsa BBBB b"}, "bad/user": {"x"}}
	h, _, _ = newTest(t, md, Options{})
	for _, p := range []string{"/latest/meta-data/managed-ssh-keys/active-keys/ec2-user/", "/latest/meta-data/managed-ssh-keys/active-keys/ec2-user"} {
		if w := do(h, http.MethodGet, p); w.Code != 200 || w.Body.String() != "ssh-ed25519 AAAA a\nssh-rsa BBBB b" {
			t.Fatalf("%s: %d %q", p, w.Code, w.Body.String())
		}
	}
	if w := do(h, http.MethodGet, "/latest/meta-data/managed-ssh-keys/active-keys/"); w.Body.String() != "ec2-user" {
		t.Fatalf("users: %q", w.Body.String())
	}
}

// TestTagsNone: with tags on and no tags, the directory is there and empty.
func TestTagsNone(t *testing.T) {
	md := fixture()
	md.Tags = nil
	h, _, _ := newTest(t, md, Options{InstanceMetadataTags: "enabled"})
	w := do(h, http.MethodGet, "/latest/meta-data/tags/instance/")
	if w.Code != 200 || w.Body.Len() != 0 {
		t.Fatalf("got %d %q", w.Code, w.Body.String())
	}
}

// TestEndpointDisabled: every path and method is 403 when HttpEndpoint is disabled (or unknown).
func TestEndpointDisabled(t *testing.T) {
	for _, endpoint := range []string{"disabled", "bogus"} {
		h, _, _ := newTest(t, fixture(), Options{HttpEndpoint: endpoint})
		tests := []struct{ method, path string }{
			{"GET", "/"},
			{"GET", "/latest/meta-data/instance-id"},
			{"GET", "/latest/user-data"},
			{"GET", "/nope"},
			{"HEAD", "/latest/"},
			{"PUT", TokenPath},
			{"GET", TokenPath},
			{"POST", "/latest/meta-data/"},
		}
		for _, tt := range tests {
			t.Run(endpoint+" "+tt.method+" "+tt.path, func(t *testing.T) {
				w := do(h, tt.method, tt.path, HeaderTokenTTL, "60")
				checkCommon(t, w)
				if w.Code != http.StatusForbidden {
					t.Fatalf("status %d, want 403", w.Code)
				}
				if tt.method != "HEAD" && w.Body.String() != string(errorPage(http.StatusForbidden)) {
					t.Errorf("body %q", w.Body.String())
				}
			})
		}
	}
}

// TestLiveSource: each request reads the source, so changes show at once.
func TestLiveSource(t *testing.T) {
	h, in, _ := newTest(t, fixture(), Options{})
	if got := do(h, "GET", "/latest/meta-data/security-groups").Body.String(); got != "default\nweb" {
		t.Fatalf("before: %q", got)
	}
	in.set(func(in *instance) { in.md.SecurityGroups = []string{"db"} })
	if got := do(h, "GET", "/latest/meta-data/security-groups").Body.String(); got != "db" {
		t.Errorf("after: %q", got)
	}
	in.set(func(in *instance) { in.opts.HttpEndpoint = "disabled" })
	if w := do(h, "GET", "/latest/meta-data/security-groups"); w.Code != http.StatusForbidden {
		t.Errorf("disabled: %d", w.Code)
	}
}

// TestSourceError: a failing source is a 500.
func TestSourceError(t *testing.T) {
	h, in, _ := newTest(t, fixture(), Options{})
	in.set(func(in *instance) { in.err = errors.New("store down") })
	for _, p := range []string{"/latest/meta-data/", TokenPath} {
		w := do(h, "GET", p)
		checkCommon(t, w)
		if w.Code != http.StatusInternalServerError {
			t.Errorf("%s: status %d, want 500", p, w.Code)
		}
	}
	if w := do(NewHandler(Config{}), "GET", "/"); w.Code != http.StatusInternalServerError {
		t.Errorf("no source: status %d, want 500", w.Code)
	}
}

// TestMethods: reads take GET and HEAD only.
func TestMethods(t *testing.T) {
	h, _, _ := newTest(t, fixture(), Options{})
	tests := []struct {
		method, path string
		code         int
	}{
		{"GET", "/latest/meta-data/instance-id", 200},
		{"HEAD", "/latest/meta-data/instance-id", 200},
		{"HEAD", "/nope", 404},
		{"POST", "/latest/meta-data/instance-id", 405},
		{"PUT", "/latest/meta-data/instance-id", 405},
		{"DELETE", "/", 405},
		{"OPTIONS", "/latest/", 405},
		{"PATCH", "/nope", 405},
		{"PUT", "/2021-07-15/api/token", 405},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			w := do(h, tt.method, tt.path)
			checkCommon(t, w)
			if w.Code != tt.code {
				t.Fatalf("status %d, want %d", w.Code, tt.code)
			}
			if tt.code == 405 {
				if got := w.Header().Get("Allow"); got != "GET, HEAD" {
					t.Errorf("Allow %q", got)
				}
				if w.Body.Len() != 0 {
					t.Errorf("405 body %q, want empty", w.Body.String())
				}
			}
			if tt.method == "HEAD" && tt.code == 200 {
				if got := w.Header().Get("Content-Length"); got != "19" {
					t.Errorf("HEAD Content-Length %q, want 19", got)
				}
			}
		})
	}
}

// TestHelpers covers the small derivations.
func TestHelpers(t *testing.T) {
	azs := []struct{ region, az, want string }{
		{"us-east-1", "us-east-1a", "use1-az1"},
		{"us-east-1", "us-east-1f", "use1-az6"},
		{"eu-west-2", "eu-west-2b", "euw2-az2"},
		{"ap-southeast-2", "ap-southeast-2c", "apse2-az3"},
		{"ap-northeast-1", "ap-northeast-1a", "apne1-az1"},
		{"eu-central-1", "eu-central-1a", "euc1-az1"},
		{"us-gov-west-1", "us-gov-west-1a", "usgw1-az1"},
		{"us-east-1", "us-east-1-bos-1a", ""},
		{"us-east-1", "eu-west-1a", ""},
		{"us-east-1", "us-east-1A", ""},
		{"", "a", ""},
		{"nubis", "nubisa", ""},
		{"x-y-z", "x-y-za", ""},
	}
	for _, tt := range azs {
		if got := availabilityZoneID(tt.region, tt.az); got != tt.want {
			t.Errorf("availabilityZoneID(%q, %q) = %q, want %q", tt.region, tt.az, got, tt.want)
		}
	}
	keys := []struct {
		key string
		ok  bool
	}{
		{"Name", true}, {"aws:cloudformation:stack-name", true}, {"a+b-c=d.e,f_g:h@i", true},
		{"", false}, {".", false}, {"..", false}, {"_index", false}, {"a b", false},
		{"a/b", false}, {"é", false}, {"...", true},
	}
	for _, tt := range keys {
		if got := validTagKey(tt.key); got != tt.ok {
			t.Errorf("validTagKey(%q) = %v", tt.key, got)
		}
	}
	parts := []struct{ region, domain, partition string }{
		{"us-east-1", "amazonaws.com", "aws"},
		{"cn-northwest-1", "amazonaws.com.cn", "aws-cn"},
		{"us-gov-east-1", "amazonaws.com", "aws-us-gov"},
		{"us-iso-east-1", "c2s.ic.gov", "aws-iso"},
		{"us-isob-east-1", "sc2s.sgov.gov", "aws-iso-b"},
		{"", "amazonaws.com", "aws"},
	}
	for _, tt := range parts {
		if d, p := servicesOf(tt.region); d != tt.domain || p != tt.partition {
			t.Errorf("servicesOf(%q) = %q, %q", tt.region, d, p)
		}
	}
}

// TestOverHTTP runs the IMDSv2 flow through a real server and client.
func TestOverHTTP(t *testing.T) {
	h, _, _ := newTest(t, fixture(), Options{HttpTokens: "required"})
	srv := httptest.NewServer(h)
	defer srv.Close()

	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, srv.URL+TokenPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(HeaderTokenTTL, "300")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("PUT: %d %v", resp.StatusCode, err)
	}

	req, err = http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/latest/meta-data/local-ipv4", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(HeaderToken, string(tok))
	resp, err = srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || string(body) != "172.31.5.9" {
		t.Fatalf("GET: %d %q %v", resp.StatusCode, body, err)
	}
	if resp.Header.Get("Server") != "EC2ws" || resp.Header.Get(HeaderTokenTTL) != "300" {
		t.Errorf("headers %v", resp.Header)
	}
}
