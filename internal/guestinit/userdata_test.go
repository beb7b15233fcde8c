package guestinit

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"reflect"
	"strings"
	"testing"
)

func gz(t testing.TB, s string) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write([]byte(s))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestParseUserDataKinds(t *testing.T) {
	tests := []struct {
		name   string
		data   []byte
		kind   udKind
		format string
		body   string // for scripts: the script as it will be written
	}{
		{"absent", nil, udNone, "", ""},
		{"white space", []byte(" \n\t\n"), udNone, "", ""},
		{"script", []byte("#!/bin/bash\necho hi\n"), udScript, "", "#!/bin/bash\necho hi\n"},
		{"script after blank lines", []byte("\n\n#!/bin/sh\ntrue\n"), udScript, "", "#!/bin/sh\ntrue\n"},
		{"gzipped script", gz(t, "#!/bin/sh\necho gz\n"), udScript, "", "#!/bin/sh\necho gz\n"},
		{"cloud-config", []byte("#cloud-config\nruncmd: [ls]\n"), udCloudConfig, "", ""},
		{"cloud-config upper case", []byte("#Cloud-Config\n{}\n"), udCloudConfig, "", ""},
		{"cloud-config with BOM", []byte("\xef\xbb\xbf#cloud-config\n"), udCloudConfig, "", ""},
		{"gzipped cloud-config", gz(t, "#cloud-config\npackages: [jq]\n"), udCloudConfig, "", ""},
		{"bad gzip", []byte{0x1f, 0x8b, 1, 2, 3}, udUnsupported, "gzip data that does not decompress", ""},
		{"mime", []byte("Content-Type: multipart/mixed; boundary=\"x\"\nMIME-Version: 1.0\n"), udUnsupported, "MIME multi-part archive", ""},
		{"mime version first", []byte("MIME-Version: 1.0\n"), udUnsupported, "MIME multi-part archive", ""},
		{"include", []byte("#include\nhttp://example.com/x\n"), udUnsupported, "#include", ""},
		{"boothook", []byte("#cloud-boothook\necho\n"), udUnsupported, "#cloud-boothook", ""},
		{"archive", []byte("#cloud-config-archive\n- type: x\n"), udUnsupported, "#cloud-config-archive", ""},
		{"jinja", []byte("## template: jinja\n#cloud-config\n"), udUnsupported, "jinja template", ""},
		{"plain text", []byte("hello world\n"), udUnsupported, "unknown", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ud := parseUserData(tt.data)
			if ud.kind != tt.kind || ud.format != tt.format {
				t.Fatalf("kind %v format %q, want %v %q (warnings %q)", ud.kind, ud.format, tt.kind, tt.format, ud.warnings)
			}
			if tt.kind == udScript && string(ud.data) != tt.body {
				t.Errorf("script %q, want %q", ud.data, tt.body)
			}
			if (ud.kind == udCloudConfig) != (ud.config != nil) {
				t.Errorf("config %v for kind %v", ud.config, ud.kind)
			}
		})
	}
}

