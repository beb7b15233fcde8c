// Package container is the machine backend that runs each EC2 instance as a system container
// under an OCI runtime (through a sandbox.Driver in System mode, runc here).
//
// An instance's disk is an overlayfs: the image's root, built once and shared read-only by every
// instance of it, under a per-instance upper directory that takes the instance's writes, so ten
// instances of one image do not copy it ten times; the upper directory is the disk, kept while
// the instance is stopped. Its init (PID 1) is nubis's own small init (package guestinit): the
// nubis binary bind-mounted at /run/nubis-init, which starts sshd, applies the key pair and runs
// the user data. Each instance has its own network namespace linked to its VPC's bridge (package
// network), where nubis serves the instance metadata service.
//
// Layout under the driver's directory, per instance id:
//
//	<id>/machine.json   what the disk was made from, and the network namespace while it runs
//	<id>/disk/upper     the instance's writes (its disk) and disk/work, overlayfs's work dir
//	<id>/rootfs         the overlay mount while the instance runs
//	<id>/guest          instance.json and user-data, read-only at /run/nubis in the instance
//	<id>/state          written by the init (ready, exit), at /run/nubis/state
//	<id>/console.log    the console: the init's output
package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/nubis/nubis/internal/errdefs"
	"github.com/nubis/nubis/internal/firewall"
	"github.com/nubis/nubis/internal/guestinit"
	"github.com/nubis/nubis/internal/machine"
	"github.com/nubis/nubis/internal/mountinfo"
	"github.com/nubis/nubis/internal/netns"
	"github.com/nubis/nubis/internal/network"
	"github.com/nubis/nubis/internal/sandbox"
	"github.com/nubis/nubis/internal/sandbox/revert"
	"github.com/nubis/nubis/internal/volume"
)

// Config configures a Driver.
type Config struct {
	// Dir holds the instances' disks and state (for example <data-dir>/instances). Required.
	Dir string
	// Sandboxes runs the instances' containers; it should be the instances' own (its List is
	// taken to be instances only).
	Sandboxes sandbox.Driver
	// NetNSDir pins the instances' network namespaces; it must not be shared with anything
	// that cleans its namespaces up at start (see netns.Cleanup).
	NetNSDir string
	// InitBinary is the init bind-mounted into each instance; os.Executable() when empty (any
	// binary that links package guestinit can be the init).
	InitBinary string
	// PidsLimit limits the processes and threads of one instance; 32768 when 0.
	PidsLimit int
	// Volumes, when set, holds the machines' root volumes (Spec.RootVolume): a machine's layer
	// then lives on an ext4 volume of Spec.DiskGiB, so its size is enforced.
	Volumes *volume.Store
	// HostTable names the host's nftables table of this driver (outbound NAT for the VPCs, no
	// forwarding between them; see network.ApplyHostRules); "nubis" when empty.
	HostTable string
	Log       *slog.Logger
}

// Driver is a machine.Driver of system containers. It is safe for concurrent use.
type Driver struct {
	cfg Config
	log *slog.Logger

	locksMu sync.Mutex
	locks   map[string]*sync.Mutex
}

var _ machine.Driver = (*Driver)(nil)

var idRE = regexp.MustCompile(`^i-[0-9a-f]{8,17}$`)

// New returns a driver; it creates Config.Dir.
func New(cfg Config) (*Driver, error) {
	if !filepath.IsAbs(cfg.Dir) || !filepath.IsAbs(cfg.NetNSDir) || cfg.Sandboxes == nil {
		return nil, fmt.Errorf("container machines: Dir and NetNSDir must be absolute and Sandboxes set: %w", errdefs.ErrInvalidArgument)
	}
	if cfg.InitBinary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("container machines: init binary: %w", err)
		}
		cfg.InitBinary = exe
	}
	if cfg.PidsLimit == 0 {
		cfg.PidsLimit = 32768
	}
	if cfg.HostTable == "" {
		cfg.HostTable = "nubis"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("container machines: %w", err)
	}
	// sshd runs the init binary as EC2 Instance Connect's AuthorizedKeysCommand only if root owns
	// it and no one else may write it.
	if fi, err := os.Stat(cfg.InitBinary); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && (st.Uid != 0 || fi.Mode().Perm()&0o022 != 0) {
			cfg.Log.Warn("EC2 Instance Connect will not work: sshd refuses a key command that root does not own or others may write",
				"binary", cfg.InitBinary, "mode", fi.Mode().Perm().String(), "uid", st.Uid)
		}
	}
	return &Driver{cfg: cfg, log: cfg.Log.With("component", "machines"), locks: map[string]*sync.Mutex{}}, nil
}

