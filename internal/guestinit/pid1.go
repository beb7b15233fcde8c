package guestinit

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// defaultStopGrace is how long a stop waits for processes after SIGTERM when the Config does not say.
const defaultStopGrace = 3 * time.Second

// pid1 is the init's state across boots: an in-place reboot runs a new boot in the same process.
type pid1 struct {
	root    string // "/" in an instance; a temporary directory in tests
	chroot  bool   // run programs chrooted to root (a no-op when root is "/")
	console io.Writer
	procs   *reaper
	power   chan action // power_state from user data asks through here
	sshAddr string
	start   time.Time

	// sync flushes file systems before the init exits; nil means syscall.Sync.
	sync func()
}

// serve boots, then waits for a signal (or a power_state request); it reboots in place or
// returns the exit code once the instance stops or powers off.
func (p *pid1) serve(sigs <-chan os.Signal) int {
	for n := 1; ; n++ {
		b := p.newBoot(n)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			b.run(ctx)
		}()
		a := p.waitAction(b, sigs)
		p.end(b, a, cancel, done)
		if a != actReboot {
			return 0
		}
	}
}

func (p *pid1) newBoot(n int) *boot {
	started := time.Now()
	if n == 1 {
		started = p.start
	}
	b := &boot{
		root:    p.root,
		chroot:  p.chroot && p.root != "/",
		console: p.console,
		procs:   p.procs,
		power:   p.power,
		sshAddr: p.sshAddr,
		n:       n,
		started: started,
		asRoot:  os.Geteuid() == 0,
	}
	b.cfg, b.cfgErr = readConfig(b.path(ConfigPath))
	b.cfgWarn = b.checkConfig()
	return b
}

// waitAction blocks until a signal or request asks to stop, power off, halt or reboot.
func (p *pid1) waitAction(b *boot, sigs <-chan os.Signal) action {
	for {
		select {
		case a := <-p.power:
			return a
		case s := <-sigs:
			if a := actionFor(s); a != actNone {
				b.logf("received %s: %s", signalName(s), a)
				return a
			}
			switch s {
			case syscall.SIGWINCH, syscall.SIGPIPE:
			default:
				b.logf("ignoring %s", signalName(s))
			}
		}
	}
}

// end shuts the boot down: it tells nubis why (ExitFile, or no ReadyFile during a reboot), ends
// every process, waits for the boot's goroutines and, unless rebooting, syncs the disks.
func (p *pid1) end(b *boot, a action, cancel context.CancelFunc, done <-chan struct{}) {
	state := b.path(StateDir)
	switch a {
	case actStop:
		b.writeState(filepath.Join(state, ExitFile), []byte("stop"))
	case actPoweroff, actHalt:
		b.writeState(filepath.Join(state, ExitFile), []byte("poweroff"))
	case actReboot:
		if err := os.Remove(filepath.Join(state, ReadyFile)); err != nil && !os.IsNotExist(err) {
			b.logf("remove ready file: %v", err)
		}
	}
	cancel()
	grace := defaultStopGrace
	if g := b.cfg.StopGraceSeconds; g > 0 {
		grace = time.Duration(g * float64(time.Second))
	}
	t0 := time.Now()
	p.procs.block(true)
	defer p.procs.block(false) // for the next boot
	if p.procs.killAll(grace) {
		b.logf("processes left after %v were killed", grace)
	}
	select {
	case <-done: // the boot started all it will: its goroutines can be waited for
		if !waitGroupTimeout(&b.wg, 2*time.Second) {
			b.logf("sshd supervisor still running; going on")
		}
	case <-time.After(2 * time.Second):
		b.logf("boot steps still running; going on")
	}
	b.logf("all processes ended in %v", time.Since(t0).Round(time.Millisecond))
	switch a {
	case actReboot:
		fmt.Fprintln(p.console, "reboot: Restarting system")
		return
	case actHalt:
		fmt.Fprintln(p.console, "reboot: System halted")
	default:
		fmt.Fprintln(p.console, "reboot: Power down")
	}
	if p.sync != nil {
		p.sync()
	} else {
		syscall.Sync()
	}
}

// signalName is SIGTERM, SIGRTMIN+4 and so on.
func signalName(s os.Signal) string {
	sig, ok := s.(syscall.Signal)
	if !ok {
		return s.String()
	}
	if sig >= sigRTMIN && sig <= 64 {
		return fmt.Sprintf("SIGRTMIN+%d", int(sig-sigRTMIN))
	}
	if name := unix.SignalName(sig); name != "" {
		return name
	}
	return fmt.Sprintf("signal %d", int(sig))
}

// waitGroupTimeout waits for wg up to d and reports whether it finished.
func waitGroupTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	c := make(chan struct{})
	go func() {
		wg.Wait()
		close(c)
	}()
	select {
	case <-c:
		return true
	case <-time.After(d):
		return false
	}
}

// lockedWriter serialises writes to the console from the init's goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
