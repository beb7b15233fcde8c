// Package machine defines how nubis runs EC2 instances: a Driver boots Machines from their own
// disks. The EC2 service imports only this package; backends live in subpackages
// (machine/container runs an instance as a system container under an OCI runtime; a QEMU
// virtual-machine backend can follow behind the same interface).
//
// A machine has a disk (a copy-on-write view of an image, kept while the instance is stopped and
// deleted on terminate) and, while it runs, processes and a network link. Machines outlive the
// nubis process that booted them: after a restart, Running tells which run and Attach takes one
// back.
package machine

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/nubis/nubis/internal/firewall"
)

// Driver boots and removes machines. Implementations are safe for concurrent use.
type Driver interface {
	// Boot starts a machine from its disk, creating the disk from spec.Image first if it does not
	// exist (the first boot). It returns once the machine's init runs; Machine.Ready tells when
	// the boot has finished. Booting a machine that runs is errdefs.ErrAlreadyExists.
	Boot(ctx context.Context, spec Spec) (Machine, error)
	// Attach returns a running machine booted by an earlier nubis process (errdefs.ErrNotFound if
	// it does not run).
	Attach(ctx context.Context, id string) (Machine, error)
	// Running lists the ids of the machines that run, and of those whose boot or stop was cut
	// short (Cleanup ends them).
	Running(ctx context.Context) ([]string, error)
	// Cleanup ends whatever runs of machine id (processes, network link) without asking it to
	// shut down, keeping its disk. It is not an error if nothing runs.
	Cleanup(ctx context.Context, id string) error
	// Disks lists the ids of the machines that have a disk.
	Disks(ctx context.Context) ([]string, error)
	// DeleteDisk deletes the disk of a machine that does not run (terminate). Deleting a disk
	// that does not exist is not an error.
	DeleteDisk(ctx context.Context, id string) error
	// CopyDisk copies what the machine has written to its disk (its layer over its image) into
	// the new directory dst, for an image made from it; the machine may run (a crash-consistent
	// copy).
	CopyDisk(ctx context.Context, id, dst string) error
	// Console returns the machine's console output: at most max bytes, the most recent.
	Console(ctx context.Context, id string, max int) ([]byte, error)
}

// Machine is one running machine. Its methods are safe for concurrent use.
type Machine interface {
	ID() string
	// Ready is closed once the machine has booted (its init says so: sshd accepts connections);
	// again after a reboot, ReadyAt moves on.
	Ready() <-chan struct{}
	// Done is closed when the machine has stopped and everything it ran on the host (processes,
	// network link) is gone; its disk stays.
	Done() <-chan struct{}
	// Exit tells how it stopped, once Done is closed.
	Exit() Exit
	// Shutdown stops the machine: its init ends every process within grace, after which what is
	// left is killed; with grace 0 everything is killed at once (a forced stop). It returns when
	// Done is closed.
	Shutdown(ctx context.Context, grace time.Duration) error
	// Reboot restarts the machine's operating system from its disk, keeping its processes'
	// host resources (network link, cgroup).
	Reboot(ctx context.Context) error
	// Listen opens a listening socket on the machine's own network (the instance metadata
	// service at 169.254.169.254:80), served by this process.
	Listen(ctx context.Context, network, addr string) (net.Listener, error)
	// ListenPacket is Listen for datagrams (the VPC's DNS resolver at 169.254.169.253:53).
	ListenPacket(ctx context.Context, network, addr string) (net.PacketConn, error)
	// Stats reads the machine's resource use.
	Stats(ctx context.Context) (Stats, error)
	// VolumeDir returns the host directory onto which a volume attached as device (sdf...) is
	// mounted for the machine to see it (at /mnt/<device> in a container machine), creating it.
	VolumeDir(device string) (string, error)
	// ApplyFirewall makes the machine's network enforce p (its security groups) from now on.
	ApplyFirewall(ctx context.Context, p firewall.Policy) error
}

// Exit is how a machine stopped.
type Exit struct {
	// Reason is ExitPoweroff (asked from inside: shutdown -h), ExitStop (Shutdown) or ExitCrash
	// (its init died, or it was killed).
	Reason string
	At     time.Time
}

// Exit reasons.
const (
	ExitPoweroff = "poweroff"
	ExitStop     = "stop"
	ExitCrash    = "crash"
)

// Stats is a machine's resource use.
type Stats struct {
	MemoryUsageBytes uint64
	MemoryLimitBytes uint64
	Pids             uint64
}

// Spec describes a machine.
type Spec struct {
	// ID names the machine (the instance id).
	ID string
	// Image is the root file system of the image the disk is made from on first boot: its
	// layers, top first (directories, shared read-only by every machine of the image; an image
	// made from an instance is that instance's disk over the layers of its own image).
	Image []string
	// DiskGiB is the size of the root disk.
	DiskGiB int
	// RootVolume names the volume the root disk is kept on (made at first boot), if the backend
	// keeps disks on volumes; its size is DiskGiB.
	RootVolume string
	// CPUs and MemoryMB are what the machine may use (its instance type's vCPUs and memory).
	CPUs     float64
	MemoryMB int
	// Hostname is the short host name (ip-172-31-5-9), Domain its DNS domain (ec2.internal).
	Hostname, Domain string
	// Nameserver is the DNS resolver the machine is told to use (169.254.169.253), if any.
	Nameserver string
	// Network is the machine's link to its VPC.
	Network Network
	// DefaultUser is the login user the key pair's public key is given to ("ec2-user").
	DefaultUser string
	// PublicKeys are OpenSSH public keys for DefaultUser.
	PublicKeys []string
	// UserData runs once per instance at first boot (a script or #cloud-config), if set.
	UserData []byte
	// Firewall is enforced on the machine's network from before it starts.
	Firewall firewall.Policy
}

// Network is a machine's link to its VPC.
type Network struct {
	// Bridge is the VPC's segment on this host, with the gateway address of each subnet.
	Bridge   string
	Gateways []netip.Prefix
	// Address is the machine's private address with its subnet's prefix length.
	Address netip.Prefix
	Gateway netip.Addr
	// VPC is the VPC's CIDR, reached directly on the link.
	VPC netip.Prefix
	MAC net.HardwareAddr
}