// lock serialises the operations on one machine.
func (d *Driver) lock(id string) func() {
	d.locksMu.Lock()
	mu, ok := d.locks[id]
	if !ok {
		mu = &sync.Mutex{}
		d.locks[id] = mu
	}
	d.locksMu.Unlock()
	mu.Lock()
	return mu.Unlock
}

func (d *Driver) dir(id string) string { return filepath.Join(d.cfg.Dir, id) }

// record is machine.json.
type record struct {
	Image []string `json:"image"` // the lower dirs of the disk, top first
	// RootVolume is the volume (in Config.Volumes) the disk's layer lives on; empty for a plain
	// directory.
	RootVolume string `json:"rootVolume,omitempty"`
	// While it runs:
	NetNS   string          `json:"netns,omitempty"`
	HostIf  string          `json:"hostIf,omitempty"`
	Network machine.Network `json:"network"`
}

func (d *Driver) readRecord(id string) (record, error) {
	var rec record
	b, err := os.ReadFile(filepath.Join(d.dir(id), "machine.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return rec, fmt.Errorf("machine %s: %w", id, errdefs.ErrNotFound)
		}
		return rec, fmt.Errorf("machine %s: %w", id, err)
	}
	return rec, json.Unmarshal(b, &rec)
}

func (d *Driver) writeRecord(id string, rec record) error {
	b, _ := json.MarshalIndent(rec, "", "  ")
	tmp := filepath.Join(d.dir(id), ".machine.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("machine %s: %w", id, err)
	}
	if err := os.Rename(tmp, filepath.Join(d.dir(id), "machine.json")); err != nil {
		return fmt.Errorf("machine %s: %w", id, err)
	}
	return nil
}

