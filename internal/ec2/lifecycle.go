package ec2

import (
	"context"
	"encoding/base64"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

type instanceIDsInput struct {
	InstanceIDs    []string `query:"InstanceId"`
	Force          bool     `query:"Force"`
	Hibernate      bool     `query:"Hibernate"`
	SkipOsShutdown bool     `query:"SkipOsShutdown"`
	AdditionalInfo string   `query:"AdditionalInfo"`
	DryRun         bool     `query:"DryRun"`
}

type stateChange struct {
	InstanceID    string        `xml:"instanceId"`
	CurrentState  instanceState `xml:"currentState"`
	PreviousState instanceState `xml:"previousState"`
}

type stateChangeOutput struct {
	Instances awsproto.List[stateChange] `xml:"instancesSet"`
}

func stateOf(name string) instanceState { return instanceState{Code: stateCodes[name], Name: name} }

// changeStates applies change to every instance named, all or none: change returns the new state
// (or the same one for no change) or an error that refuses the whole request. Instances whose
// state changed are handed to then, after the transaction.
func (s *Service) changeStates(ctx context.Context, r *awsproto.Request, in instanceIDsInput,
	change func(*instance) (string, error), then func(instance)) (any, error) {
	if len(in.InstanceIDs) == 0 {
		return nil, missingParameter("InstanceId")
	}
	if err := checkInstanceIDs(in.InstanceIDs); err != nil {
		return nil, err
	}
	if s.fleet == nil && !in.DryRun {
		return nil, clientError("Unsupported", "Instances cannot run on this host: %s", s.noFleet)
	}
	var out stateChangeOutput
	var changed []instance
	err := s.store.Update(ctx, func(tx store.Tx) error {
		out.Instances, changed = nil, nil
		for _, id := range in.InstanceIDs {
			inst, err := s.getInstance(tx, r, id)
			if err != nil {
				return err
			}
			if s.expired(inst) {
				return instanceNotFound(id)
			}
			prev := inst.State
			next, err := change(&inst)
			if err != nil {
				return err
			}
			if in.DryRun {
				continue
			}
			if next != prev {
				inst.State = next
				if err := s.putInstance(tx, inst); err != nil {
					return err
				}
				changed = append(changed, inst)
			}
			out.Instances = append(out.Instances, stateChange{InstanceID: id, CurrentState: stateOf(next), PreviousState: stateOf(prev)})
		}
		if in.DryRun {
			return errDryRun
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, inst := range changed {
		then(inst)
	}
	return out, nil
}

func (s *Service) startInstances(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in instanceIDsInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	now := s.now()
	return s.changeStates(ctx, r, in, func(inst *instance) (string, error) {
		switch inst.State {
		case stateStopped:
			if _, err := s.fleetCapacity(inst); err != nil {
				return "", err
			}
			inst.StateReason, inst.StateReasonMsg, inst.TransitionReason = "", "", ""
			inst.LaunchTime = now.UTC()
			return statePending, nil
		case statePending, stateRunning:
			return inst.State, nil
		}
		return "", clientError("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be started.", inst.ID)
	}, func(inst instance) {
		t := s.fleet.track(inst.Account, inst.ID)
		s.fleet.goDo(func() { s.fleet.boot(t, false) })
	})
}

// fleetCapacity checks that the host can still give the instance's type (it may have been
// changed while stopped).
func (s *Service) fleetCapacity(inst *instance) (instanceType, error) {
	it, _ := lookupInstanceType(inst.Type)
	return it, s.checkCapacity(it, inst.Zone)
}

func (s *Service) stopInstances(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in instanceIDsInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if in.Hibernate {
		return nil, clientError("UnsupportedHibernationConfiguration", "The instance was not launched with hibernation enabled.")
	}
	now := s.now()
	return s.changeStates(ctx, r, in, func(inst *instance) (string, error) {
		switch inst.State {
		case stateRunning:
			if inst.DisableAPIStop {
				return "", clientError("OperationNotPermitted", "The instance '%s' may not be stopped. Modify its 'disableApiStop' instance attribute and try again.", inst.ID)
			}
			inst.TransitionReason = userTransition(now)
			return stateStopping, nil
		case stateStopping, stateStopped:
			return inst.State, nil
		}
		return "", clientError("IncorrectInstanceState", "This instance '%s' is not in a state from which it can be stopped.", inst.ID)
	}, func(inst instance) {
		t := s.fleet.track(inst.Account, inst.ID)
		s.fleet.goDo(func() { s.fleet.stop(t, in.Force) })
	})
}

func (s *Service) terminateInstances(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in instanceIDsInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	now := s.now()
	return s.changeStates(ctx, r, in, func(inst *instance) (string, error) {
		if inst.DisableAPITerm {
			return "", clientError("OperationNotPermitted", "The instance '%s' may not be terminated. Modify its 'disableApiTermination' instance attribute and try again.", inst.ID)
		}
		switch inst.State {
		case stateTerminated, stateShuttingDown:
			return inst.State, nil
		}
		inst.TransitionReason = userTransition(now)
		return stateShuttingDown, nil
	}, func(inst instance) {
		t := s.fleet.track(inst.Account, inst.ID)
		s.fleet.goDo(func() { s.fleet.terminate(t) })
	})
}

type rebootOutput struct {
	Return bool `xml:"return"`
}

func (s *Service) rebootInstances(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in instanceIDsInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	var running []instance
	_, err := s.changeStates(ctx, r, in, func(inst *instance) (string, error) {
		if inst.State != stateRunning && inst.State != statePending {
			return "", clientError("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be rebooted.", inst.ID)
		}
		running = append(running, *inst)
		return inst.State, nil
	}, func(instance) {})
	if err != nil {
		return nil, err
	}
	for _, inst := range running {
		if t := s.fleet.get(inst.ID); t != nil {
			t.mu.Lock()
			m := t.m
			t.mu.Unlock()
			if m != nil {
				if err := m.Reboot(ctx); err != nil {
					s.log.Error("reboot", "id", inst.ID, "err", err)
				}
			}
		}
	}
	return rebootOutput{Return: true}, nil
}

type describeInstanceStatusInput struct {
	InstanceIDs         []string `query:"InstanceId"`
	Filters             []Filter `query:"Filter"`
	IncludeAllInstances bool     `query:"IncludeAllInstances"`
	MaxResults          int      `query:"MaxResults"`
	NextToken           string   `query:"NextToken"`
	DryRun              bool     `query:"DryRun"`
}

type statusDetail struct {
	Name   string `xml:"name"`
	Status string `xml:"status"`
}

type statusSummary struct {
	Status  string                      `xml:"status"`
	Details awsproto.List[statusDetail] `xml:"details"`
}

type instanceStatusXML struct {
	InstanceID       string        `xml:"instanceId"`
	AvailabilityZone string        `xml:"availabilityZone"`
	InstanceState    instanceState `xml:"instanceState"`
	SystemStatus     statusSummary `xml:"systemStatus"`
	InstanceStatus   statusSummary `xml:"instanceStatus"`
}

type describeInstanceStatusOutput struct {
	Statuses  awsproto.List[instanceStatusXML] `xml:"instanceStatusSet"`
	NextToken string                           `xml:"nextToken,omitempty"`
}

// statusOf is an instance's status checks: passed once it runs (its init has reported the boot
// finished), initializing while it boots, not-applicable otherwise.
func statusOf(state string) statusSummary {
	switch state {
	case stateRunning:
		return statusSummary{Status: "ok", Details: awsproto.List[statusDetail]{{Name: "reachability", Status: "passed"}}}
	case statePending:
		return statusSummary{Status: "initializing", Details: awsproto.List[statusDetail]{{Name: "reachability", Status: "initializing"}}}
	}
	return statusSummary{Status: "not-applicable", Details: awsproto.List[statusDetail]{}}
}

var statusFilters = map[string]bool{"availability-zone": true, "instance-state-name": true, "instance-state-code": true,
	"system-status.status": true, "instance-status.status": true, "system-status.reachability": true,
	"instance-status.reachability": true}

func (s *Service) describeInstanceStatus(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in describeInstanceStatusInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if err := checkFilters(in.Filters, func(n string) bool { return statusFilters[n] }); err != nil {
		return nil, err
	}
	insts, _, err := s.selectInstances(ctx, r, in.InstanceIDs, nil)
	if err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	out := describeInstanceStatusOutput{Statuses: awsproto.List[instanceStatusXML]{}}
	for _, inst := range insts {
		if !in.IncludeAllInstances && inst.State != stateRunning {
			continue
		}
		st := statusOf(inst.State)
		ok := matchFilters(in.Filters, func(name string) []string {
			switch name {
			case "availability-zone":
				return []string{inst.Zone}
			case "system-status.status", "instance-status.status":
				return []string{st.Status}
			case "system-status.reachability", "instance-status.reachability":
				if len(st.Details) > 0 {
					return []string{st.Details[0].Status}
				}
				return nil
			}
			return inst.field(s, nil, name)
		})
		if ok {
			out.Statuses = append(out.Statuses, instanceStatusXML{InstanceID: inst.ID, AvailabilityZone: inst.Zone,
				InstanceState: stateOf(inst.State), SystemStatus: st, InstanceStatus: st})
		}
	}
	return out, nil
}

type getConsoleOutputInput struct {
	InstanceID string `query:"InstanceId"`
	Latest     bool   `query:"Latest"`
	DryRun     bool   `query:"DryRun"`
}

type getConsoleOutputOutput struct {
	InstanceID string `xml:"instanceId"`
	Timestamp  string `xml:"timestamp"`
	Output     string `xml:"output,omitempty"` // base64
}

// consoleMax is how much console output EC2 returns: the most recent 64 KB.
const consoleMax = 64 << 10

func (s *Service) getConsoleOutput(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in getConsoleOutputInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	inst, err := s.readInstance(ctx, r, in.InstanceID, in.DryRun)
	if err != nil {
		return nil, err
	}
	out := getConsoleOutputOutput{InstanceID: inst.ID, Timestamp: timestamp(s.now())}
	if s.fleet != nil && inst.State != stateTerminated {
		b, err := s.fleet.machines.Console(ctx, inst.ID, consoleMax)
		if err != nil {
			return nil, err
		}
		out.Output = base64.StdEncoding.EncodeToString(b)
	}
	return out, nil
}
