package imds

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// versions are the dated metadata versions listed at "/" besides "latest". Every one serves the
// same tree as latest: nubis has one build of the metadata, and clients that pin a date only
// need it to exist.
var versions = []string{
	"1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15", "2008-02-01",
	"2008-09-01", "2009-04-04", "2011-01-01", "2011-05-01", "2012-01-12", "2014-02-25",
	"2014-11-05", "2015-10-20", "2016-04-19", "2016-06-30", "2016-09-02", "2018-03-28",
	"2018-08-17", "2018-09-24", "2019-10-01", "2020-10-27", "2021-01-03", "2021-03-23",
	"2021-07-15", "2022-09-24",
}

// node is one path of the tree: a value (children == nil) or a directory.
type node struct {
	value    []byte
	ctype    string // of a value; "" means text/plain
	children []child
	isDir    bool
}

// child is one directory entry.
type child struct {
	name string // the path segment
	// label is the listing line when it is not the name (plus "/" for a directory): public-keys'
	// "0=<key name>", and the unslashed directories of "/" and "/latest/".
	label string
	node  *node
}

// render returns the body and content type of n: its value, or its listing, one entry a line,
// directories with a trailing "/", no trailing newline.
func (n *node) render() ([]byte, string) {
	if !n.isDir {
		if n.ctype == "" {
			return n.value, "text/plain"
		}
		return n.value, n.ctype
	}
	lines := make([]string, 0, len(n.children))
	for _, c := range n.children {
		switch {
		case c.label != "":
			lines = append(lines, c.label)
		case c.node.isDir:
			lines = append(lines, c.name+"/")
		default:
			lines = append(lines, c.name)
		}
	}
	return []byte(strings.Join(lines, "\n")), "text/plain"
}

