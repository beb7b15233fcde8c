package guestinit

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxUserData bounds user data after decompression (EC2 takes 16 KB; a gzip bomb must not
// exhaust the instance's memory).
const maxUserData = 16 << 20

type udKind int

const (
	udNone        udKind = iota // no user data, or only white space
	udScript                    // starts with #!
	udCloudConfig               // starts with #cloud-config
	udUnsupported               // anything else: MIME multi-part, #include, ...
)

// userData is parsed user data.
type userData struct {
	kind     udKind
	data     []byte       // after decompression; for a script, from its #! on
	format   string       // what unsupported user data looks like
	config   *cloudConfig // for udCloudConfig (never nil then)
	warnings []string     // problems found while parsing, for the log
}

// parseUserData classifies user data as cloud-init does (by its first bytes, after gunzip) and
// parses a #cloud-config. It never fails: what it cannot use is reported in warnings.
func parseUserData(raw []byte) (ud *userData) {
	ud = &userData{data: raw}
	if len(raw) >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
		data, err := gunzip(raw, maxUserData)
		if err != nil {
			ud.kind, ud.format = udUnsupported, "gzip data that does not decompress"
			ud.warnings = append(ud.warnings, err.Error())
			return ud
		}
		ud.data = data
	}
	body := bytes.TrimLeft(bytes.TrimPrefix(ud.data, []byte("\xef\xbb\xbf")), " \t\r\n")
	if len(body) == 0 {
		ud.kind = udNone
		return ud
	}
	head := strings.ToLower(string(body[:min(len(body), 64)]))
	switch {
	case strings.HasPrefix(head, "#!"):
		ud.kind, ud.data = udScript, body
	case strings.HasPrefix(head, "#cloud-config-archive"):
		ud.kind, ud.format = udUnsupported, "#cloud-config-archive"
	case strings.HasPrefix(head, "#cloud-config-jsonp"):
		ud.kind, ud.format = udUnsupported, "#cloud-config-jsonp"
	case strings.HasPrefix(head, "#cloud-config"):
		ud.kind = udCloudConfig
		ud.config, ud.warnings = parseCloudConfig(body)
	case strings.HasPrefix(head, "content-type:"), strings.HasPrefix(head, "mime-version:"):
		ud.kind, ud.format = udUnsupported, "MIME multi-part archive"
	case strings.HasPrefix(head, "## template:"):
		ud.kind, ud.format = udUnsupported, "jinja template"
	default:
		ud.kind, ud.format = udUnsupported, "unknown"
		for _, p := range []string{"#include-once", "#include", "#cloud-boothook", "#part-handler", "#upstart-job"} {
			if strings.HasPrefix(head, p) {
				ud.format = p
				break
			}
		}
	}
	return ud
}

// gunzip decompresses data, up to limit bytes.
func gunzip(data []byte, limit int64) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("gunzip: %w", err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, fmt.Errorf("gunzip: %w", err)
	}
	if int64(len(out)) > limit {
		return nil, fmt.Errorf("gunzip: more than %d bytes", limit)
	}
	return out, nil
}

// cloudConfig is the subset of #cloud-config that the init applies.
type cloudConfig struct {
	Users             []userSpec
	Groups            []groupSpec
	SSHAuthorizedKeys []string
	WriteFiles        []writeFile
	RunCmd            []command
	BootCmd           []command
	Hostname, FQDN    string
	Packages          []string
	PackageUpdate     bool
	PackageUpgrade    bool
	FinalMessage      string
	PowerState        *powerState
	Unsupported       []string // known cloud-init modules the init does not provide
	Unknown           []string // keys cloud-init would not know either
}

