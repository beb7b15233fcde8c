package ec2

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nubis/nubis/internal/errdefs"
	"github.com/nubis/nubis/internal/firewall"
	"github.com/nubis/nubis/internal/image"
	"github.com/nubis/nubis/internal/machine"
	"github.com/nubis/nubis/internal/network"
	"github.com/nubis/nubis/internal/store"
	"github.com/nubis/nubis/internal/volume"
)

// InstancesConfig lets the service run instances.
type InstancesConfig struct {
	// Machines runs the instances.
	Machines machine.Driver
	// Images builds the built-in images' roots.
	Images *image.Builder
	// MaxInstances is the account's limit on instances that are not terminated (default 32).
	MaxInstances int
	// TerminatedTTL is how long a terminated instance stays visible (default one hour, as on AWS).
	TerminatedTTL time.Duration
	// ImageDir holds the layers of images made on this host (CreateImage, RegisterImage).
	ImageDir string
	// Volumes holds the EBS volumes' data.
	Volumes *volume.Store
	// StopGrace is how long a stop waits for the instance's processes to end before killing
	// them (default 3 s; StopInstances with Force kills at once).
	StopGrace time.Duration
}

// EnableInstances lets RunInstances launch instances with cfg. Call Start afterwards.
func (s *Service) EnableInstances(cfg InstancesConfig) {
	if cfg.MaxInstances > 0 {
		s.maxInstances = cfg.MaxInstances
	}
	if cfg.TerminatedTTL > 0 {
		s.terminatedTTL = cfg.TerminatedTTL
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = 3 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.fleet = &fleet{s: s, machines: cfg.Machines, images: cfg.Images, imageDir: cfg.ImageDir, volumes: cfg.Volumes, grace: cfg.StopGrace,
		log: s.log.With("part", "instances"), tracked: map[string]*tracked{}, ctx: ctx, cancel: cancel}
}

// DisableInstances records why this host cannot run instances; RunInstances says so.
func (s *Service) DisableInstances(why string) { s.noFleet = why }

// fleet runs the instances of this server: boots, watches and stops their machines and serves
// their metadata. Every change of an instance's state goes through the store.
type fleet struct {
	s        *Service
	machines machine.Driver
	images   *image.Builder
	imageDir string
	volumes  *volume.Store
	grace    time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	tracked map[string]*tracked
	// fwMu serialises refreshFirewalls, so that policies are applied in the order computed.
	fwMu   sync.Mutex
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

// tracked is the runtime side of one instance.
type tracked struct {
	id, account string
	// op serialises the operations on the instance (boot, stop, terminate).
	op sync.Mutex

	mu       sync.Mutex
	m        machine.Machine
	imds     *http.Server
	stopping bool // a stop or terminate asked for by the API (or reconciling) is under way
	// fwApplied is the firewall ruleset last applied to m (empty: unknown, apply again).
	fwApplied string
	// dns are the sockets of the VPC resolver served in the machine's network.
	dns []io.Closer
}

func (f *fleet) track(account, id string) *tracked {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tracked[id]
	if !ok {
		t = &tracked{id: id, account: account}
		f.tracked[id] = t
	}
	return t
}

func (f *fleet) get(id string) *tracked {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tracked[id]
}

// goDo runs fn in the background, counted for Close.
func (f *fleet) goDo(fn func()) {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		fn()
	}()
}

// update changes a stored instance with fn (fn returns false to leave it as it is).
func (f *fleet) update(account, id string, fn func(*instance) bool) (instance, error) {
	var out instance
	err := f.s.store.Update(context.WithoutCancel(f.ctx), func(tx store.Tx) error {
		inst, err := f.s.getInstanceOf(tx, account, id)
		if err != nil {
			return err
		}
		if !fn(&inst) {
			out = inst
			return nil
		}
		out = inst
		return f.s.putInstance(tx, inst)
	})
	return out, err
}

func (f *fleet) setState(account, id, from, to string, reason, msg string) {
	_, err := f.update(account, id, func(in *instance) bool {
		if from != "" && in.State != from {
			return false
		}
		in.State = to
		if reason != "" {
			in.StateReason, in.StateReasonMsg = reason, msg
		}
		if to == stateTerminated {
			in.TerminatedAt = f.s.now().UTC()
		}
		return true
	})
	if err != nil {
		f.log.Error("record instance state", "id", id, "state", to, "err", err)
	}
}

// launch boots a new (pending) instance in the background.
func (f *fleet) launch(inst instance) {
	t := f.track(inst.Account, inst.ID)
	f.goDo(func() { f.boot(t, true) })
}

// spec is the machine an instance boots as.
func (f *fleet) spec(ctx context.Context, inst instance) (machine.Spec, error) {
	layers := slices.Clone(inst.ImageLayers)
	if inst.BaseImage != "" {
		img, ok := lookupImage(inst.BaseImage)
		if !ok {
			return machine.Spec{}, fmt.Errorf("image %s: %w", inst.BaseImage, errdefs.ErrNotFound)
		}
		rootfs, err := f.images.Ensure(ctx, *img.Recipe)
		if err != nil {
			return machine.Spec{}, err
		}
		layers = append(layers, rootfs)
	}
	it, _ := lookupInstanceType(inst.Type)
	sn, ok := f.s.findSubnet(inst.Account, inst.SubnetID)
	if !ok {
		return machine.Spec{}, fmt.Errorf("subnet %s: %w", inst.SubnetID, errdefs.ErrNotFound)
	}
	addr, err := netip.ParseAddr(inst.PrivateIP)
	if err != nil {
		return machine.Spec{}, err
	}
	mac, err := net.ParseMAC(inst.MAC)
	if err != nil {
		return machine.Spec{}, err
	}
	var gws []netip.Prefix
	var siblings []subnet
	if err := f.s.store.View(ctx, func(tx store.Tx) (err error) {
		siblings, err = f.s.vpcSubnets(tx, inst.Account, sn.VPC.ID)
		return err
	}); err != nil {
		return machine.Spec{}, err
	}
	for _, other := range siblings {
		gws = append(gws, netip.PrefixFrom(gatewayOf(other.CIDR), other.CIDR.Bits()))
	}
	spec := machine.Spec{ID: inst.ID, Image: layers, DiskGiB: inst.RootGiB, RootVolume: f.rootVolumeOf(ctx, inst), CPUs: float64(it.VCPUs),
		MemoryMB: int(it.MemoryMiB), Hostname: hostnameOf(inst.PrivateIP), Domain: f.s.dnsDomain(),
		Nameserver: network.ResolverAddr.Addr().String(),
		Network: machine.Network{Bridge: network.BridgeName(inst.VPCID), Gateways: gws,
			Address: netip.PrefixFrom(addr, sn.CIDR.Bits()), Gateway: gatewayOf(sn.CIDR), VPC: sn.VPC.CIDR, MAC: mac},
		DefaultUser: "ec2-user", UserData: inst.UserData}
	if inst.PublicKey != "" {
		spec.PublicKeys = []string{inst.PublicKey}
	}
	pols, err := f.s.policies(ctx, inst.Account)
	if err != nil {
		return machine.Spec{}, err
	}
	spec.Firewall = pols[inst.ID]
	return spec, nil
}

// boot boots a pending instance and waits for it to be ready (running) or to stop.
func (f *fleet) boot(t *tracked, first bool) {
	t.op.Lock()
	defer t.op.Unlock()
	f.bootLocked(t, first)
}

// bootLocked is boot for a caller that holds t.op.
func (f *fleet) bootLocked(t *tracked, first bool) {
	inst, err := f.update(t.account, t.id, func(*instance) bool { return false })
	if err != nil || inst.State != statePending {
		return
	}
	spec, err := f.spec(f.ctx, inst)
	var m machine.Machine
	if err == nil {
		m, err = f.machines.Boot(f.ctx, spec)
	}
	if err != nil {
		f.log.Error("instance failed to boot", "id", t.id, "err", err)
		if first {
			f.machines.DeleteDisk(context.WithoutCancel(f.ctx), t.id)
			f.releaseVolumes(t.account, t.id)
			f.setState(t.account, t.id, statePending, stateTerminated, "Server.InternalError", "Server.InternalError: Internal error on launch: "+err.Error())
		} else {
			f.setState(t.account, t.id, statePending, stateStopped, "Server.InternalError", "Server.InternalError: Internal error on start: "+err.Error())
		}
		return
	}
	f.attach(t, m)
	if text, err := firewall.Render(spec.Firewall); err == nil {
		t.mu.Lock()
		t.fwApplied = text // Boot applied it
		t.mu.Unlock()
	}
	f.mountVolumes(inst, m)
	// Its address joins its groups: the instances that allow those groups learn it.
	f.goDo(func() { f.refreshFirewalls(t.account) })
	select {
	case <-m.Ready():
		f.setState(t.account, t.id, statePending, stateRunning, "", "")
		f.update(t.account, t.id, func(in *instance) bool {
			in.StateReason, in.StateReasonMsg, in.TransitionReason = "", "", ""
			return true
		})
		f.log.Info("instance running", "id", t.id, "boot", time.Since(inst.LaunchTime).Round(time.Millisecond))
	case <-m.Done():
	case <-f.ctx.Done():
	}
}

// attach takes a running machine into the fleet: serves its metadata and watches for its end.
func (f *fleet) attach(t *tracked, m machine.Machine) {
	t.mu.Lock()
	t.m, t.stopping, t.fwApplied = m, false, ""
	t.mu.Unlock()
	f.serveMetadata(t, m)
	f.serveDNS(t, m)
	f.goDo(func() { f.watch(t, m) })
}

// watch waits for a machine to stop; one that stops by itself (shutdown inside, or a crash) is
// stopped or terminated as its InstanceInitiatedShutdownBehavior says.
func (f *fleet) watch(t *tracked, m machine.Machine) {
	select {
	case <-m.Done():
	case <-f.ctx.Done():
		return
	}
	t.mu.Lock()
	if t.imds != nil {
		t.imds.Close()
		t.imds = nil
	}
	for _, c := range t.dns {
		c.Close()
	}
	t.dns = nil
	userStop := t.stopping
	if t.m == m {
		t.m = nil
	}
	t.mu.Unlock()
	if userStop {
		return // the API's stop or terminate goes on from here
	}
	f.goDo(func() { f.stoppedByItself(t, m.Exit()) })
}

func (f *fleet) stoppedByItself(t *tracked, exit machine.Exit) {
	t.op.Lock()
	defer t.op.Unlock()
	inst, err := f.update(t.account, t.id, func(*instance) bool { return false })
	if err != nil || inst.State == stateStopped || inst.State == stateTerminated {
		return
	}
	reason, msg := "Client.InstanceInitiatedShutdown", "Client.InstanceInitiatedShutdown: Instance initiated shutdown"
	if exit.Reason == machine.ExitCrash {
		reason, msg = "Server.InternalError", "Server.InternalError: Internal error: the instance's init ended"
	}
	f.log.Info("instance stopped by itself", "id", t.id, "exit", exit.Reason, "behavior", inst.ShutdownBehavior)
	if inst.ShutdownBehavior == "terminate" && exit.Reason == machine.ExitPoweroff {
		f.setState(t.account, t.id, "", stateShuttingDown, reason, msg)
		f.finishTerminate(t, inst)
		return
	}
	f.setState(t.account, t.id, "", stateStopped, reason, msg)
	f.update(t.account, t.id, func(in *instance) bool {
		in.TransitionReason = "Client.InstanceInitiatedShutdown"
		return true
	})
	f.refreshFirewalls(t.account)
}

// shutdown stops a running machine (grace 0: kill at once).
func (f *fleet) shutdown(t *tracked, grace time.Duration) {
	t.mu.Lock()
	m := t.m
	t.stopping = true
	t.mu.Unlock()
	if m == nil {
		f.machines.Cleanup(context.WithoutCancel(f.ctx), t.id)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(f.ctx), grace+time.Minute)
	defer cancel()
	if err := m.Shutdown(ctx, grace); err != nil {
		f.log.Error("stop instance", "id", t.id, "err", err)
		f.machines.Cleanup(ctx, t.id)
	}
	f.unmountVolumes(t.account, t.id)
}

// stop stops an instance the API has marked stopping.
func (f *fleet) stop(t *tracked, force bool) {
	t.op.Lock()
	defer t.op.Unlock()
	grace := f.grace
	if force {
		grace = 0
	}
	f.shutdown(t, grace)
	f.setState(t.account, t.id, stateStopping, stateStopped, "Client.UserInitiatedShutdown", "Client.UserInitiatedShutdown: User initiated shutdown")
	f.refreshFirewalls(t.account)
}

// terminate ends an instance the API has marked shutting-down, and deletes its disk.
func (f *fleet) terminate(t *tracked) {
	t.op.Lock()
	defer t.op.Unlock()
	inst, err := f.update(t.account, t.id, func(*instance) bool { return false })
	if err != nil {
		return
	}
	f.shutdown(t, f.grace)
	f.finishTerminate(t, inst)
}

func (f *fleet) finishTerminate(t *tracked, inst instance) {
	f.releaseVolumes(t.account, t.id)
	// The root volume goes with the instance (volumes that outlive it arrive with EBS).
	if err := f.machines.DeleteDisk(context.WithoutCancel(f.ctx), t.id); err != nil {
		f.log.Error("delete instance disk", "id", t.id, "err", err)
	}
	f.setState(t.account, t.id, stateShuttingDown, stateTerminated, "Client.UserInitiatedShutdown", "Client.UserInitiatedShutdown: User initiated shutdown")
	f.mu.Lock()
	delete(f.tracked, t.id)
	f.mu.Unlock()
	f.refreshFirewalls(t.account)
	f.collectLayers(context.WithoutCancel(f.ctx))
}

// close stops serving metadata and watching; the machines keep running (and are taken back at
// the next start).
func (f *fleet) close() {
	f.cancel()
	f.mu.Lock()
	for _, t := range f.tracked {
		t.mu.Lock()
		if t.imds != nil {
			t.imds.Close()
		}
		for _, c := range t.dns {
			c.Close()
		}
		t.mu.Unlock()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// checkCapacity refuses an instance type this host cannot give.
func (s *Service) checkCapacity(it instanceType, zone string) error {
	cpus, mem := runtime.NumCPU(), hostMemoryMiB()
	if it.VCPUs > cpus || mem > 0 && it.MemoryMiB > mem {
		return clientError("InsufficientInstanceCapacity",
			"We currently do not have sufficient %s capacity in the Availability Zone you requested (%s). This host has %d vCPUs and %d MiB of memory; %s needs %d vCPUs and %d MiB. Choose a smaller instance type.",
			it.Name, zone, cpus, mem, it.Name, it.VCPUs, it.MemoryMiB)
	}
	return nil
}

func hostMemoryMiB() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb / 1024
		}
	}
	return 0
}

// expired tells whether a terminated instance has been gone long enough to disappear.
func (s *Service) expired(inst instance) bool {
	return inst.State == stateTerminated && !inst.TerminatedAt.IsZero() && s.now().Sub(inst.TerminatedAt) > s.terminatedTTL
}

// machineExitUnknown is the exit of a machine found stopped at start: most likely shut down
// from inside while nubis was not running.
func machineExitUnknown() machine.Exit {
	return machine.Exit{Reason: machine.ExitPoweroff, At: time.Now()}
}
