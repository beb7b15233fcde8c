package ec2

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/nubis/nubis/internal/errdefs"
	"github.com/nubis/nubis/internal/network"
	"github.com/nubis/nubis/internal/store"
)

// Start reconciles the instances in the store with the machines that run on this host, as after a
// restart of nubis (a crash included): it takes back the machines of instances that should run,
// finishes the stops and terminations that were under way, continues interrupted launches, and
// removes machines and disks no instance owns. Then it starts the sweeper that lets terminated
// instances disappear.
func (s *Service) Start(ctx context.Context) error {
	f := s.fleet
	if f == nil {
		return nil
	}
	insts, err := s.allInstances(ctx)
	if err != nil {
		return err
	}
	running, err := f.machines.Running(ctx)
	if err != nil {
		return err
	}
	disks, err := f.machines.Disks(ctx)
	if err != nil {
		return err
	}
	known := map[string]instance{}
	for _, inst := range insts {
		known[inst.ID] = inst
	}
	// Machines and disks of no instance (or of terminated ones).
	for _, id := range append(slices.Clone(running), disks...) {
		inst, ok := known[id]
		if ok && inst.State != stateTerminated {
			continue
		}
		f.log.Info("removing an instance's leftovers", "id", id)
		if err := f.machines.Cleanup(ctx, id); err != nil {
			f.log.Error("clean up machine", "id", id, "err", err)
		}
		if err := f.machines.DeleteDisk(ctx, id); err != nil {
			f.log.Error("delete disk", "id", id, "err", err)
		}
	}
	for _, inst := range insts {
		if inst.State == stateTerminated {
			continue
		}
		t := f.track(inst.Account, inst.ID)
		isRunning := slices.Contains(running, inst.ID)
		if isRunning {
			m, err := f.machines.Attach(ctx, inst.ID)
			switch {
			case err == nil:
				f.attach(t, m)
				f.log.Info("instance taken back", "id", inst.ID, "state", inst.State)
			case errors.Is(err, errdefs.ErrNotFound):
				isRunning = false
				f.machines.Cleanup(ctx, inst.ID)
			default:
				f.log.Error("take back instance", "id", inst.ID, "err", err)
				isRunning = false
				f.machines.Cleanup(ctx, inst.ID)
			}
		}
		switch inst.State {
		case statePending:
			if isRunning {
				t.mu.Lock()
				m := t.m
				t.mu.Unlock()
				f.goDo(func() {
					select {
					case <-m.Ready():
						f.setState(t.account, t.id, statePending, stateRunning, "", "")
					case <-m.Done():
					case <-f.ctx.Done():
					}
				})
			} else {
				f.goDo(func() { f.boot(t, !slices.Contains(disks, inst.ID)) })
			}
		case stateRunning:
			if !isRunning {
				// It stopped while nubis was not watching: from inside (shutdown), or the host
				// restarted.
				f.goDo(func() { f.stoppedByItself(t, machineExitUnknown()) })
			}
		case stateStopping:
			f.goDo(func() { f.stop(t, false) })
		case stateShuttingDown:
			f.goDo(func() { f.terminate(t) })
		case stateStopped:
			if isRunning {
				f.goDo(func() { f.stop(t, false) })
			}
		}
	}
	// The firewalls are rebuilt from the store: whatever changed while nubis was away holds now.
	accounts := map[string]bool{}
	for _, inst := range insts {
		accounts[inst.Account] = true
	}
	for a := range accounts {
		f.refreshFirewalls(a)
	}
	if f.volumes != nil {
		// Loop devices a crash left without a mount, half-made files, frozen snapshots.
		if err := f.volumes.Cleanup(ctx, nil); err != nil {
			f.log.Warn("clean up volumes", "err", err)
		}
	}
	f.collectLayers(ctx)
	f.goDo(f.sweep)
	return nil
}

// sweep deletes terminated instances once they have been visible for terminatedTTL.
func (f *fleet) sweep() {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-tick.C:
		}
		insts, err := f.s.allInstances(f.ctx)
		if err != nil {
			continue
		}
		for _, inst := range insts {
			if !f.s.expired(inst) {
				continue
			}
			err := f.s.store.Update(f.ctx, func(tx store.Tx) error {
				if err := tx.Delete(f.s.instanceKey(inst.Account, inst.ID)); err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
				return putTags(tx, "ec2/"+inst.Account+"/"+f.s.region+"/tags/"+inst.ID, nil)
			})
			if err != nil {
				f.log.Error("forget terminated instance", "id", inst.ID, "err", err)
			}
		}
	}
}

// Close stops the service's background work; instances keep running and are taken back by the
// next Start.
func (s *Service) Close() {
	if s.fleet == nil {
		return
	}
	s.fleet.close()
	// With nothing running, the host setup of the machines goes too.
	if r, ok := s.fleet.machines.(interface {
		Release(context.Context, []string) error
	}); ok {
		insts, _ := s.allInstances(context.Background())
		var bridges []string
		for _, inst := range insts {
			if b := network.BridgeName(inst.VPCID); !slices.Contains(bridges, b) {
				bridges = append(bridges, b)
			}
		}
		if err := r.Release(context.Background(), bridges); err != nil {
			s.log.Warn("release the instances' host setup", "err", err)
		}
	}
}
