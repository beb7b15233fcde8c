package guestinit

import (
	"testing"
)

// FuzzParseUserData feeds the user-data parser arbitrary input: it must never panic (it runs
// in PID 1) and must classify everything it is given.
func FuzzParseUserData(f *testing.F) {
	for _, seed := range []string{
		"",
		"#!/bin/sh\necho hi\n",
		"#cloud-config\n",
		"#cloud-config\nusers:\n  - default\n  - name: bob\n    sudo: [ALL=(ALL) ALL]\n    groups: a, b\n",
		"#cloud-config\nwrite_files:\n  - path: /x\n    content: aGk=\n    encoding: gz+b64\n    permissions: '0640'\n",
		"#cloud-config\nruncmd:\n  - [ls, -l]\n  - echo hi\nbootcmd: [[a]]\n",
		"#cloud-config\ngroups: [{g: [a, b]}, h]\nusers: {carol: {shell: /bin/sh}}\n",
		"#cloud-config\npower_state: {mode: poweroff, condition: [test, -f, /x]}\n",
		"#cloud-config\na: &a [*a]\n",
		"#cloud-config\nusers: *x\n",
		"#cloud-config\n- 1\n",
		"Content-Type: multipart/mixed\n",
		"\x1f\x8b\x08\x00",
	} {
		f.Add([]byte(seed))
	}
	f.Add(gz(f, "#cloud-config\npackages: [jq]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ud := parseUserData(data)
		switch ud.kind {
		case udNone, udScript, udUnsupported:
			if ud.config != nil {
				t.Fatalf("config for kind %v", ud.kind)
			}
		case udCloudConfig:
			if ud.config == nil {
				t.Fatal("cloud-config without config")
			}
			for _, c := range ud.config.RunCmd {
				_ = c.shellLine()
			}
			for _, w := range ud.config.WriteFiles {
				decodeContent(w.Content, w.Encoding)
			}
			if ps := ud.config.PowerState; ps != nil {
				ps.action()
			}
		default:
			t.Fatalf("kind %v", ud.kind)
		}
		if ud.kind == udScript && (len(ud.data) < 2 || string(ud.data[:2]) != "#!") {
			t.Fatalf("script %q does not start with #!", ud.data)
		}
	})
}