// lookup walks path ("/latest/meta-data/mac") down from root. A directory may be asked for with
// or without its trailing slash, and so may a value (AWS serves both). Empty segments ("//")
// match nothing.
func lookup(root *node, path string) *node {
	if !strings.HasPrefix(path, "/") {
		return nil
	}
	rest := strings.TrimSuffix(path[1:], "/")
	n := root
	if rest == "" {
		return n
	}
	for seg := range strings.SplitSeq(rest, "/") {
		next := n.child(seg)
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}

// child returns the entry of n named name, or nil.
func (n *node) child(name string) *node {
	for _, c := range n.children {
		if c.name == name {
			return c.node
		}
	}
	return nil
}

// dirBuilder collects the entries of one directory.
type dirBuilder struct{ children []child }

// text adds a text value; an empty value is left out (AWS omits what an instance does not have).
func (b *dirBuilder) text(name, value string) {
	if value != "" {
		b.add(name, &node{value: []byte(value)})
	}
}

// lines adds a value of one line per item; none is left out.
func (b *dirBuilder) lines(name string, items []string) {
	b.text(name, strings.Join(items, "\n"))
}

// dir adds a sub-directory; an empty one is left out.
func (b *dirBuilder) dir(name string, sub *dirBuilder) {
	if len(sub.children) > 0 {
		b.add(name, sub.node())
	}
}

func (b *dirBuilder) add(name string, n *node) {
	b.children = append(b.children, child{name: name, node: n})
}

// node returns the directory, its entries sorted by name as AWS lists them.
func (b *dirBuilder) node() *node {
	slices.SortStableFunc(b.children, func(x, y child) int { return strings.Compare(x.name, y.name) })
	return &node{isDir: true, children: b.children}
}

// buildTree returns the whole tree one instance sees, from "/" down.
func buildTree(md Metadata, opts Options) *node {
	var ver dirBuilder
	ver.dir("meta-data", metaData(md, opts))
	ver.dir("dynamic", dynamic(md))
	if len(md.UserData) > 0 {
		ver.add("user-data", &node{value: md.UserData, ctype: "application/octet-stream"})
	}
	v := unslashed(ver.node())

	var root dirBuilder
	root.add("latest", v)
	for _, name := range versions {
		root.add(name, v)
	}
	return unslashed(root.node())
}

// unslashed makes n list its sub-directories without the trailing "/": AWS lists the versions
// at "/" and dynamic, meta-data at "/latest/" so.
func unslashed(n *node) *node {
	for i := range n.children {
		n.children[i].label = n.children[i].name
	}
	return n
}

// metaData is the meta-data/ directory. Left out, as on an instance without them: iam/ (nubis
// has no instance profiles yet, so it is 404 as on AWS for an instance without a role),
// identity-credentials/ (internal to AWS), product-codes, ramdisk-id, ancestor-ami-ids, spot/,
// elastic-gpus/ and elastic-inference/.
func metaData(md Metadata, opts Options) *dirBuilder {
	var b dirBuilder
	b.text("ami-id", md.ImageID)
	b.text("ami-launch-index", "0")
	b.text("ami-manifest-path", "(unknown)") // what AWS answers for an EBS-backed image

	var bdm dirBuilder
	for _, k := range slices.Sorted(maps.Keys(md.BlockDevices)) {
		if validSegment(k) {
			bdm.text(k, md.BlockDevices[k])
		}
	}
	b.dir("block-device-mapping", &bdm)

	// events/maintenance/: no maintenance ever, which AWS shows as empty JSON lists.
	var maint, events dirBuilder
	maint.text("history", "[]")
	maint.text("scheduled", "[]")
	events.dir("maintenance", &maint)
	b.dir("events", &events)

	b.text("hostname", md.LocalHostname)
	b.text("instance-action", "none")
	b.text("instance-id", md.InstanceID)
	b.text("instance-life-cycle", "on-demand")
	b.text("instance-type", md.InstanceType)
	b.text("kernel-id", md.KernelID)
	b.text("local-hostname", md.LocalHostname)
	b.text("local-ipv4", md.LocalIPv4)
	b.text("mac", md.MAC)

	// metrics/vhostmd is a leftover of Xen that AWS still lists; it holds an empty XML document.
	var metrics dirBuilder
	metrics.text("vhostmd", `<?xml version="1.0" encoding="UTF-8"?>`)
	b.dir("metrics", &metrics)

	if md.MAC != "" && validSegment(md.MAC) {
		var macs, ifaces, network dirBuilder
		macs.dir(md.MAC, networkInterface(md))
		ifaces.dir("macs", &macs)
		network.dir("interfaces", &ifaces)
		b.dir("network", &network)
	}

	var placement dirBuilder
	placement.text("availability-zone", md.AvailabilityZone)
	placement.text("availability-zone-id", availabilityZoneID(md.Region, md.AvailabilityZone))
	placement.text("region", md.Region)
	b.dir("placement", &placement)

	b.text("profile", "default-hvm")
	if md.PublicIPv4 != "" {
		b.text("public-hostname", md.PublicHostname)
		b.text("public-ipv4", md.PublicIPv4)
	}
	if md.KeyName != "" {
		// public-keys/ lists "0=<key name>"; the directory itself is "0".
		key := &node{isDir: true, children: []child{{name: "openssh-key", node: &node{value: []byte(md.PublicKey)}}}}
		b.add("public-keys", &node{isDir: true, children: []child{{name: "0", label: "0=" + md.KeyName, node: key}}})
	}
	var users dirBuilder
	for _, u := range slices.Sorted(maps.Keys(md.ManagedSSHKeys)) {
		if validSegment(u) {
			users.lines(u, md.ManagedSSHKeys[u])
		}
	}
	var managed dirBuilder
	managed.dir("active-keys", &users)
	b.dir("managed-ssh-keys", &managed)
	b.text("reservation-id", md.ReservationID)
	b.lines("security-groups", md.SecurityGroups)

	domain, partition := servicesOf(md.Region)
	var services dirBuilder
	services.text("domain", domain)
	services.text("partition", partition)
	b.dir("services", &services)

	// system is the hypervisor: "nitro" on current instance types ("xen" and "xen-on-nitro"
	// on older ones). nubis instances are closest to the former.
	b.text("system", "nitro")

	if tagsEnabled(opts) {
		var inst dirBuilder
		for _, k := range slices.Sorted(maps.Keys(md.Tags)) {
			if validTagKey(k) {
				// A tag's value may be empty, so it is added even then.
				inst.add(k, &node{value: []byte(md.Tags[k])})
			}
		}
		// The directory is there when tags are on, even with no tags to list.
		b.add("tags", &node{isDir: true, children: []child{{name: "instance", node: inst.node()}}})
	}
	return &b
}

// networkInterface is network/interfaces/macs/<mac>/, the primary interface (device 0).
func networkInterface(md Metadata) *dirBuilder {
	var b dirBuilder
	b.text("device-number", "0")
	eni := md.InterfaceID
	if eni == "" && md.InstanceID != "" {
		eni = interfaceIDOf(md.InstanceID)
	}
	b.text("interface-id", eni)
	if md.PublicIPv4 != "" && validSegment(md.PublicIPv4) {
		var assoc dirBuilder
		assoc.text(md.PublicIPv4, md.LocalIPv4)
		b.dir("ipv4-associations", &assoc)
		b.text("public-hostname", md.PublicHostname)
		b.text("public-ipv4s", md.PublicIPv4)
	}
	b.text("local-hostname", md.LocalHostname)
	b.text("local-ipv4s", md.LocalIPv4)
	b.text("mac", md.MAC)
	b.text("network-card-index", "0")
	b.text("owner-id", md.AccountID)
	b.lines("security-group-ids", md.SecurityGroupIDs)
	b.lines("security-groups", md.SecurityGroups)
	b.text("subnet-id", md.SubnetID)
	b.text("subnet-ipv4-cidr-block", md.SubnetCIDR)
	b.text("vpc-id", md.VPCID)
	b.text("vpc-ipv4-cidr-block", md.VPCCIDR)
	b.text("vpc-ipv4-cidr-blocks", md.VPCCIDR)
	return &b
}

// dynamic is the dynamic/ directory. instance-identity/ holds only the document: nubis does not
// sign it, so signature, pkcs7 and rsa2048 (and fws/instance-monitoring) are left out.
func dynamic(md Metadata) *dirBuilder {
	var ident, b dirBuilder
	ident.add("document", &node{value: identityDocument(md)})
	b.dir("instance-identity", &ident)
	return &b
}

// interfaceIDOf derives a stable network interface id from an instance id: "eni-" and 17 hex
// digits of its SHA-256.
func interfaceIDOf(instanceID string) string {
	sum := sha256.Sum256([]byte("eni:" + instanceID))
	return "eni-" + hex.EncodeToString(sum[:])[:17]
}

// validSegment reports whether s can be one path segment.
func validSegment(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.Contains(s, "/")
}

// validTagKey reports whether AWS would serve tag key k in the metadata: letters, digits and
// + - = . , _ : @ only (no spaces, no "/"), and not ".", ".." or "_index". AWS refuses to turn
// tags on while a key breaks this; nubis leaves such keys out instead.
func validTagKey(k string) bool {
	if k == "" || k == "." || k == ".." || k == "_index" {
		return false
	}
	for i := range len(k) {
		c := k[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("+-=.,_:@", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// availabilityZoneID derives an AZ id ("use1-az1") from the region and zone names: the region's
// short code (us-east-1 -> use1, ap-southeast-2 -> apse2, us-gov-west-1 -> usgw1) and the zone
// letter's place (a -> az1). AWS maps letters to ids differently per account; one fixed mapping
// is enough for one cloud. It is "" (left out) for a zone it cannot read, such as a Local Zone.
func availabilityZoneID(region, az string) string {
	if region == "" || len(az) != len(region)+1 || !strings.HasPrefix(az, region) {
		return ""
	}
	letter := az[len(region)]
	if letter < 'a' || letter > 'z' {
		return ""
	}
	parts := strings.Split(region, "-")
	if len(parts) < 3 {
		return ""
	}
	num := parts[len(parts)-1]
	if _, err := strconv.Atoi(num); err != nil {
		return ""
	}
	code := parts[0]
	for _, word := range parts[1 : len(parts)-1] {
		if short, ok := regionWords[word]; ok {
			code += short
		} else if word != "" {
			code += word[:1]
		}
	}
	return code + num + "-az" + strconv.Itoa(int(letter-'a')+1)
}

// regionWords shortens the words of region names as AZ ids do.
var regionWords = map[string]string{
	"north": "n", "south": "s", "east": "e", "west": "w", "central": "c",
	"northeast": "ne", "northwest": "nw", "southeast": "se", "southwest": "sw",
	"gov": "g", "iso": "i", "isob": "ib",
}

// servicesOf returns services/domain and services/partition for a region.
func servicesOf(region string) (domain, partition string) {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "amazonaws.com.cn", "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "amazonaws.com", "aws-us-gov"
	case strings.HasPrefix(region, "us-isob-"):
		return "sc2s.sgov.gov", "aws-iso-b"
	case strings.HasPrefix(region, "us-iso-"):
		return "c2s.ic.gov", "aws-iso"
	default:
		return "amazonaws.com", "aws"
	}
}