// unsupportedModules are cloud-config keys of real cloud-init modules that have no meaning here
// (or no implementation yet); they are logged as skipped rather than unknown.
var unsupportedModules = map[string]bool{
	"apt": true, "snap": true, "yum_repos": true, "zypper": true, "ntp": true, "timezone": true,
	"locale": true, "keyboard": true, "chpasswd": true, "password": true, "ssh_pwauth": true,
	"disable_root": true, "disable_root_opts": true, "ssh_keys": true, "ssh_deletekeys": true,
	"ssh_genkeytypes": true, "ssh_quiet_keygen": true, "ssh_publish_hostkeys": true,
	"ssh_import_id": true, "mounts": true, "mount_default_fields": true, "swap": true,
	"growpart": true, "resize_rootfs": true, "disk_setup": true, "fs_setup": true,
	"device_aliases": true, "manage_etc_hosts": true, "preserve_hostname": true,
	"prefer_fqdn_over_hostname": true, "create_hostname_file": true, "ca_certs": true,
	"ca-certs": true, "rsyslog": true, "phone_home": true, "output": true,
	"package_reboot_if_required": true, "random_seed": true, "seed_random": true,
	"ansible": true, "chef": true, "puppet": true, "salt_minion": true, "mcollective": true,
	"byobu_by_default": true, "lxd": true, "wireguard": true, "ubuntu_pro": true,
	"ubuntu_advantage": true, "landscape": true, "rh_subscription": true, "spacewalk": true,
	"apk_repos": true, "no_ssh_fingerprints": true, "authkey_hash": true, "merge_how": true,
	"merge_type": true, "disable_ec2_metadata": true, "vendor_data": true,
}

// parseCloudConfig decodes a #cloud-config document. Each module is decoded on its own, so a
// bad value skips that module only; YAML that does not parse gives an empty config.
func parseCloudConfig(data []byte) (cc *cloudConfig, warnings []string) {
	cc = &cloudConfig{}
	defer func() {
		if r := recover(); r != nil { // a YAML library bug must not end PID 1
			cc, warnings = &cloudConfig{}, append(warnings, fmt.Sprintf("Failed loading yaml blob: %v", r))
		}
	}()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return cc, []string{fmt.Sprintf("Failed loading yaml blob: %v", err)}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return cc, nil // only comments
	}
	top := resolve(doc.Content[0])
	if top.Kind == yaml.ScalarNode && top.Tag == "!!null" {
		return cc, nil
	}
	if top.Kind != yaml.MappingNode {
		return cc, []string{"cloud-config is not a mapping; ignoring it"}
	}
	decode := func(key string, n *yaml.Node, v any) {
		if err := n.Decode(v); err != nil {
			warnings = append(warnings, fmt.Sprintf("invalid %q in cloud-config, skipping it: %v", key, err))
			reflect.ValueOf(v).Elem().SetZero() // not half of it
		}
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		key, val := resolve(top.Content[i]).Value, top.Content[i+1]
		switch key {
		case "users":
			var l userList
			decode(key, val, &l)
			cc.Users = l.users
			warnings = append(warnings, l.warnings...)
		case "groups":
			var l groupList
			decode(key, val, &l)
			cc.Groups = l
		case "ssh_authorized_keys":
			var l keyList
			decode(key, val, &l)
			cc.SSHAuthorizedKeys = l
		case "write_files":
			decode(key, val, &cc.WriteFiles)
		case "runcmd":
			decode(key, val, &cc.RunCmd)
		case "bootcmd":
			decode(key, val, &cc.BootCmd)
		case "hostname":
			decode(key, val, &cc.Hostname)
		case "fqdn":
			decode(key, val, &cc.FQDN)
		case "packages":
			var l packageList
			decode(key, val, &l)
			cc.Packages = l
		case "package_update", "apt_update":
			decode(key, val, &cc.PackageUpdate)
		case "package_upgrade", "apt_upgrade":
			decode(key, val, &cc.PackageUpgrade)
		case "final_message":
			decode(key, val, &cc.FinalMessage)
		case "power_state":
			cc.PowerState = &powerState{}
			decode(key, val, cc.PowerState)
		default:
			if unsupportedModules[key] {
				cc.Unsupported = append(cc.Unsupported, key)
			} else {
				cc.Unknown = append(cc.Unknown, key)
			}
		}
	}
	sort.Strings(cc.Unsupported)
	sort.Strings(cc.Unknown)
	return cc, warnings
}

