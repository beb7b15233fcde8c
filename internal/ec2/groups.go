package ec2

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

// Security groups, stored under ec2/<account>/<region>/sg/<id> with a name index per VPC. The
// default VPC's default group exists from the start with AWS's rules (inbound from its own
// members, all outbound); it is stored the first time it changes.

type secGroup struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	VPCID       string   `json:"vpcId"`
	Account     string   `json:"account"`
	Ingress     []sgRule `json:"ingress"`
	Egress      []sgRule `json:"egress"`
}

// sgRule is one rule: a protocol and port range, and one peer (a CIDR or a group).
type sgRule struct {
	ID          string `json:"id"`
	Protocol    string `json:"protocol"` // tcp, udp, icmp, -1, or a protocol number
	FromPort    int    `json:"fromPort"`
	ToPort      int    `json:"toPort"`
	CIDR        string `json:"cidr,omitempty"`
	Group       string `json:"group,omitempty"`
	Description string `json:"description,omitempty"`
}

// same tells whether two rules allow the same thing (descriptions and ids aside).
func (a sgRule) same(b sgRule) bool {
	return a.Protocol == b.Protocol && a.FromPort == b.FromPort && a.ToPort == b.ToPort && a.CIDR == b.CIDR && a.Group == b.Group
}

func (a sgRule) String() string {
	peer := a.CIDR
	if a.Group != "" {
		peer = a.Group
	}
	proto := strings.ToUpper(a.Protocol)
	if a.Protocol == "-1" {
		proto = "ALL"
	}
	return fmt.Sprintf("peer: %s, %s, from port: %d, to port: %d, ALLOW", peer, proto, a.FromPort, a.ToPort)
}

func (s *Service) sgKey(account, id string) string {
	return "ec2/" + account + "/" + s.region + "/sg/" + id
}

func (s *Service) sgNameKey(account, vpcID, name string) string {
	return "ec2/" + account + "/" + s.region + "/sg-name/" + vpcID + "/" + name
}

// defaultGroupRecord is the default group of the default VPC as AWS creates it.
func (s *Service) defaultGroupRecord(account string) secGroup {
	return s.defaultGroupRecordOf(account, s.defaultVPC(account).ID)
}

// defaultGroupRecordOf is a VPC's default group as AWS creates it: inbound from its own
// members, all outbound.
func (s *Service) defaultGroupRecordOf(account, vpcID string) secGroup {
	g := s.defaultGroupOf(account, vpcID)
	return secGroup{ID: g.ID, Name: g.Name, Description: g.Description, VPCID: g.VPCID, Account: account,
		Ingress: []sgRule{{ID: derivedID("sgr", g.ID, "in"), Protocol: "-1", FromPort: -1, ToPort: -1, Group: g.ID}},
		Egress:  []sgRule{{ID: derivedID("sgr", g.ID, "out"), Protocol: "-1", FromPort: -1, ToPort: -1, CIDR: "0.0.0.0/0"}}}
}

// getGroup returns a group by id (found false when there is none).
func (s *Service) getGroup(tx store.Tx, account, id string) (secGroup, bool, error) {
	kv, err := tx.Get(s.sgKey(account, id))
	if errors.Is(err, store.ErrNotFound) {
		vpcs, err := s.vpcs(tx, account)
		if err != nil {
			return secGroup{}, false, err
		}
		for _, v := range vpcs {
			if id == s.defaultGroupOf(account, v.ID).ID {
				return s.defaultGroupRecordOf(account, v.ID), true, nil
			}
		}
		return secGroup{}, false, nil
	}
	if err != nil {
		return secGroup{}, false, err
	}
	var g secGroup
	return g, true, json.Unmarshal(kv.Value, &g)
}

