package ec2

import (
	"context"
	"slices"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

type changeRulesInput struct {
	GroupID                    string             `query:"GroupId"`
	GroupName                  string             `query:"GroupName"`
	IPPermissions              []ipPermission     `query:"IpPermissions"`
	SecurityGroupRuleIDs       []string           `query:"SecurityGroupRuleId"`
	CidrIP                     string             `query:"CidrIp"`
	IPProtocol                 string             `query:"IpProtocol"`
	FromPort                   *int               `query:"FromPort"`
	ToPort                     *int               `query:"ToPort"`
	SourceSecurityGroupName    string             `query:"SourceSecurityGroupName"`
	SourceSecurityGroupOwnerID string             `query:"SourceSecurityGroupOwnerId"`
	TagSpecifications          []TagSpecification `query:"TagSpecification"`
	DryRun                     bool               `query:"DryRun"`
}

// permissions returns the request's IpPermissions, with the legacy top-level form as one more.
func (in *changeRulesInput) permissions() []ipPermission {
	perms := slices.Clone(in.IPPermissions)
	if in.IPProtocol != "" || in.CidrIP != "" || in.SourceSecurityGroupName != "" {
		p := ipPermission{IPProtocol: in.IPProtocol, FromPort: in.FromPort, ToPort: in.ToPort}
		if p.IPProtocol == "" {
			p.IPProtocol = "-1"
		}
		if in.CidrIP != "" {
			p.IPRanges = append(p.IPRanges, struct {
				CidrIP      string `query:"CidrIp"`
				Description string `query:"Description"`
			}{CidrIP: in.CidrIP})
		}
		if in.SourceSecurityGroupName != "" {
			p.Groups = append(p.Groups, struct {
				GroupID     string `query:"GroupId"`
				GroupName   string `query:"GroupName"`
				UserID      string `query:"UserId"`
				VpcID       string `query:"VpcId"`
				Description string `query:"Description"`
			}{GroupName: in.SourceSecurityGroupName})
		}
		perms = append(perms, p)
	}
	return perms
}

type ruleXML struct {
	SecurityGroupRuleID string `xml:"securityGroupRuleId"`
	GroupID             string `xml:"groupId"`
	GroupOwnerID        string `xml:"groupOwnerId"`
	IsEgress            bool   `xml:"isEgress"`
	IPProtocol          string `xml:"ipProtocol"`
	FromPort            int    `xml:"fromPort"`
	ToPort              int    `xml:"toPort"`
	CidrIpv4            string `xml:"cidrIpv4,omitempty"`
	ReferencedGroupInfo *struct {
		GroupID string `xml:"groupId"`
		UserID  string `xml:"userId"`
	} `xml:"referencedGroupInfo,omitempty"`
	Description string             `xml:"description,omitempty"`
	Tags        awsproto.List[Tag] `xml:"tagSet"`
}

func ruleToXML(g secGroup, rule sgRule, egress bool, tags tagList) ruleXML {
	x := ruleXML{SecurityGroupRuleID: rule.ID, GroupID: g.ID, GroupOwnerID: g.Account, IsEgress: egress,
		IPProtocol: rule.Protocol, FromPort: rule.FromPort, ToPort: rule.ToPort, CidrIpv4: rule.CIDR,
		Description: rule.Description, Tags: tags.xml()}
	if rule.Group != "" {
		x.ReferencedGroupInfo = &struct {
			GroupID string `xml:"groupId"`
			UserID  string `xml:"userId"`
		}{GroupID: rule.Group, UserID: g.Account}
	}
	return x
}

type authorizeOutput struct {
	Return bool                   `xml:"return"`
	Rules  awsproto.List[ruleXML] `xml:"securityGroupRuleSet"`
}

func (s *Service) authorizeIngress(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	return s.authorize(ctx, r, p, false)
}

func (s *Service) authorizeEgress(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	return s.authorize(ctx, r, p, true)
}

// authorize adds rules to a group; a rule it has already is InvalidPermission.Duplicate and
// nothing is added.
func (s *Service) authorize(ctx context.Context, r *awsproto.Request, p awsproto.Params, egress bool) (any, error) {
	var in changeRulesInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	tags, err := tagsFromSpecs(in.TagSpecifications, "security-group-rule")
	if err != nil {
		return nil, err
	}
	account := r.Caller.AccountID
	var out authorizeOutput
	err = s.store.Update(ctx, func(tx store.Tx) error {
		g, err := s.resolveGroup(tx, account, in.GroupID, in.GroupName)
		if err != nil {
			return err
		}
		rules, err := s.rulesOf(tx, account, in.permissions())
		if err != nil {
			return err
		}
		if len(rules) == 0 {
			return missingParameter("IpPermissions")
		}
		list := &g.Ingress
		if egress {
			list = &g.Egress
		}
		for i, rule := range rules {
			for _, have := range append(slices.Clone(*list), rules[:i]...) {
				if have.same(rule) {
					return clientError("InvalidPermission.Duplicate", "the specified rule \"%s\" already exists", rule)
				}
			}
		}
		if in.DryRun {
			return errDryRun
		}
		out.Return = true
		for _, rule := range rules {
			rule.ID = newID("sgr")
			*list = append(*list, rule)
			if err := putTags(tx, s.tagKey(r, rule.ID), tagList(nil).set(tags)); err != nil {
				return err
			}
			out.Rules = append(out.Rules, ruleToXML(g, rule, egress, tagList(nil).set(tags)))
		}
		return s.putGroup(tx, g)
	})
	if err != nil {
		return nil, err
	}
	s.groupsChanged(account)
	return out, nil
}

func (s *Service) revokeIngress(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	return s.revoke(ctx, r, p, false)
}

func (s *Service) revokeEgress(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	return s.revoke(ctx, r, p, true)
}

// revoke removes rules, named by their content or by id; one the group does not have is
// InvalidPermission.NotFound and nothing is removed.
func (s *Service) revoke(ctx context.Context, r *awsproto.Request, p awsproto.Params, egress bool) (any, error) {
	var in changeRulesInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	account := r.Caller.AccountID
	err := s.store.Update(ctx, func(tx store.Tx) error {
		g, err := s.resolveGroup(tx, account, in.GroupID, in.GroupName)
		if err != nil {
			return err
		}
		list := &g.Ingress
		if egress {
			list = &g.Egress
		}
		rules, err := s.rulesOf(tx, account, in.permissions())
		if err != nil {
			return err
		}
		if len(rules) == 0 && len(in.SecurityGroupRuleIDs) == 0 {
			return missingParameter("IpPermissions")
		}
		for _, rule := range rules {
			i := slices.IndexFunc(*list, rule.same)
			if i < 0 {
				return clientError("InvalidPermission.NotFound", "The specified rule does not exist in this security group.")
			}
			*list = slices.Delete(*list, i, i+1)
		}
		for _, id := range in.SecurityGroupRuleIDs {
			i := slices.IndexFunc(*list, func(x sgRule) bool { return x.ID == id })
			if i < 0 {
				return clientError("InvalidSecurityGroupRuleId.NotFound", "The security group rule ID '%s' does not exist", id)
			}
			*list = slices.Delete(*list, i, i+1)
		}
		if in.DryRun {
			return errDryRun
		}
		return s.putGroup(tx, g)
	})
	if err != nil {
		return nil, err
	}
	s.groupsChanged(account)
	return returnOutput{Return: true}, nil
}

type describeRulesInput struct {
	RuleIDs    []string `query:"SecurityGroupRuleId"`
	Filters    []Filter `query:"Filter"`
	MaxResults int      `query:"MaxResults"`
	NextToken  string   `query:"NextToken"`
	DryRun     bool     `query:"DryRun"`
}

type describeRulesOutput struct {
	Rules     awsproto.List[ruleXML] `xml:"securityGroupRuleSet"`
	NextToken string                 `xml:"nextToken,omitempty"`
}

func (s *Service) describeSecurityGroupRules(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in describeRulesInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if err := simpleFilters(in.Filters, "group-id", "security-group-rule-id"); err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	account := r.Caller.AccountID
	var all []ruleXML
	err := s.store.View(ctx, func(tx store.Tx) error {
		groups, err := s.listGroups(tx, account)
		if err != nil {
			return err
		}
		for _, g := range groups {
			for i, rule := range append(slices.Clone(g.Ingress), g.Egress...) {
				tags, err := loadTags(tx.Get(s.tagKey(r, rule.ID)))
				if err != nil {
					return err
				}
				all = append(all, ruleToXML(g, rule, i >= len(g.Ingress), tags))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	req := request(in.RuleIDs)
	out := describeRulesOutput{Rules: awsproto.List[ruleXML]{}}
	for _, x := range all {
		if !req.shows(x.SecurityGroupRuleID) {
			continue
		}
		ok := matchFilters(in.Filters, func(name string) []string {
			switch name {
			case "group-id":
				return []string{x.GroupID}
			case "security-group-rule-id":
				return []string{x.SecurityGroupRuleID}
			}
			return tagsOfXML(x.Tags).filterValues(name)
		})
		if ok {
			out.Rules = append(out.Rules, x)
		}
	}
	if err := req.notFound(func(id string) error {
		return clientError("InvalidSecurityGroupRuleId.NotFound", "The security group rule ID '%s' does not exist", id)
	}); err != nil {
		return nil, err
	}
	return out, nil
}

func tagsOfXML(l awsproto.List[Tag]) tagList {
	out := make(tagList, 0, len(l))
	for _, t := range l {
		out = append(out, storedTag{Key: *t.Key, Value: *t.Value})
	}
	return out
}

type modifyRulesInput struct {
	GroupID string `query:"GroupId"`
	Rules   []struct {
		RuleID string `query:"SecurityGroupRuleId"`
		Rule   *struct {
			IPProtocol        string `query:"IpProtocol"`
			FromPort          *int   `query:"FromPort"`
			ToPort            *int   `query:"ToPort"`
			CidrIpv4          string `query:"CidrIpv4"`
			CidrIpv6          string `query:"CidrIpv6"`
			PrefixListID      string `query:"PrefixListId"`
			ReferencedGroupID string `query:"ReferencedGroupId"`
			Description       string `query:"Description"`
		} `query:"SecurityGroupRule"`
	} `query:"SecurityGroupRule"`
	DryRun bool `query:"DryRun"`
}

func (s *Service) modifySecurityGroupRules(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in modifyRulesInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if in.GroupID == "" {
		return nil, missingParameter("GroupId")
	}
	if len(in.Rules) == 0 {
		return nil, missingParameter("SecurityGroupRule")
	}
	account := r.Caller.AccountID
	err := s.store.Update(ctx, func(tx store.Tx) error {
		g, err := s.resolveGroup(tx, account, in.GroupID, "")
		if err != nil {
			return err
		}
		for _, upd := range in.Rules {
			if upd.RuleID == "" || upd.Rule == nil {
				return missingParameter("SecurityGroupRule.SecurityGroupRuleId and SecurityGroupRule.SecurityGroupRule")
			}
			perm := ipPermission{IPProtocol: upd.Rule.IPProtocol, FromPort: upd.Rule.FromPort, ToPort: upd.Rule.ToPort}
			if upd.Rule.CidrIpv4 != "" {
				perm.IPRanges = append(perm.IPRanges, struct {
					CidrIP      string `query:"CidrIp"`
					Description string `query:"Description"`
				}{CidrIP: upd.Rule.CidrIpv4, Description: upd.Rule.Description})
			}
			if upd.Rule.ReferencedGroupID != "" {
				perm.Groups = append(perm.Groups, struct {
					GroupID     string `query:"GroupId"`
					GroupName   string `query:"GroupName"`
					UserID      string `query:"UserId"`
					VpcID       string `query:"VpcId"`
					Description string `query:"Description"`
				}{GroupID: upd.Rule.ReferencedGroupID, Description: upd.Rule.Description})
			}
			if upd.Rule.CidrIpv6 != "" || upd.Rule.PrefixListID != "" {
				perm.Ipv6Ranges = append(perm.Ipv6Ranges, struct {
					CidrIpv6    string `query:"CidrIpv6"`
					Description string `query:"Description"`
				}{CidrIpv6: upd.Rule.CidrIpv6})
			}
			rules, err := s.rulesOf(tx, account, []ipPermission{perm})
			if err != nil {
				return err
			}
			replaced := false
			for _, list := range []*[]sgRule{&g.Ingress, &g.Egress} {
				if i := slices.IndexFunc(*list, func(x sgRule) bool { return x.ID == upd.RuleID }); i >= 0 {
					rules[0].ID = upd.RuleID
					(*list)[i] = rules[0]
					replaced = true
				}
			}
			if !replaced {
				return clientError("InvalidSecurityGroupRuleId.NotFound", "The security group rule ID '%s' does not exist", upd.RuleID)
			}
		}
		if in.DryRun {
			return errDryRun
		}
		return s.putGroup(tx, g)
	})
	if err != nil {
		return nil, err
	}
	s.groupsChanged(account)
	return returnOutput{Return: true}, nil
}

// groupsChanged makes the running instances of an account enforce their groups' rules as they
// are now.
func (s *Service) groupsChanged(account string) {
	if s.fleet != nil {
		s.fleet.refreshFirewalls(account)
	}
}
