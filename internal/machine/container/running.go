package container

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nubis/nubis/internal/errdefs"
	"github.com/nubis/nubis/internal/firewall"
	"github.com/nubis/nubis/internal/guestinit"
	"github.com/nubis/nubis/internal/machine"
	"github.com/nubis/nubis/internal/netns"
	"github.com/nubis/nubis/internal/sandbox"
)

// running is a machine.Machine: a container that runs, watched until it stops.
type running struct {
	d   *Driver
	id  string
	sb  sandbox.Sandbox
	ns  *netns.NS
	rec record

	mu       sync.Mutex
	ready    chan struct{}
	isReady  bool
	boot     int // the last boot the init reported ready
	stopping bool
	exit     machine.Exit
	done     chan struct{}
}

// Polling the init's ready file: often while a boot is awaited, rarely after.
const (
	readyPollFast = 5 * time.Millisecond
	readyPollSlow = 250 * time.Millisecond
)

func (d *Driver) watch(id string, sb sandbox.Sandbox, ns *netns.NS, rec record) *running {
	m := &running{d: d, id: id, sb: sb, ns: ns, rec: rec, ready: make(chan struct{}), done: make(chan struct{})}
	go m.pollReady()
	go m.wait()
	return m
}

func (m *running) ID() string { return m.id }

func (m *running) Ready() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ready
}

func (m *running) Done() <-chan struct{} { return m.done }

func (m *running) Exit() machine.Exit {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.exit
}

// readyBoot reads the boot number of the init's ready file; 0 when there is none.
func (m *running) readyBoot() int {
	b, err := os.ReadFile(filepath.Join(m.d.dir(m.id), "state", guestinit.ReadyFile))
	if err != nil {
		return 0
	}
	var r struct {
		Boot int `json:"boot"`
	}
	if json.Unmarshal(b, &r) != nil {
		return 0
	}
	return max(r.Boot, 1)
}

func (m *running) pollReady() {
	for {
		m.mu.Lock()
		waiting := !m.isReady
		m.mu.Unlock()
		wait := readyPollSlow
		if waiting {
			wait = readyPollFast
		}
		select {
		case <-m.done:
			return
		case <-time.After(wait):
		}
		b := m.readyBoot()
		m.mu.Lock()
		if b > m.boot {
			m.boot = b
			if !m.isReady {
				m.isReady = true
				close(m.ready)
			}
		}
		m.mu.Unlock()
	}
}

// wait waits for the container's init to exit, then takes down what ran on the host.
func (m *running) wait() {
	<-m.sb.Done()
	reason := machine.ExitCrash
	if b, err := os.ReadFile(filepath.Join(m.d.dir(m.id), "state", guestinit.ExitFile)); err == nil {
		switch strings.TrimSpace(string(b)) {
		case "poweroff":
			reason = machine.ExitPoweroff
		case "stop":
			reason = machine.ExitStop
		}
	}
	m.mu.Lock()
	if m.stopping && reason == machine.ExitCrash {
		reason = machine.ExitStop
	}
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m.ns.Close()
	unlock := m.d.lock(m.id)
	err := m.d.cleanup(ctx, m.id)
	unlock()
	if err != nil {
		m.d.log.Error("machine stopped; cleaning up failed", "id", m.id, "err", err)
	}
	m.d.log.Info("machine stopped", "id", m.id, "reason", reason, "status", m.sb.ExitStatus().String())
	m.mu.Lock()
	m.exit = machine.Exit{Reason: reason, At: time.Now()}
	m.mu.Unlock()
	close(m.done)
}

// Shutdown asks the init to stop (SIGTERM: it ends every process) and kills what is left after
// grace.
func (m *running) Shutdown(ctx context.Context, grace time.Duration) error {
	m.mu.Lock()
	m.stopping = true
	m.mu.Unlock()
	if grace > 0 {
		if err := m.sb.Signal(ctx, syscall.SIGTERM); err != nil {
			m.d.log.Debug("signal", "id", m.id, "err", err)
		}
		select {
		case <-m.sb.Done():
		case <-time.After(grace):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case <-m.sb.Done():
	default:
		if err := m.sb.Kill(ctx); err != nil {
			return fmt.Errorf("machine %s: %w", m.id, err)
		}
	}
	select {
	case <-m.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Reboot asks the init to reboot (SIGINT, as ctrl-alt-del): it ends every process and boots again.
func (m *running) Reboot(ctx context.Context) error {
	m.mu.Lock()
	if m.isReady {
		m.isReady = false
		m.ready = make(chan struct{})
	}
	m.mu.Unlock()
	if err := m.sb.Signal(ctx, syscall.SIGINT); err != nil {
		return fmt.Errorf("machine %s: reboot: %w", m.id, err)
	}
	return nil
}

func (m *running) Listen(ctx context.Context, network, addr string) (net.Listener, error) {
	select {
	case <-m.done:
		return nil, fmt.Errorf("machine %s: %w", m.id, net.ErrClosed)
	default:
	}
	return m.ns.Listen(ctx, network, addr)
}

// VolumeDir returns the directory of the host where a volume attached as device (sdf, xvdg...) is
// mounted to appear at /mnt/<device> inside, creating it. It is in nubis's own volumes dir, never
// in the guest's file system, so no symlink of the guest's can redirect the mount.
func (m *running) VolumeDir(device string) (string, error) {
	if !deviceRE.MatchString(device) {
		return "", fmt.Errorf("machine %s: device %q: %w", m.id, device, errdefs.ErrInvalidArgument)
	}
	dir := filepath.Join(m.d.dir(m.id), "volumes", device)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("machine %s: volume mount point: %w", m.id, err)
	}
	return dir, nil
}

var deviceRE = regexp.MustCompile(`^(sd|xvd)[b-z]$`)

func (m *running) ApplyFirewall(ctx context.Context, p firewall.Policy) error {
	if err := firewall.Apply(ctx, m.ns.Path(), p); err != nil {
		return fmt.Errorf("machine %s: %w", m.id, err)
	}
	return nil
}

func (m *running) ListenPacket(ctx context.Context, network, addr string) (net.PacketConn, error) {
	select {
	case <-m.done:
		return nil, fmt.Errorf("machine %s: %w", m.id, net.ErrClosed)
	default:
	}
	return m.ns.ListenPacket(ctx, network, addr)
}

func (m *running) Stats(ctx context.Context) (machine.Stats, error) {
	st, err := m.sb.Stats(ctx)
	if err != nil {
		return machine.Stats{}, err
	}
	return machine.Stats{MemoryUsageBytes: st.MemoryUsageBytes, MemoryLimitBytes: st.MemoryLimitBytes, Pids: st.Pids}, nil
}