// listGroups returns the account's groups, the default one included.
func (s *Service) listGroups(tx store.Tx, account string) ([]secGroup, error) {
	kvs, err := tx.List("ec2/"+account+"/"+s.region+"/sg/", "", 0)
	if err != nil {
		return nil, err
	}
	out := []secGroup{}
	stored := map[string]bool{}
	for _, kv := range kvs {
		var g secGroup
		if err := json.Unmarshal(kv.Value, &g); err != nil {
			return nil, fmt.Errorf("security group %s: %w", kv.Key, err)
		}
		stored[g.ID] = true
		out = append(out, g)
	}
	vpcs, err := s.vpcs(tx, account)
	if err != nil {
		return nil, err
	}
	for _, v := range vpcs {
		if def := s.defaultGroupOf(account, v.ID).ID; !stored[def] {
			out = append(out, s.defaultGroupRecordOf(account, v.ID))
		}
	}
	return out, nil
}

func (s *Service) putGroup(tx store.Tx, g secGroup) error {
	b, err := json.Marshal(g)
	if err != nil {
		return err
	}
	return tx.Put(s.sgKey(g.Account, g.ID), b)
}

func groupNotFound(id string) error {
	return clientError("InvalidGroup.NotFound", "The security group '%s' does not exist", id)
}

// resolveGroup finds a group by id, or by name in the default VPC (the EC2-Classic-style
// GroupName parameter).
func (s *Service) resolveGroup(tx store.Tx, account, id, name string) (secGroup, error) {
	switch {
	case id != "":
		if !strings.HasPrefix(id, "sg-") {
			return secGroup{}, clientError("InvalidGroupId.Malformed", "Invalid id: \"%s\" (expecting \"sg-...\")", id)
		}
		g, found, err := s.getGroup(tx, account, id)
		if err == nil && !found {
			err = groupNotFound(id)
		}
		return g, err
	case name != "":
		vpc := s.defaultVPC(account).ID
		if name == "default" {
			g, _, err := s.getGroup(tx, account, s.defaultGroup(account).ID)
			return g, err
		}
		kv, err := tx.Get(s.sgNameKey(account, vpc, name))
		if errors.Is(err, store.ErrNotFound) {
			return secGroup{}, clientError("InvalidGroup.NotFound", "The security group '%s' does not exist in default VPC '%s'", name, vpc)
		}
		if err != nil {
			return secGroup{}, err
		}
		g, _, err := s.getGroup(tx, account, string(kv.Value))
		return g, err
	}
	return secGroup{}, missingParameter("GroupId")
}

type createSecurityGroupInput struct {
	Description       *string            `query:"GroupDescription"`
	GroupName         string             `query:"GroupName"`
	VpcID             string             `query:"VpcId"`
	TagSpecifications []TagSpecification `query:"TagSpecification"`
	DryRun            bool               `query:"DryRun"`
}

type createSecurityGroupOutput struct {
	GroupID string             `xml:"groupId"`
	Tags    awsproto.List[Tag] `xml:"tagSet,omitempty"`
}

func validGroupText(param, v string) error {
	if len(v) > 255 {
		return invalidValue(param, v, "Length exceeds maximum of 255 characters.")
	}
	for _, c := range v {
		if c < 0x20 || c > 0x7e {
			return invalidValue(param, v, "Character sets beyond ASCII are not supported.")
		}
	}
	return nil
}