// Boot creates the disk if needed, links the network and starts the container.
func (d *Driver) Boot(ctx context.Context, spec machine.Spec) (machine.Machine, error) {
	if !idRE.MatchString(spec.ID) {
		return nil, fmt.Errorf("machine id %q: %w", spec.ID, errdefs.ErrInvalidArgument)
	}
	unlock := d.lock(spec.ID)
	defer unlock()
	id, dir := spec.ID, d.dir(spec.ID)
	if ids, err := d.cfg.Sandboxes.List(ctx); err != nil {
		return nil, err
	} else if slices.Contains(ids, id) {
		return nil, fmt.Errorf("machine %s runs already: %w", id, errdefs.ErrAlreadyExists)
	}

	rev := revert.New()
	defer rev.Fail()
	rec, err := d.readRecord(id)
	first := errors.Is(err, errdefs.ErrNotFound)
	switch {
	case first:
		// First boot: the disk.
		if len(spec.Image) == 0 {
			return nil, fmt.Errorf("machine %s: no image: %w", id, errdefs.ErrInvalidArgument)
		}
		for _, layer := range spec.Image {
			if fi, err := os.Stat(layer); err != nil || !fi.IsDir() {
				return nil, fmt.Errorf("machine %s: image layer %s: %w", id, layer, errdefs.ErrInvalidArgument)
			}
		}
		for _, sub := range []string{"disk/upper", "disk/work", "rootfs", "guest/state", "state", "volumes"} {
			if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
				return nil, fmt.Errorf("machine %s: %w", id, err)
			}
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("machine %s: %w", id, err)
		}
		rec = record{Image: spec.Image}
		rev.Add(func() { os.RemoveAll(dir) })
		if spec.RootVolume != "" && d.cfg.Volumes != nil {
			if !d.cfg.Volumes.Exists(spec.RootVolume) {
				if err := d.cfg.Volumes.Create(ctx, spec.RootVolume, max(spec.DiskGiB, 1)); err != nil {
					return nil, fmt.Errorf("machine %s: root volume: %w", id, err)
				}
			}
			rec.RootVolume = spec.RootVolume
		}
	case err != nil:
		return nil, err
	}

	// The disk, mounted: its root volume first, then the overlay.
	if err := d.mountRootVolume(ctx, id, rec); err != nil {
		return nil, err
	}
	rev.Add(func() { d.unmountRootVolume(context.WithoutCancel(ctx), rec) })
	rootfs := filepath.Join(dir, "rootfs")
	if err := mountOverlay(rec.Image, filepath.Join(dir, "disk"), rootfs); err != nil {
		return nil, fmt.Errorf("machine %s: %w", id, err)
	}
	rev.Add(func() { unmount(rootfs) })

	// The network.
	ns, err := netns.New(ctx, d.cfg.NetNSDir)
	if err != nil {
		return nil, fmt.Errorf("machine %s: %w", id, err)
	}
	rev.Add(func() { ns.Close() })
	n := spec.Network
	if err := network.EnsureBridge(ctx, network.Bridge{Name: n.Bridge, Gateways: n.Gateways}); err != nil {
		return nil, fmt.Errorf("machine %s: %w", id, err)
	}
	if err := d.hostRules(ctx, network.VPC{Bridge: n.Bridge, CIDR: n.VPC}); err != nil {
		return nil, fmt.Errorf("machine %s: %w", id, err)
	}
	hostIf := network.HostIfName(id)
	err = network.Attach(ctx, network.Attachment{NetNS: ns.Path(), HostIf: hostIf, Bridge: n.Bridge,
		MAC: n.MAC, Address: n.Address, Gateway: n.Gateway, OnLink: []netip.Prefix{n.VPC}, Metadata: true,
		VPCResolver: network.VPCResolverAddr(n.VPC)})
	if err != nil {
		return nil, fmt.Errorf("machine %s: %w", id, err)
	}
	rev.Add(func() { network.Detach(context.WithoutCancel(ctx), hostIf) })
	// Its security groups hold from the first packet.
	if err := firewall.Apply(ctx, ns.Path(), spec.Firewall); err != nil {
		return nil, fmt.Errorf("machine %s: %w", id, err)
	}
	rec.NetNS, rec.HostIf, rec.Network = ns.Path(), hostIf, n
	if err := d.writeRecord(id, rec); err != nil {
		return nil, err
	}

	// Where volumes are mounted while it runs: a shared mount point of the host, a read-only
	// slave of it at /mnt inside; only nubis makes entries in it, so no path in it is the guest's.
	volumes := filepath.Join(dir, "volumes")
	if err := os.MkdirAll(volumes, 0o755); err != nil {
		return nil, fmt.Errorf("machine %s: %w", id, err)
	}
	if err := sharedMountPoint(volumes); err != nil {
		return nil, fmt.Errorf("machine %s: %w", id, err)
	}
	rev.Add(func() { unmountTree(volumes) })

	// What the init reads; on the first boot, host keys made ahead of time if there are any.
	if err := d.writeGuest(spec); err != nil {
		return nil, err
	}
	keys := hostKeysDir(filepath.Join(dir, "guest"))
	os.RemoveAll(keys) // installed at an earlier boot (or never: the guest made its own)
	if first {
		if set, ok := takeHostKeys(); ok {
			if err := writeHostKeys(keys, spec.Hostname, set); err != nil {
				d.log.Warn("host keys", "id", id, "err", err)
				os.RemoveAll(keys)
			}
		}
	}
	console, err := os.OpenFile(filepath.Join(dir, "console.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("machine %s: console: %w", id, err)
	}
	defer console.Close() // the container has its own copy

	sb, err := d.cfg.Sandboxes.Create(ctx, sandbox.Spec{
		ID:       id,
		System:   true,
		RootFS:   rootfs,
		Args:     []string{guestinit.BinaryPath},
		Env:      []string{"TERM=linux", "container=nubis"},
		Hostname: spec.Hostname,
		Mounts: []sandbox.Mount{
			{Source: d.cfg.InitBinary, Destination: guestinit.BinaryPath},
			{Source: filepath.Join(dir, "guest"), Destination: filepath.Dir(guestinit.ConfigPath)},
			{Source: filepath.Join(dir, "state"), Destination: guestinit.StateDir, Writable: true},
			{Source: volumes, Destination: "/mnt", Slave: true},
		},
		MemoryMB:  spec.MemoryMB,
		CPUs:      spec.CPUs,
		PidsLimit: d.cfg.PidsLimit,
		NetNSPath: ns.Path(),
		Stdout:    console,
		Stderr:    console,
	})
	if err != nil {
		return nil, fmt.Errorf("machine %s: %w", id, err)
	}
	rev.Add(func() { sb.Kill(context.WithoutCancel(ctx)) })
	if err := sb.Start(ctx); err != nil {
		return nil, fmt.Errorf("machine %s: %w", id, err)
	}
	rev.Success()
	d.log.Info("machine booting", "id", id, "address", n.Address)
	return d.watch(id, sb, ns, rec), nil
}

