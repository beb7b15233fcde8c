package ec2

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/nubis/nubis/internal/firewall"
	"github.com/nubis/nubis/internal/store"
)

// Security groups are enforced inside each instance's own network namespace (package firewall):
// an instance's policy is the union of its groups' rules, a rule whose peer is a group allowing
// the addresses of that group's instances. Every change of a group, and every instance that
// starts or stops (it joins or leaves its groups' member sets), recomputes the policies of the
// account's running instances.

// activeState tells whether an instance has (or is about to have) a running machine whose
// address is a member of its groups.
func activeState(state string) bool {
	return state == statePending || state == stateRunning || state == stateStopping
}

// policies computes the firewall policy of each of an account's instances.
func (s *Service) policies(ctx context.Context, account string) (map[string]firewall.Policy, error) {
	var groups []secGroup
	var insts []instance
	err := s.store.View(ctx, func(tx store.Tx) error {
		var err error
		if groups, err = s.listGroups(tx, account); err != nil {
			return err
		}
		insts, err = s.listInstancesTx(tx, account)
		return err
	})
	if err != nil {
		return nil, err
	}
	byID := map[string]secGroup{}
	for _, g := range groups {
		byID[g.ID] = g
	}
	members := map[string][]netip.Addr{}
	for _, inst := range insts {
		a, err := netip.ParseAddr(inst.PrivateIP)
		if err != nil || !activeState(inst.State) {
			continue
		}
		for _, g := range inst.Groups {
			members[g] = append(members[g], a)
		}
	}
	convert := func(rules []sgRule) []firewall.Rule {
		var out []firewall.Rule
		for _, r := range rules {
			fr := firewall.Rule{Protocol: r.Protocol, FromPort: r.FromPort, ToPort: r.ToPort}
			if r.CIDR != "" {
				fr.CIDR = netip.MustParsePrefix(r.CIDR)
			} else {
				fr.Addrs = slices.Clone(members[r.Group])
				if fr.Addrs == nil {
					fr.Addrs = []netip.Addr{}
				}
			}
			out = append(out, fr)
		}
		return out
	}
	out := map[string]firewall.Policy{}
	for _, inst := range insts {
		if inst.State == stateTerminated {
			continue
		}
		var p firewall.Policy
		for _, gid := range inst.Groups {
			g, ok := byID[gid]
			if !ok {
				continue
			}
			p.Ingress = append(p.Ingress, convert(g.Ingress)...)
			p.Egress = append(p.Egress, convert(g.Egress)...)
		}
		out[inst.ID] = p
	}
	return out, nil
}

// refreshFirewalls applies the current policies to the account's running machines.
func (f *fleet) refreshFirewalls(account string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(f.ctx), 30*time.Second)
	defer cancel()
	f.fwMu.Lock()
	defer f.fwMu.Unlock()
	pols, err := f.s.policies(ctx, account)
	if err != nil {
		f.log.Error("compute security group policies", "account", account, "err", err)
		return
	}
	f.mu.Lock()
	var ts []*tracked
	for _, t := range f.tracked {
		if t.account == account {
			ts = append(ts, t)
		}
	}
	f.mu.Unlock()
	for _, t := range ts {
		t.mu.Lock()
		m, applied := t.m, t.fwApplied
		t.mu.Unlock()
		p, ok := pols[t.id]
		if m == nil || !ok {
			continue
		}
		// Only where the policy changed: an instance joining a group changes only the
		// policies that name that group as a source.
		text, err := firewall.Render(p)
		if err == nil && text == applied {
			continue
		}
		if err := m.ApplyFirewall(ctx, p); err != nil {
			f.log.Error("apply security groups", "id", t.id, "err", err)
			continue
		}
		t.mu.Lock()
		if t.m == m {
			t.fwApplied = text
		}
		t.mu.Unlock()
	}
}