func (s *Service) createSecurityGroup(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in createSecurityGroupInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if in.GroupName == "" {
		return nil, missingParameter("GroupName")
	}
	if in.Description == nil {
		return nil, missingParameter("GroupDescription")
	}
	if strings.HasPrefix(strings.ToLower(in.GroupName), "sg-") {
		return nil, invalidValue("GroupName", in.GroupName, "Group names may not be in the format sg-*.")
	}
	for param, v := range map[string]string{"GroupName": in.GroupName, "GroupDescription": *in.Description} {
		if err := validGroupText(param, v); err != nil {
			return nil, err
		}
	}
	account := r.Caller.AccountID
	vpc := s.defaultVPC(account).ID
	if in.VpcID != "" {
		vpc = in.VpcID
	}
	tags, err := tagsFromSpecs(in.TagSpecifications, "security-group")
	if err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	g := secGroup{ID: newID("sg"), Name: in.GroupName, Description: *in.Description, VPCID: vpc, Account: account}
	// AWS gives a new group one rule: all outbound traffic.
	g.Egress = []sgRule{{ID: newID("sgr"), Protocol: "-1", FromPort: -1, ToPort: -1, CIDR: "0.0.0.0/0"}}
	err = s.store.Update(ctx, func(tx store.Tx) error {
		if _, found, err := s.getVPC(tx, account, vpc); err != nil || !found {
			if err == nil {
				err = clientError("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", vpc)
			}
			return err
		}
		if in.GroupName == "default" {
			return clientError("InvalidGroup.Reserved", "The security group 'default' is reserved")
		}
		if err := tx.Create(s.sgNameKey(account, vpc, g.Name), []byte(g.ID)); err != nil {
			if errors.Is(err, store.ErrExists) {
				return clientError("InvalidGroup.Duplicate", "The security group '%s' already exists for VPC '%s'", g.Name, vpc)
			}
			return err
		}
		if err := s.putGroup(tx, g); err != nil {
			return err
		}
		return putTags(tx, s.tagKey(r, g.ID), tagList(nil).set(tags))
	})
	if err != nil {
		return nil, err
	}
	return createSecurityGroupOutput{GroupID: g.ID, Tags: tagList(nil).set(tags).xml()}, nil
}

type deleteSecurityGroupInput struct {
	GroupID   string `query:"GroupId"`
	GroupName string `query:"GroupName"`
	DryRun    bool   `query:"DryRun"`
}

type deleteSecurityGroupOutput struct {
	Return  bool   `xml:"return"`
	GroupID string `xml:"groupId"`
}