// writeGuest writes instance.json and user-data for the init, and empties the state dir.
func (d *Driver) writeGuest(spec machine.Spec) error {
	dir := d.dir(spec.ID)
	cfg := guestinit.Config{InstanceID: spec.ID, Hostname: spec.Hostname, Domain: spec.Domain, Nameserver: spec.Nameserver,
		PrivateIP: spec.Network.Address.Addr().String(), DefaultUser: spec.DefaultUser, PublicKeys: spec.PublicKeys}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "guest", filepath.Base(guestinit.ConfigPath)), b, 0o644); err != nil {
		return fmt.Errorf("machine %s: %w", spec.ID, err)
	}
	ud := filepath.Join(dir, "guest", filepath.Base(guestinit.UserDataPath))
	if len(spec.UserData) > 0 {
		if err := os.WriteFile(ud, spec.UserData, 0o600); err != nil {
			return fmt.Errorf("machine %s: %w", spec.ID, err)
		}
	} else if err := os.Remove(ud); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("machine %s: %w", spec.ID, err)
	}
	state := filepath.Join(dir, "state")
	entries, _ := os.ReadDir(state)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(state, e.Name()))
	}
	return nil
}

// Attach takes back a machine that runs.
func (d *Driver) Attach(ctx context.Context, id string) (machine.Machine, error) {
	if !idRE.MatchString(id) {
		return nil, fmt.Errorf("machine id %q: %w", id, errdefs.ErrInvalidArgument)
	}
	unlock := d.lock(id)
	defer unlock()
	rec, err := d.readRecord(id)
	if err != nil {
		return nil, err
	}
	if rec.NetNS == "" {
		return nil, fmt.Errorf("machine %s does not run: %w", id, errdefs.ErrNotFound)
	}
	sb, err := d.cfg.Sandboxes.Attach(ctx, id)
	if err != nil {
		return nil, err
	}
	select {
	case <-sb.Done():
		return nil, fmt.Errorf("machine %s has stopped: %w", id, errdefs.ErrNotFound)
	default:
	}
	ns, err := netns.Open(rec.NetNS)
	if err != nil {
		return nil, fmt.Errorf("machine %s: %w", id, err)
	}
	// The link should be there; converge in case it is not.
	n := rec.Network
	if err := network.EnsureBridge(ctx, network.Bridge{Name: n.Bridge, Gateways: n.Gateways}); err != nil {
		ns.Close()
		return nil, fmt.Errorf("machine %s: %w", id, err)
	}
	if err := d.hostRules(ctx, network.VPC{Bridge: n.Bridge, CIDR: n.VPC}); err != nil {
		ns.Close()
		return nil, fmt.Errorf("machine %s: %w", id, err)
	}
	err = network.Attach(ctx, network.Attachment{NetNS: ns.Path(), HostIf: rec.HostIf, Bridge: n.Bridge,
		MAC: n.MAC, Address: n.Address, Gateway: n.Gateway, OnLink: []netip.Prefix{n.VPC}, Metadata: true,
		VPCResolver: network.VPCResolverAddr(n.VPC)})
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("machine %s: %w", id, err)
	}
	return d.watch(id, sb, ns, rec), nil
}

// Running lists the machines whose container exists or whose network or disk is still set up.
func (d *Driver) Running(ctx context.Context) ([]string, error) {
	ids, err := d.cfg.Sandboxes.List(ctx)
	if err != nil {
		return nil, err
	}
	disks, err := d.Disks(ctx)
	if err != nil {
		return nil, err
	}
	for _, id := range disks {
		if rec, err := d.readRecord(id); err == nil && rec.NetNS != "" && !slices.Contains(ids, id) {
			ids = append(ids, id)
		} else if mounted(filepath.Join(d.dir(id), "rootfs")) && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// Cleanup ends what runs of a machine, keeping its disk.
func (d *Driver) Cleanup(ctx context.Context, id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("machine id %q: %w", id, errdefs.ErrInvalidArgument)
	}
	unlock := d.lock(id)
	defer unlock()
	return d.cleanup(ctx, id)
}

// cleanup removes the container, the network link and namespace, and unmounts the disk. The
// caller holds the machine's lock.
func (d *Driver) cleanup(ctx context.Context, id string) error {
	var errs []error
	errs = append(errs, d.cfg.Sandboxes.Remove(ctx, id))
	rec, err := d.readRecord(id)
	if err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			return errors.Join(errs...)
		}
		return errors.Join(append(errs, err)...)
	}
	if rec.HostIf != "" {
		errs = append(errs, network.Detach(ctx, rec.HostIf))
	}
	if rec.NetNS != "" {
		if ns, err := netns.Open(rec.NetNS); err == nil {
			errs = append(errs, ns.Close())
		} else if _, serr := os.Stat(rec.NetNS); serr == nil {
			errs = append(errs, unmountRemove(rec.NetNS))
		}
	}
	errs = append(errs, unmountTree(filepath.Join(d.dir(id), "volumes")))
	errs = append(errs, unmount(filepath.Join(d.dir(id), "rootfs")))
	errs = append(errs, d.unmountRootVolume(ctx, rec))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("machine %s: clean up: %w", id, err)
	}
	rec.NetNS, rec.HostIf = "", ""
	return d.writeRecord(id, rec)
}