// resolve follows YAML aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 16; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// scalars returns the values of a sequence of scalars.
func scalars(n *yaml.Node) ([]string, error) {
	var out []string
	for _, c := range n.Content {
		c = resolve(c)
		if c.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("line %d: expected a string", c.Line)
		}
		out = append(out, c.Value)
	}
	return out, nil
}

// stringList is a list of strings, also written as one comma-separated string (groups).
type stringList []string

func (l *stringList) UnmarshalYAML(n *yaml.Node) error {
	n = resolve(n)
	switch {
	case isNull(n):
		*l = nil
	case n.Kind == yaml.ScalarNode:
		*l = nil
		for _, s := range strings.Split(n.Value, ",") {
			if s = strings.TrimSpace(s); s != "" {
				*l = append(*l, s)
			}
		}
	case n.Kind == yaml.SequenceNode:
		s, err := scalars(n)
		if err != nil {
			return err
		}
		*l = s
	default:
		return fmt.Errorf("line %d: expected a string or a list", n.Line)
	}
	return nil
}

// keyList is a list of authorized_keys lines; a single string is one key.
type keyList []string

func (l *keyList) UnmarshalYAML(n *yaml.Node) error {
	n = resolve(n)
	switch {
	case isNull(n):
		*l = nil
	case n.Kind == yaml.ScalarNode:
		*l = keyList{n.Value}
	case n.Kind == yaml.SequenceNode:
		s, err := scalars(n)
		if err != nil {
			return err
		}
		*l = s
	default:
		return fmt.Errorf("line %d: expected a list of keys", n.Line)
	}
	return nil
}

// sudoRules is a user's sudo: a rule, a list of rules, or false/null for none.
type sudoRules []string

func (s *sudoRules) UnmarshalYAML(n *yaml.Node) error {
	n = resolve(n)
	switch {
	case isNull(n):
		*s = nil
	case n.Kind == yaml.ScalarNode && n.Tag == "!!bool":
		if v, _ := strconv.ParseBool(n.Value); v {
			return fmt.Errorf("line %d: sudo: true is not a rule (write the rule, such as ALL=(ALL) NOPASSWD:ALL)", n.Line)
		}
		*s = nil
	case n.Kind == yaml.ScalarNode:
		*s = sudoRules{n.Value}
	case n.Kind == yaml.SequenceNode:
		r, err := scalars(n)
		if err != nil {
			return err
		}
		*s = r
	default:
		return fmt.Errorf("line %d: expected a sudo rule or a list of rules", n.Line)
	}
	return nil
}

// command is an item of runcmd or bootcmd: a shell line, or an argv run as is.
type command struct {
	shell string
	argv  []string
}

func (c *command) UnmarshalYAML(n *yaml.Node) error {
	n = resolve(n)
	switch n.Kind {
	case yaml.ScalarNode:
		c.shell = n.Value
	case yaml.SequenceNode:
		argv, err := scalars(n)
		if err != nil {
			return err
		}
		if len(argv) == 0 {
			return fmt.Errorf("line %d: empty command", n.Line)
		}
		c.argv = argv
	default:
		return fmt.Errorf("line %d: expected a command string or list", n.Line)
	}
	return nil
}