func (s *Service) deleteSecurityGroup(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in deleteSecurityGroupInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	account := r.Caller.AccountID
	var out deleteSecurityGroupOutput
	err := s.store.Update(ctx, func(tx store.Tx) error {
		g, err := s.resolveGroup(tx, account, in.GroupID, in.GroupName)
		if err != nil {
			return err
		}
		if g.ID == s.defaultGroupOf(account, g.VPCID).ID {
			return clientError("CannotDelete", "the specified group: \"%s\" name: \"default\" cannot be deleted by a user", g.ID)
		}
		kvs, err := tx.List("ec2/"+account+"/"+s.region+"/instance/", "", 0)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			var inst instance
			if err := json.Unmarshal(kv.Value, &inst); err != nil {
				return err
			}
			if inst.State != stateTerminated && slices.Contains(inst.Groups, g.ID) {
				return clientError("DependencyViolation", "resource %s has a dependent object", g.ID)
			}
		}
		groups, err := s.listGroups(tx, account)
		if err != nil {
			return err
		}
		for _, other := range groups {
			if other.ID == g.ID {
				continue
			}
			for _, rule := range append(slices.Clone(other.Ingress), other.Egress...) {
				if rule.Group == g.ID {
					return clientError("DependencyViolation", "resource %s has a dependent object", g.ID)
				}
			}
		}
		if in.DryRun {
			return errDryRun
		}
		for _, key := range []string{s.sgKey(account, g.ID), s.sgNameKey(account, g.VPCID, g.Name)} {
			if err := tx.Delete(key); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		out = deleteSecurityGroupOutput{Return: true, GroupID: g.ID}
		return putTags(tx, s.tagKey(r, g.ID), nil)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ipPermission is one IpPermissions.N of a request.
type ipPermission struct {
	IPProtocol string `query:"IpProtocol"`
	FromPort   *int   `query:"FromPort"`
	ToPort     *int   `query:"ToPort"`
	IPRanges   []struct {
		CidrIP      string `query:"CidrIp"`
		Description string `query:"Description"`
	} `query:"IpRanges"`
	Ipv6Ranges []struct {
		CidrIpv6    string `query:"CidrIpv6"`
		Description string `query:"Description"`
	} `query:"Ipv6Ranges"`
	PrefixListIDs []struct {
		PrefixListID string `query:"PrefixListId"`
		Description  string `query:"Description"`
	} `query:"PrefixListIds"`
	Groups []struct {
		GroupID     string `query:"GroupId"`
		GroupName   string `query:"GroupName"`
		UserID      string `query:"UserId"`
		VpcID       string `query:"VpcId"`
		Description string `query:"Description"`
	} `query:"Groups"`
}

// normalizeProtocol turns EC2's protocol forms into one: tcp, udp, icmp, -1 or a number.
func normalizeProtocol(p string) (string, error) {
	switch strings.ToLower(p) {
	case "tcp", "6":
		return "tcp", nil
	case "udp", "17":
		return "udp", nil
	case "icmp", "1":
		return "icmp", nil
	case "-1", "all":
		return "-1", nil
	case "":
		return "", missingParameter("IpProtocol")
	}
	if n, err := strconv.Atoi(p); err == nil && n >= 0 && n <= 255 {
		return p, nil
	}
	return "", clientError("InvalidParameterValue", "Invalid value '%s' for IP protocol. Unknown protocol.", p)
}

// rulesOf turns IpPermissions (and the legacy top-level parameters) into rules, one per peer.
func (s *Service) rulesOf(tx store.Tx, account string, perms []ipPermission) ([]sgRule, error) {
	var out []sgRule
	for _, perm := range perms {
		proto, err := normalizeProtocol(perm.IPProtocol)
		if err != nil {
			return nil, err
		}
		from, to := -1, -1
		switch proto {
		case "tcp", "udp":
			if perm.FromPort == nil || perm.ToPort == nil {
				return nil, clientError("InvalidParameterValue", "Invalid value for portRange. Must specify both from and to ports with TCP/UDP.")
			}
			from, to = *perm.FromPort, *perm.ToPort
			if from < 0 || to > 65535 || from > to {
				return nil, clientError("InvalidParameterValue", "Invalid TCP/UDP port range %d-%d", from, to)
			}
		case "icmp":
			if perm.FromPort != nil {
				from = *perm.FromPort
			}
			if perm.ToPort != nil {
				to = *perm.ToPort
			}
			if from < -1 || from > 255 || to < -1 || to > 255 {
				return nil, clientError("InvalidParameterValue", "Invalid ICMP type %d or code %d", from, to)
			}
		}
		if len(perm.Ipv6Ranges) > 0 || len(perm.PrefixListIDs) > 0 {
			return nil, clientError("InvalidParameterValue", "nubis instances are IPv4-only, and it has no prefix lists: use IpRanges and security groups as peers")
		}
		if len(perm.IPRanges) == 0 && len(perm.Groups) == 0 {
			return nil, clientError("InvalidParameterValue", "The request must contain at least one peer (IpRanges or UserIdGroupPairs) for each permission")
		}
		for _, rg := range perm.IPRanges {
			pfx, err := netip.ParsePrefix(rg.CidrIP)
			if err != nil || !pfx.Addr().Is4() {
				return nil, clientError("InvalidParameterValue", "CIDR block %s is malformed", rg.CidrIP)
			}
			if pfx.Masked() != pfx {
				return nil, clientError("InvalidParameterValue", "CIDR block %s is malformed: it has bits set beyond its prefix length", rg.CidrIP)
			}
			out = append(out, sgRule{Protocol: proto, FromPort: from, ToPort: to, CIDR: pfx.String(), Description: rg.Description})
		}
		for _, gp := range perm.Groups {
			ref, err := s.resolveGroup(tx, account, gp.GroupID, gp.GroupName)
			if err != nil {
				return nil, err
			}
			out = append(out, sgRule{Protocol: proto, FromPort: from, ToPort: to, Group: ref.ID, Description: gp.Description})
		}
	}
	return out, nil
}