// Disks lists the machines that have a disk.
func (d *Driver) Disks(ctx context.Context) ([]string, error) {
	entries, err := os.ReadDir(d.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("list machines: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && idRE.MatchString(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// DeleteDisk deletes a stopped machine's disk and everything else of it.
func (d *Driver) DeleteDisk(ctx context.Context, id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("machine id %q: %w", id, errdefs.ErrInvalidArgument)
	}
	unlock := d.lock(id)
	defer unlock()
	if ids, err := d.cfg.Sandboxes.List(ctx); err != nil {
		return err
	} else if slices.Contains(ids, id) {
		return fmt.Errorf("machine %s runs: %w", id, errdefs.ErrConflict)
	}
	if err := d.cleanup(ctx, id); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return err
	}
	if mounted(filepath.Join(d.dir(id), "rootfs")) {
		return fmt.Errorf("machine %s: its disk is still mounted: %w", id, errdefs.ErrConflict)
	}
	if err := os.RemoveAll(d.dir(id)); err != nil {
		return fmt.Errorf("machine %s: delete disk: %w", id, err)
	}
	return nil
}

// CopyDisk copies the machine's layer (the upper dir of its disk, with overlayfs's whiteouts and
// opaque-directory attributes, which work as they are in a lower layer) into dst.
func (d *Driver) CopyDisk(ctx context.Context, id, dst string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("machine id %q: %w", id, errdefs.ErrInvalidArgument)
	}
	rec, err := d.readRecord(id)
	if err != nil {
		return err
	}
	// A stopped machine's root volume is mounted for the copy.
	if rec.RootVolume != "" && d.cfg.Volumes != nil {
		if _, mounted := d.cfg.Volumes.MountPoint(rec.RootVolume); !mounted {
			if err := d.mountRootVolume(ctx, id, rec); err != nil {
				return err
			}
			defer d.unmountRootVolume(context.WithoutCancel(ctx), rec)
		}
	}
	src := filepath.Join(d.dir(id), "disk", "upper")
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("machine %s has no disk: %w", id, errdefs.ErrNotFound)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return fmt.Errorf("copy disk of %s: %w", id, err)
	}
	tmp := dst + ".tmp"
	os.RemoveAll(tmp)
	out, err := exec.CommandContext(ctx, "cp", "-a", "--reflink=auto", src, tmp).CombinedOutput()
	if err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("copy disk of %s: %w: %s", id, err, strings.TrimSpace(string(out)))
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("copy disk of %s: %w", id, err)
	}
	return nil
}

// Console returns the end of the console log.
func (d *Driver) Console(ctx context.Context, id string, max int) ([]byte, error) {
	if !idRE.MatchString(id) {
		return nil, fmt.Errorf("machine id %q: %w", id, errdefs.ErrInvalidArgument)
	}
	f, err := os.Open(filepath.Join(d.dir(id), "console.log"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("machine %s: console: %w", id, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("machine %s: console: %w", id, err)
	}
	if off := fi.Size() - int64(max); off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return nil, fmt.Errorf("machine %s: console: %w", id, err)
		}
	}
	return io.ReadAll(io.LimitReader(f, int64(max)))
}

// mountRootVolume mounts a machine's root volume at its disk dir and makes sure the layer's
// directories are on it.
func (d *Driver) mountRootVolume(ctx context.Context, id string, rec record) error {
	if rec.RootVolume == "" || d.cfg.Volumes == nil {
		return nil
	}
	disk := filepath.Join(d.dir(id), "disk")
	if err := os.MkdirAll(disk, 0o755); err != nil {
		return fmt.Errorf("machine %s: %w", id, err)
	}
	if err := d.cfg.Volumes.Mount(ctx, rec.RootVolume, disk); err != nil {
		return fmt.Errorf("machine %s: root volume: %w", id, err)
	}
	for _, sub := range []string{"upper", "work"} {
		if err := os.MkdirAll(filepath.Join(disk, sub), 0o755); err != nil {
			return fmt.Errorf("machine %s: %w", id, err)
		}
	}
	return nil
}