// shellLine is the command as one line of a shell script, as cloud-init's shellify writes it.
func (c command) shellLine() string {
	if c.argv == nil {
		return c.shell
	}
	q := make([]string, len(c.argv))
	for i, a := range c.argv {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// shellScript renders commands as one script, as cloud-init writes runcmd.
func shellScript(cmds []command) []byte {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	for _, c := range cmds {
		b.WriteString(c.shellLine() + "\n")
	}
	return []byte(b.String())
}

// userSpec is an entry of users.
type userSpec struct {
	Name              string     `yaml:"name"`
	Gecos             string     `yaml:"gecos"`
	Homedir           string     `yaml:"homedir"`
	Shell             string     `yaml:"shell"`
	PrimaryGroup      string     `yaml:"primary_group"`
	Groups            stringList `yaml:"groups"`
	Sudo              sudoRules  `yaml:"sudo"`
	LockPasswd        *bool      `yaml:"lock_passwd"`
	Passwd            string     `yaml:"passwd"`
	HashedPasswd      string     `yaml:"hashed_passwd"`
	SSHAuthorizedKeys keyList    `yaml:"ssh_authorized_keys"`
	System            bool       `yaml:"system"`
	NoCreateHome      bool       `yaml:"no_create_home"`
	UID               *int       `yaml:"uid"`

	isDefault         bool // the entry "default": the Config's DefaultUser
	onlyExistingGroup bool // add to the listed groups that exist; create none (the default user)
}

func (u *userSpec) UnmarshalYAML(n *yaml.Node) error {
	n = resolve(n)
	switch n.Kind {
	case yaml.ScalarNode:
		*u = userSpec{Name: n.Value, isDefault: n.Value == "default"}
		return nil
	case yaml.MappingNode:
		type plain userSpec
		if err := n.Decode((*plain)(u)); err != nil {
			return err
		}
		if u.Name == "" {
			return fmt.Errorf("line %d: user without a name", n.Line)
		}
		return nil
	}
	return fmt.Errorf("line %d: expected a user name or mapping", n.Line)
}

// userList is users: "default, bob", a list of names and mappings, or a mapping of name to
// settings. A bad entry is skipped with a warning; the others stay.
type userList struct {
	users    []userSpec
	warnings []string
}

func (l *userList) UnmarshalYAML(n *yaml.Node) error {
	n = resolve(n)
	add := func(item *yaml.Node, name string) {
		var u userSpec
		var err error
		if name == "" {
			err = item.Decode(&u)
		} else { // name: {settings}
			type plain userSpec
			err = item.Decode((*plain)(&u))
			u.Name, u.isDefault = name, name == "default"
		}
		if err != nil {
			l.warnings = append(l.warnings, fmt.Sprintf("invalid user in cloud-config, skipping it: %v", err))
			return
		}
		l.users = append(l.users, u)
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if isNull(n) {
			return nil
		}
		var names stringList
		if err := n.Decode(&names); err != nil {
			return err
		}
		for _, name := range names {
			l.users = append(l.users, userSpec{Name: name, isDefault: name == "default"})
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			add(c, "")
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			v := resolve(n.Content[i+1])
			if isNull(v) {
				v = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			}
			add(v, resolve(n.Content[i]).Value)
		}
	default:
		return fmt.Errorf("line %d: expected a list of users", n.Line)
	}
	return nil
}

// groupSpec is an entry of groups: a group and the users to add to it.
type groupSpec struct {
	Name    string
	Members []string
}

// groupList is groups: "a, b", a list of names or {name: members} mappings, or one mapping.
type groupList []groupSpec

func (l *groupList) UnmarshalYAML(n *yaml.Node) error {
	n = resolve(n)
	fromMap := func(m *yaml.Node) error {
		for i := 0; i+1 < len(m.Content); i += 2 {
			var members stringList
			if err := m.Content[i+1].Decode(&members); err != nil {
				return err
			}
			*l = append(*l, groupSpec{Name: resolve(m.Content[i]).Value, Members: members})
		}
		return nil
	}
	switch n.Kind {
	case yaml.ScalarNode:
		var names stringList
		if err := n.Decode(&names); err != nil {
			return err
		}
		for _, name := range names {
			*l = append(*l, groupSpec{Name: name})
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			c = resolve(c)
			switch c.Kind {
			case yaml.ScalarNode:
				*l = append(*l, groupSpec{Name: c.Value})
			case yaml.MappingNode:
				if err := fromMap(c); err != nil {
					return err
				}
			default:
				return fmt.Errorf("line %d: expected a group", c.Line)
			}
		}
	case yaml.MappingNode:
		return fromMap(n)
	default:
		return fmt.Errorf("line %d: expected a list of groups", n.Line)
	}
	return nil
}

// packageList is packages: names, or [name, version] pairs (kept as name=version).
type packageList []string

func (l *packageList) UnmarshalYAML(n *yaml.Node) error {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		return fmt.Errorf("line %d: expected a list of packages", n.Line)
	}
	for _, c := range n.Content {
		c = resolve(c)
		switch c.Kind {
		case yaml.ScalarNode:
			*l = append(*l, c.Value)
		case yaml.SequenceNode:
			parts, err := scalars(c)
			if err != nil {
				return err
			}
			*l = append(*l, strings.Join(parts, "="))
		default:
			return fmt.Errorf("line %d: expected a package", c.Line)
		}
	}
	return nil
}

// writeFile is an entry of write_files.
type writeFile struct {
	Path        string   `yaml:"path"`
	Content     string   `yaml:"content"`
	Source      rawNode  `yaml:"source"`
	Owner       string   `yaml:"owner"`
	Permissions fileMode `yaml:"permissions"`
	Encoding    string   `yaml:"encoding"`
	Append      bool     `yaml:"append"`
	Defer       bool     `yaml:"defer"`
}

// fileMode is write_files' permissions: an octal number as written ('0644', 0644, 0o644).
// A value that is not one leaves bad set, and the file gets 0644 (as cloud-init does).
type fileMode struct {
	mode uint32
	set  bool
	bad  string
}

func (m *fileMode) UnmarshalYAML(n *yaml.Node) error {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	s := strings.TrimSpace(n.Value)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O")
	v, err := strconv.ParseUint(s, 8, 32)
	if n.Kind != yaml.ScalarNode || err != nil || v > 0o7777 {
		m.bad = fmt.Sprintf("line %d: %q", n.Line, n.Value)
		return nil
	}
	m.mode, m.set = uint32(v), true
	return nil
}

// decodeContent decodes write_files content by its encoding. An unknown encoding is taken as
// text, as cloud-init does, with a warning.
func decodeContent(content, encoding string) (data []byte, warning string, err error) {
	b64 := func(s string) ([]byte, error) {
		s = strings.Map(func(r rune) rune {
			if r == ' ' || r == '\n' || r == '\r' || r == '\t' {
				return -1
			}
			return r
		}, s)
		d, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("base64: %w", err)
		}
		return d, nil
	}
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "", "text/plain", "text":
		return []byte(content), "", nil
	case "b64", "base64":
		d, err := b64(content)
		return d, "", err
	case "gz", "gzip":
		d, err := gunzip([]byte(content), maxUserData)
		return d, "", err
	case "gz+b64", "gz+base64", "gzip+b64", "gzip+base64":
		d, err := b64(content)
		if err != nil {
			return nil, "", err
		}
		d, err = gunzip(d, maxUserData)
		return d, "", err
	}
	return []byte(content), fmt.Sprintf("Unknown encoding type %s, assuming text/plain", encoding), nil
}

// rawNode keeps a value's YAML node, to be looked at later.
type rawNode struct{ node *yaml.Node }

func (r *rawNode) UnmarshalYAML(n *yaml.Node) error {
	r.node = resolve(n)
	return nil
}

// value is the node's scalar value, or "".
func (r rawNode) value() string {
	if r.node == nil || r.node.Kind != yaml.ScalarNode {
		return ""
	}
	return r.node.Value
}

// powerState is power_state: after user data, power off, halt or reboot.
type powerState struct {
	Mode      string  `yaml:"mode"`
	Message   string  `yaml:"message"`
	Delay     rawNode `yaml:"delay"`
	Timeout   rawNode `yaml:"timeout"`
	Condition rawNode `yaml:"condition"`
}

// action is what power_state asks for, or an error for a mode it does not know.
func (p *powerState) action() (action, error) {
	switch p.Mode {
	case "poweroff":
		return actPoweroff, nil
	case "halt":
		return actHalt, nil
	case "reboot":
		return actReboot, nil
	}
	return actNone, errors.New("power_state: mode must be poweroff, halt or reboot, not " + strconv.Quote(p.Mode))
}
