// Package guestinit is the init (PID 1) that runs inside each EC2 instance container.
//
// An instance is a system container started by runc. The nubis binary itself is bind-mounted
// read-only at [BinaryPath] and runc starts it as PID 1 with argv[0] "/run/nubis-init". On each
// boot the init does, in the small, what systemd and cloud-init do on an EC2 instance: it
// prepares /run, writes /etc/hostname and /etc/hosts, generates the SSH host keys once per
// instance and prints their fingerprints to the console, creates the default user with the key
// pair's public key, runs user data once per instance (a script or a #cloud-config subset), starts
// sshd and keeps it running, reaps every zombie, and ends all processes when nubis stops the
// instance or a user powers it off or reboots it from inside.
//
// # How a binary becomes the init
//
// Any binary that links this package can be its own init (the "reexec" pattern): a package
// init function checks two cheap things before main runs and otherwise does nothing:
//
//   - argv[0]'s base name is "nubis-init" and the process is PID 1: it runs [Main] and exits with
//     its code. A host process is never PID 1 under that name.
//   - argv[0]'s base name is shutdown, poweroff, halt or reboot and [ConfigPath] exists (so the
//     process runs inside an instance, where /usr/local/sbin/<name> is a symlink to
//     [BinaryPath]): it acts as that command — it asks PID 1 to power off, halt or reboot with a
//     signal — and exits. On a host ConfigPath does not exist, and nubis is not named shutdown.
//
// # Talking to nubis
//
// The instance's configuration comes from [ConfigPath] ([Config] as JSON) and the user data from
// [UserDataPath]. The init reports back through files in [StateDir]: [ReadyFile] when a boot is
// complete and [ExitFile] when the instance stops or powers itself off. Everything the init does
// is logged to stdout, which is the instance's console log.
//
// # Signals to PID 1
//
//   - SIGTERM, SIGPWR: stop (nubis stops the instance); ExitFile "stop".
//   - SIGRTMIN+4, SIGUSR2: power off from inside; SIGRTMIN+3: halt (same as power off);
//     ExitFile "poweroff".
//   - SIGINT, SIGRTMIN+5: reboot: end all processes and boot again in the same PID 1.
//
// SIGRTMIN is glibc's (34), as systemd uses it. Every other catchable signal is received and
// ignored: the Go runtime installs handlers for most signals, and a PID 1 that died of a stray
// SIGHUP or SIGQUIT would kill the instance.
package guestinit

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

const (
	// BinaryPath is where the nubis binary is bind-mounted (read-only) inside an instance.
	BinaryPath = "/run/nubis-init"
	// ConfigPath is the instance's [Config] as JSON, in a read-only host directory.
	ConfigPath = "/run/nubis/instance.json"
	// UserDataPath holds the instance's user data, if it has any.
	UserDataPath = "/run/nubis/user-data"
	// HostKeysDir may hold SSH host keys nubis made ahead of time for the instance's first boot
	// (ssh_host_rsa_key and .pub...): the init installs them instead of running ssh-keygen.
	HostKeysDir = "/run/nubis/hostkeys"
	// StateDir is a writable host directory where the init reports to nubis.
	StateDir = "/run/nubis/state"
	// ReadyFile (in StateDir) is written, as JSON {"boot":N,"time":RFC3339}, once a boot is
	// complete: sshd accepts connections on 127.0.0.1:22, or the image has no sshd (or sshd did
	// not accept within 5 s, which the console log then says). N counts the boots this init ran,
	// from 1; an in-place reboot removes the file and writes it again with N+1. The file is
	// written to a temporary name and renamed, so a reader never sees half of it.
	ReadyFile = "ready"
	// ExitFile (in StateDir) says why the init is about to exit: "poweroff" (asked from inside:
	// shutdown, poweroff or halt) or "stop" (SIGTERM or SIGPWR from nubis). It is written when
	// the shutdown begins, before processes are ended, and holds the word without a newline.
	ExitFile = "exit"
)