func (d *Driver) unmountRootVolume(ctx context.Context, rec record) error {
	if rec.RootVolume == "" || d.cfg.Volumes == nil {
		return nil
	}
	return d.cfg.Volumes.Unmount(ctx, rec.RootVolume, true)
}

// mountOverlay mounts the disk (upper over the image's layers) at target, unless it is mounted
// already.
func mountOverlay(layers []string, disk, target string) error {
	if mounted(target) {
		return nil
	}
	lower := strings.Join(layers, ":")
	for _, p := range append(slices.Clone(layers), disk, target) {
		if strings.ContainsAny(p, ",:\\") {
			return fmt.Errorf("overlay path %q has a character overlayfs options cannot carry: %w", p, errdefs.ErrInvalidArgument)
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, filepath.Join(disk, "upper"), filepath.Join(disk, "work"))
	if err := unix.Mount("overlay", target, "overlay", unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount the disk (overlay %s): %w", opts, err)
	}
	return nil
}

// mounted tells whether dir is an overlay mount point.
func mounted(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.OVERLAYFS_SUPER_MAGIC
}

func unmount(dir string) error {
	for mounted(dir) {
		if err := unix.Unmount(dir, 0); err != nil {
			if errors.Is(err, unix.EBUSY) {
				if err := unix.Unmount(dir, unix.MNT_DETACH); err == nil {
					continue
				}
			}
			return fmt.Errorf("unmount %s: %w", dir, err)
		}
	}
	return nil
}

// sharedMountPoint makes dir a mount point of its own (a bind onto itself) with shared
// propagation, unless it is one already.
func sharedMountPoint(dir string) error {
	if isMountPoint(dir) {
		return nil
	}
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", dir, err)
	}
	if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
		unix.Unmount(dir, unix.MNT_DETACH)
		return fmt.Errorf("share %s: %w", dir, err)
	}
	return nil
}

// isMountPoint tells whether dir is a mount point.
func isMountPoint(dir string) bool {
	points, err := mountinfo.Under(dir)
	return err == nil && slices.Contains(points, filepath.Clean(dir))
}

// unmountTree unmounts what is mounted under dir (volumes), then dir itself; MNT_DETACH so that
// a busy volume does not keep the instance from stopping (its loop device goes with its last user).
func unmountTree(dir string) error {
	points, err := mountinfo.Under(dir)
	if err != nil {
		return err
	}
	// Deepest first.
	slices.SortStableFunc(points, func(a, b string) int { return len(b) - len(a) })
	var errs []error
	for _, p := range slices.Compact(points) {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

func unmountRemove(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Release undoes this driver's host setup when no machine runs (a clean stop of nubis): the
// directory pinning network namespaces, and the given VPC bridges (which have no ports then).
func (d *Driver) Release(ctx context.Context, bridges []string) error {
	running, err := d.Running(ctx)
	if err != nil || len(running) > 0 {
		return err
	}
	var errs []error
	errs = append(errs, network.RemoveHostRules(ctx, d.cfg.HostTable))
	for _, b := range bridges {
		errs = append(errs, network.RemoveBridge(ctx, b))
	}
	errs = append(errs, netns.Release(d.cfg.NetNSDir))
	return errors.Join(errs...)
}

// hostRules installs the host's rules (NAT out of each VPC, no forwarding between VPCs) for the
// VPCs of the machines that run, and extra.
func (d *Driver) hostRules(ctx context.Context, extra network.VPC) error {
	vpcs := map[string]network.VPC{extra.Bridge: extra}
	disks, err := d.Disks(ctx)
	if err != nil {
		return err
	}
	for _, id := range disks {
		if rec, err := d.readRecord(id); err == nil && rec.NetNS != "" && rec.Network.Bridge != "" {
			vpcs[rec.Network.Bridge] = network.VPC{Bridge: rec.Network.Bridge, CIDR: rec.Network.VPC}
		}
	}
	list := make([]network.VPC, 0, len(vpcs))
	for _, v := range vpcs {
		list = append(list, v)
	}
	return network.ApplyHostRules(ctx, d.cfg.HostTable, list)
}