func TestParseCloudConfig(t *testing.T) {
	tru, fls := true, false
	uid := 1500
	tests := []struct {
		name     string
		yaml     string
		want     cloudConfig
		warnings []string // substrings, in order
	}{
		{name: "empty", yaml: "#cloud-config\n", want: cloudConfig{}},
		{name: "null", yaml: "#cloud-config\n~\n", want: cloudConfig{}},
		{
			name: "users",
			yaml: `#cloud-config
users:
  - default
  - name: bob
    gecos: Bob B
    shell: /bin/zsh
    groups: [docker, wheel]
    sudo: ALL=(ALL) NOPASSWD:ALL
    lock_passwd: false
    passwd: $6$x$y
    ssh_authorized_keys: [ssh-ed25519 AAAA bob]
    homedir: /srv/bob
  - name: svc
    system: true
    groups: "a, b"
    sudo: [ "ALL=(ALL) /bin/ls", "ALL=(root) /bin/cat" ]
    uid: 1500
    lock_passwd: true
  - name: nosudo
    sudo: false
`,
			want: cloudConfig{Users: []userSpec{
				{Name: "default", isDefault: true},
				{Name: "bob", Gecos: "Bob B", Shell: "/bin/zsh", Groups: stringList{"docker", "wheel"},
					Sudo: sudoRules{"ALL=(ALL) NOPASSWD:ALL"}, LockPasswd: &fls, Passwd: "$6$x$y",
					SSHAuthorizedKeys: keyList{"ssh-ed25519 AAAA bob"}, Homedir: "/srv/bob"},
				{Name: "svc", System: true, Groups: stringList{"a", "b"},
					Sudo: sudoRules{"ALL=(ALL) /bin/ls", "ALL=(root) /bin/cat"}, UID: &uid, LockPasswd: &tru},
				{Name: "nosudo"},
			}},
		},
		{
			name: "users as a string",
			yaml: "#cloud-config\nusers: default, alice\n",
			want: cloudConfig{Users: []userSpec{{Name: "default", isDefault: true}, {Name: "alice"}}},
		},
		{
			name: "users as a mapping",
			yaml: "#cloud-config\nusers:\n  carol:\n    shell: /bin/sh\n  dave:\n",
			want: cloudConfig{Users: []userSpec{{Name: "carol", Shell: "/bin/sh"}, {Name: "dave"}}},
		},
		{
			name:     "a bad user is skipped, the others stay",
			yaml:     "#cloud-config\nusers:\n  - name: eve\n    sudo: true\n  - frank\n  - {gecos: nameless}\n",
			want:     cloudConfig{Users: []userSpec{{Name: "frank"}}},
			warnings: []string{"sudo: true is not a rule", "user without a name"},
		},
		{
			name: "groups",
			yaml: "#cloud-config\ngroups:\n  - admingroup: [root, sys]\n  - cloud-users\n",
			want: cloudConfig{Groups: []groupSpec{{Name: "admingroup", Members: []string{"root", "sys"}}, {Name: "cloud-users"}}},
		},
		{
			name: "ssh_authorized_keys",
			yaml: "#cloud-config\nssh_authorized_keys:\n  - ssh-rsa AAAA one\n  - ssh-ed25519 BBBB two\n",
			want: cloudConfig{SSHAuthorizedKeys: []string{"ssh-rsa AAAA one", "ssh-ed25519 BBBB two"}},
		},
		{
			name: "write_files",
			yaml: `#cloud-config
write_files:
  - path: /etc/a
    content: hello
    permissions: '0600'
    owner: bob:bob
  - path: /etc/b
    content: aGk=
    encoding: b64
    permissions: 0755
    append: true
    defer: true
`,
			want: cloudConfig{WriteFiles: []writeFile{
				{Path: "/etc/a", Content: "hello", Permissions: fileMode{mode: 0o600, set: true}, Owner: "bob:bob"},
				{Path: "/etc/b", Content: "aGk=", Encoding: "b64", Permissions: fileMode{mode: 0o755, set: true}, Append: true, Defer: true},
			}},
		},
		{
			name: "runcmd and bootcmd",
			yaml: "#cloud-config\nruncmd:\n  - echo hi > /tmp/x\n  - [ls, -l, \"it's\"]\nbootcmd:\n  - [cloud-init-per, once, x]\n",
			want: cloudConfig{
				RunCmd:  []command{{shell: "echo hi > /tmp/x"}, {argv: []string{"ls", "-l", "it's"}}},
				BootCmd: []command{{argv: []string{"cloud-init-per", "once", "x"}}},
			},
		},
		{
			name: "packages, hostname, final_message",
			yaml: "#cloud-config\npackages: [jq, [nginx, 1.2]]\npackage_update: true\nhostname: web\nfqdn: web.example.com\nfinal_message: done $UPTIME\n",
			want: cloudConfig{Packages: []string{"jq", "nginx=1.2"}, PackageUpdate: true, Hostname: "web",
				FQDN: "web.example.com", FinalMessage: "done $UPTIME"},
		},
		{
			name: "unknown and unsupported modules",
			yaml: "#cloud-config\nzzz: 1\napt: {}\nfrobnicate: yes\ntimezone: UTC\n",
			want: cloudConfig{Unknown: []string{"frobnicate", "zzz"}, Unsupported: []string{"apt", "timezone"}},
		},
		{
			name:     "malformed YAML",
			yaml:     "#cloud-config\nruncmd: [ls\nusers: - :\n",
			want:     cloudConfig{},
			warnings: []string{"Failed loading yaml blob"},
		},
		{
			name:     "not a mapping",
			yaml:     "#cloud-config\n- a\n- b\n",
			want:     cloudConfig{},
			warnings: []string{"not a mapping"},
		},
		{
			name:     "a bad module is skipped, the others stay",
			yaml:     "#cloud-config\nwrite_files: nope\nruncmd: [true]\n",
			want:     cloudConfig{RunCmd: []command{{shell: "true"}}},
			warnings: []string{`invalid "write_files"`},
		},
		{
			name: "bad permissions (written 0644, with a warning then)",
			yaml: "#cloud-config\nwrite_files:\n  - path: /x\n    permissions: rw-r--r--\n",
			want: cloudConfig{WriteFiles: []writeFile{{Path: "/x", Permissions: fileMode{bad: `line 4: "rw-r--r--"`}}}},
		},
		{
			name: "aliases",
			yaml: "#cloud-config\nx-keys: &k [ssh-ed25519 AAAA a]\nssh_authorized_keys: *k\n",
			want: cloudConfig{SSHAuthorizedKeys: []string{"ssh-ed25519 AAAA a"}, Unknown: []string{"x-keys"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ud := parseUserData([]byte(tt.yaml))
			if ud.kind != udCloudConfig {
				t.Fatalf("kind %v", ud.kind)
			}
			got := *ud.config
			if got.PowerState != nil {
				t.Fatalf("power_state %+v", got.PowerState)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			if len(ud.warnings) != len(tt.warnings) {
				t.Fatalf("warnings %q, want %q", ud.warnings, tt.warnings)
			}
			for i, w := range tt.warnings {
				if !strings.Contains(ud.warnings[i], w) {
					t.Errorf("warning %q does not contain %q", ud.warnings[i], w)
				}
			}
		})
	}
}

func TestParsePowerState(t *testing.T) {
	ud := parseUserData([]byte("#cloud-config\npower_state:\n  mode: reboot\n  message: bye\n  delay: now\n  condition: true\n"))
	ps := ud.config.PowerState
	if ps == nil || ps.Mode != "reboot" || ps.Message != "bye" || ps.Delay.value() != "now" || ps.Condition.node == nil {
		t.Fatalf("power_state %+v", ps)
	}
	if a, err := ps.action(); a != actReboot || err != nil {
		t.Errorf("action %v %v", a, err)
	}
	if _, err := (&powerState{Mode: "explode"}).action(); err == nil {
		t.Error("no error for a bad mode")
	}
}

func TestDecodeContent(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString
	tests := []struct {
		encoding, content string
		want              string
		warn, err         bool
	}{
		{"", "plain", "plain", false, false},
		{"text/plain", "plain", "plain", false, false},
		{"b64", b64([]byte("bin\x00ary")), "bin\x00ary", false, false},
		{"base64", "aGVs\nbG8=\n", "hello", false, false},
		{"BASE64", "aGVsbG8=", "hello", false, false},
		{"gz", string(gz(t, "zipped")), "zipped", false, false},
		{"gzip", string(gz(t, "zipped")), "zipped", false, false},
		{"gz+b64", b64(gz(t, "both")), "both", false, false},
		{"gzip+base64", b64(gz(t, "both")), "both", false, false},
		{"gz+base64", b64(gz(t, "both")), "both", false, false},
		{"rot13", "as is", "as is", true, false},
		{"b64", "!!!", "", false, true},
		{"gz", "not gzip", "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.encoding, func(t *testing.T) {
			got, warning, err := decodeContent(tt.content, tt.encoding)
			if (err != nil) != tt.err || (warning != "") != tt.warn {
				t.Fatalf("err %v warning %q", err, warning)
			}
			if err == nil && string(got) != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFileMode(t *testing.T) {
	tests := []struct {
		yaml string
		mode uint32
		err  bool
	}{
		{"'0644'", 0o644, false},
		{"0644", 0o644, false},
		{"0o600", 0o600, false},
		{"'755'", 0o755, false},
		{"04755", 0o4755, false},
		{"'0999'", 0, true},
		{"[1]", 0, true},
		{"077777", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.yaml, func(t *testing.T) {
			ud := parseUserData([]byte("#cloud-config\nwrite_files:\n  - path: /x\n    permissions: " + tt.yaml + "\n"))
			if len(ud.warnings) > 0 {
				t.Fatalf("warnings %q", ud.warnings)
			}
			m := ud.config.WriteFiles[0].Permissions
			if tt.err != (m.bad != "") || tt.err == m.set {
				t.Fatalf("mode %+v", m)
			}
			if !tt.err && m.mode != tt.mode {
				t.Errorf("mode %o, want %o", m.mode, tt.mode)
			}
		})
	}
}

func TestShellScript(t *testing.T) {
	got := string(shellScript([]command{
		{shell: "echo $HOME > /tmp/x"},
		{argv: []string{"ls", "-l", "it's here"}},
	}))
	want := "#!/bin/sh\necho $HOME > /tmp/x\n'ls' '-l' 'it'\\''s here'\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestRenderFinalMessage(t *testing.T) {
	tests := []struct{ msg, want string }{
		{defaultFinalMessage, "Cloud-init v. " + ciVersion + " finished at TS. Datasource DataSourceEc2Local.  Up 1.50 seconds"},
		{"up $UPTIME s, ${version}", "up 1.50 s, " + ciVersion},
		{"## template: jinja\nat {{ timestamp }} from {{datasource}}", "at TS from DataSourceEc2Local"},
		{"plain", "plain"},
	}
	for _, tt := range tests {
		if got := renderFinalMessage(tt.msg, "TS", "1.50"); got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.msg, got, tt.want)
		}
	}
}