// Config is the instance's configuration, which nubis writes to [ConfigPath] as JSON (field
// names as they are; encoding/json also matches them case-insensitively).
type Config struct {
	InstanceID string
	// Hostname is the short host name, such as ip-172-31-5-9.
	Hostname string
	// Domain is the DNS domain, such as ec2.internal.
	Domain string
	// Nameserver is the VPC's DNS resolver (169.254.169.253); when set, /etc/resolv.conf is
	// written at every boot to use it, with Domain as the search domain (as on EC2).
	Nameserver string `json:",omitempty"`
	PrivateIP  string
	// DefaultUser is the login user, such as ec2-user. If /etc/passwd lacks it, it is created
	// (home /home/<user>, shell /bin/bash, groups adm and sudo where they exist, sudo without a
	// password through /etc/sudoers.d/90-cloud-init-users), as cloud-init does.
	DefaultUser string
	// PublicKeys are OpenSSH authorized_keys lines (the key pair's) for DefaultUser. They are
	// added on every boot where missing.
	PublicKeys []string
	// StopGraceSeconds is how long a stop waits after SIGTERM before it sends SIGKILL to the
	// processes left; 0 means 3 seconds.
	StopGraceSeconds float64 `json:",omitempty"`
}

// commandNames are the argv[0] names under which the binary acts as a power command.
var commandNames = map[string]bool{"shutdown": true, "poweroff": true, "halt": true, "reboot": true}

func init() {
	if len(os.Args) == 0 {
		return
	}
	name := filepath.Base(os.Args[0])
	switch {
	case name == "nubis-init" && len(os.Args) == 3 && os.Args[1] == eicCommand:
		if err := instanceConnectKeys(context.Background(), metadataBase, os.Args[2], os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "nubis-init %s: %v\n", eicCommand, err)
		}
		os.Exit(0)
	case name == "nubis-init":
		if os.Getpid() == 1 {
			os.Exit(Main())
		}
	case commandNames[name]:
		if _, err := os.Stat(ConfigPath); err == nil {
			os.Exit(runCommand(name, os.Args[1:], os.Stdout, os.Stderr, os.Geteuid(), signalInit))
		}
	}
}

// Main runs the init: it boots the instance and then reaps zombies and waits for a signal. It
// returns only when the instance stops or powers off, after ending every other process, with the
// exit code for the init (0). Errors on the way are logged to the console and the boot goes on:
// a PID 1 that exits ends the instance.
func Main() int {
	syscall.Umask(0o022)
	start := time.Now()
	console := &lockedWriter{w: os.Stdout}
	p := &pid1{
		root:    "/",
		chroot:  true, // a no-op with root "/"; kept so the runner never depends on the host's view
		console: console,
		procs:   newReaper(os.Getpid() == 1),
		power:   make(chan action, 1),
		sshAddr: "127.0.0.1:22",
		start:   start,
	}
	defer p.procs.stop()
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, catchableSignals()...)
	fmt.Fprintf(console, "[%12.6f] nubis-init: starting as PID %d\n", 0.0, os.Getpid())
	return p.serve(sigs)
}

// Signal numbers on Linux. SIGRTMIN is glibc's (the kernel's 32 and 33 are glibc's own), which
// is what systemd's conventions (SIGRTMIN+3 halt, +4 power off, +5 reboot) count from.
const sigRTMIN = 34

var (
	sigHalt     = syscall.Signal(sigRTMIN + 3)
	sigPoweroff = syscall.Signal(sigRTMIN + 4)
	sigReboot   = syscall.Signal(sigRTMIN + 5)
)

// action is what a signal or a request asks of the init.
type action int

const (
	actNone action = iota
	actStop
	actPoweroff
	actHalt
	actReboot
)

func (a action) String() string {
	switch a {
	case actStop:
		return "stop"
	case actPoweroff:
		return "poweroff"
	case actHalt:
		return "halt"
	case actReboot:
		return "reboot"
	}
	return "none"
}

// actionFor maps a signal received by PID 1 to what it asks for.
func actionFor(sig os.Signal) action {
	switch sig {
	case syscall.SIGTERM, syscall.SIGPWR:
		return actStop
	case sigPoweroff, syscall.SIGUSR2:
		return actPoweroff
	case sigHalt:
		return actHalt
	case syscall.SIGINT, sigReboot:
		return actReboot
	}
	return actNone
}

// catchableSignals lists every signal PID 1 receives through os/signal: all but SIGKILL and
// SIGSTOP (which cannot be caught), SIGCHLD (the reaper's), SIGURG (the Go runtime's preemption)
// and 32–34 (reserved by the C libraries, and so by Go).
func catchableSignals() []os.Signal {
	var sigs []os.Signal
	for s := syscall.Signal(1); s <= 64; s++ {
		switch {
		case s == syscall.SIGKILL, s == syscall.SIGSTOP, s == syscall.SIGCHLD, s == syscall.SIGURG:
		case s >= 32 && s <= 34:
		default:
			sigs = append(sigs, s)
		}
	}
	return sigs
}

// readConfig reads instance.json below root.
func readConfig(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read instance config: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("parse instance config %s: %w", path, err)
	}
	return c, nil
}
