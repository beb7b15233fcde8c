// Package machinetest is the conformance suite every machine.Driver backend runs: boot, readiness,
// network and firewall, reboot, stop, a second boot from the same disk, taking a running machine
// back in a new driver (as after a restart of nubis), and deleting the disk.
package machinetest

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/nubis/nubis/internal/errdefs"
	"github.com/nubis/nubis/internal/firewall"
	"github.com/nubis/nubis/internal/machine"
)

// Env is what the suite needs from a backend's test.
type Env struct {
	// New returns a driver over the same state each time it is called (a second call plays a
	// restart of nubis).
	New func(t *testing.T) machine.Driver
	// Spec is a bootable machine (its id unused yet) whose address the host reaches, running
	// sshd on port 22.
	Spec machine.Spec
}

func ready(t *testing.T, m machine.Machine) {
	t.Helper()
	select {
	case <-m.Ready():
	case <-m.Done():
		t.Fatalf("machine %s stopped before it was ready: %+v", m.ID(), m.Exit())
	case <-time.After(time.Minute):
		t.Fatalf("machine %s not ready within a minute", m.ID())
	}
}

func reachable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// Run runs the suite.
func Run(t *testing.T, env Env) {
	ctx := context.Background()
	d := env.New(t)
	spec := env.Spec
	ssh := net.JoinHostPort(spec.Network.Address.Addr().String(), "22")
	any := netip.MustParsePrefix("0.0.0.0/0")
	spec.Firewall = firewall.Policy{Ingress: []firewall.Rule{{Protocol: "tcp", FromPort: 22, ToPort: 22, CIDR: any}},
		Egress: []firewall.Rule{{Protocol: "-1", CIDR: any}}}

	m, err := d.Boot(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Cleanup(context.Background(), spec.ID)
		d.DeleteDisk(context.Background(), spec.ID)
	})
	ready(t, m)
	if _, err := d.Boot(ctx, spec); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("booting a running machine: %v, want ErrAlreadyExists", err)
	}
	if ids, err := d.Running(ctx); err != nil || !slices.Contains(ids, spec.ID) {
		t.Fatalf("Running: %v %v", ids, err)
	}
	if !reachable(ssh) {
		t.Fatal("port 22 of a ready machine is not reachable")
	}

	// The firewall: nothing in, then port 22 again.
	if err := m.ApplyFirewall(ctx, firewall.Policy{}); err != nil {
		t.Fatal(err)
	}
	if reachable(ssh) {
		t.Fatal("port 22 reachable with no ingress rule")
	}
	if err := m.ApplyFirewall(ctx, spec.Firewall); err != nil {
		t.Fatal(err)
	}
	if !reachable(ssh) {
		t.Fatal("port 22 not reachable with a rule for it")
	}

	// Sockets inside the machine's network, served from here.
	l, err := m.Listen(ctx, "tcp", "169.254.169.254:8080")
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	pc, err := m.ListenPacket(ctx, "udp", "169.254.169.253:5353")
	if err != nil {
		t.Fatal(err)
	}
	pc.Close()
	dir, err := m.VolumeDir("sdf")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("VolumeDir: %v", err)
	}
	if _, err := m.VolumeDir("../etc"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("VolumeDir of a bad device: %v", err)
	}

	// Reboot: ready again, still running.
	if err := m.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	ready(t, m)

	// Stop: its processes end, its disk stays.
	if err := m.Shutdown(ctx, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	<-m.Done()
	if m.Exit().Reason != machine.ExitStop {
		t.Fatalf("exit after Shutdown: %+v", m.Exit())
	}
	if ids, _ := d.Running(ctx); slices.Contains(ids, spec.ID) {
		t.Fatal("a stopped machine is listed as running")
	}
	if ids, _ := d.Disks(ctx); !slices.Contains(ids, spec.ID) {
		t.Fatal("a stopped machine has lost its disk")
	}
	if reachable(ssh) {
		t.Fatal("port 22 of a stopped machine is reachable")
	}
	if _, err := d.Attach(ctx, spec.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Attach of a stopped machine: %v, want ErrNotFound", err)
	}
	if out, err := d.Console(ctx, spec.ID, 64<<10); err != nil || len(out) == 0 {
		t.Fatalf("console: %v, %d bytes", err, len(out))
	}
	layer := t.TempDir() + "/layer"
	if err := d.CopyDisk(ctx, spec.ID, layer); err != nil {
		t.Fatal(err)
	}
	if entries, err := os.ReadDir(layer); err != nil || len(entries) == 0 {
		t.Fatalf("CopyDisk: %v, %d entries", err, len(entries))
	}

	// Boot again from the same disk; then a new driver (a restart of nubis) takes it back.
	m, err = d.Boot(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	ready(t, m)
	d2 := env.New(t)
	m2, err := d2.Attach(ctx, spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	ready(t, m2)
	if !reachable(ssh) {
		t.Fatal("port 22 not reachable after taking the machine back")
	}
	if err := m2.Shutdown(ctx, 0); err != nil { // forced
		t.Fatal(err)
	}
	<-m2.Done()
	<-m.Done() // the first driver, still watching too, has finished its own clean-up
	if err := d2.DeleteDisk(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	if ids, _ := d2.Disks(ctx); slices.Contains(ids, spec.ID) {
		t.Fatal("DeleteDisk left the disk")
	}
}
