package container

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/nubis/nubis/internal/image"
	"github.com/nubis/nubis/internal/machine"
	"github.com/nubis/nubis/internal/machine/machinetest"
	"github.com/nubis/nubis/internal/netns"
	"github.com/nubis/nubis/internal/network"
	"github.com/nubis/nubis/internal/sandbox/runc"
	"github.com/nubis/nubis/internal/testenv"
	"github.com/nubis/nubis/internal/volume"
)

// TestConformance runs the machine suite on system containers under runc, booted from the default
// EC2 image, on a VPC bridge of its own (10.251.0.0/16, a block hosts rarely use).
func TestConformance(t *testing.T) {
	testenv.Need(t, os.Geteuid() == 0, "machines need root")
	_, err := exec.LookPath("runc")
	testenv.Need(t, err == nil, "machines need runc")
	_, err = exec.LookPath("nft")
	testenv.Need(t, err == nil, "machines need nft")
	testenv.LockInstances(t)
	ctx := context.Background()
	rootfs, err := (&image.Builder{}).Ensure(ctx, image.EC2Default)
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	sum := sha256.Sum256([]byte(state))
	nsDir := filepath.Join("/run/nubis", "test-"+hex.EncodeToString(sum[:6]))
	table := "nubistest" + hex.EncodeToString(sum[:4])
	vols := &volume.Store{Dir: filepath.Join(state, "volumes")}
	newDriver := func(t *testing.T) machine.Driver {
		sb, err := runc.New(ctx, runc.Config{StateDir: filepath.Join(state, "sandboxes"), CgroupParent: "nubis-test",
			Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		d, err := New(Config{Dir: filepath.Join(state, "machines"), Sandboxes: sb, NetNSDir: nsDir, HostTable: table, Volumes: vols})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	bridge := network.BridgeName("vpc-conformance-" + hex.EncodeToString(sum[:4]))
	t.Cleanup(func() {
		network.RemoveHostRules(context.Background(), table)
		network.RemoveBridge(context.Background(), bridge)
		netns.Release(nsDir)
	})
	id := "i-0" + hex.EncodeToString(sum[:8])
	machinetest.Run(t, machinetest.Env{New: newDriver, Spec: machine.Spec{
		ID: id, Image: []string{rootfs}, DiskGiB: 1, RootVolume: "vol-0" + hex.EncodeToString(sum[:8]),
		CPUs: 1, MemoryMB: 512, Hostname: "ip-10-251-0-10", Domain: "ec2.internal", DefaultUser: "ec2-user",
		Network: machine.Network{Bridge: bridge, Gateways: []netip.Prefix{netip.MustParsePrefix("10.251.0.1/24")},
			Address: netip.MustParsePrefix("10.251.0.10/24"), Gateway: netip.MustParseAddr("10.251.0.1"),
			VPC: netip.MustParsePrefix("10.251.0.0/16"), MAC: network.MAC(id)},
	}})
}
