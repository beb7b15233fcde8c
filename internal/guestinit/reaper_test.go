package guestinit

import (
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// zombieChildren lists the zombie processes whose parent is this process.
func zombieChildren(t *testing.T) []int {
	t.Helper()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var zombies []int
	me := os.Getpid()
	for _, s := range stats {
		data, err := os.ReadFile(s)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at the last ')'.
		i := strings.LastIndexByte(string(data), ')')
		f := strings.Fields(string(data)[i+1:])
		if len(f) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == me && f[0] == "Z" {
			pid, _ := strconv.Atoi(strings.Fields(string(data))[0])
			zombies = append(zombies, pid)
			t.Logf("zombie: %s", data)
		}
	}
	return zombies
}

func TestReaperDeliversStatuses(t *testing.T) {
	b := &boot{root: "/", procs: testReaper(t), console: &syncBuffer{}, started: time.Now()}
	type child struct {
		code   int
		status <-chan syscall.WaitStatus
	}
	var children []child
	for i := 0; i < 20; i++ {
		code := i % 4
		// Some exit at once, before their waiter could have been registered by a racy design.
		_, status, _, err := b.start(proc{path: "/bin/sh", args: []string{"sh", "-c", "exit " + strconv.Itoa(code)}})
		if err != nil {
			t.Fatal(err)
		}
		children = append(children, child{code, status})
	}
	for i, c := range children {
		select {
		case ws := <-c.status:
			if !ws.Exited() || ws.ExitStatus() != c.code {
				t.Errorf("child %d: %s, want exit status %d", i, statusText(ws), c.code)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("child %d: no status", i)
		}
	}
	if z := zombieChildren(t); len(z) > 0 {
		t.Errorf("zombies left: %v", z)
	}
	if b.procs.hasChildren() {
		t.Error("the reaper still waits for children")
	}
}

func TestReaperStartError(t *testing.T) {
	b := &boot{root: "/", procs: testReaper(t)}
	if _, _, _, err := b.start(proc{path: "/nonexistent/program"}); err == nil {
		t.Fatal("no error")
	}
	if b.procs.hasChildren() {
		t.Error("a failed start left a waiter")
	}
}

// TestReaperReapsOrphans runs the reaper as PID 1 does (wait4(-1)), with this process a child
// subreaper so that orphaned grandchildren are re-parented to it as they would be to PID 1.
func TestReaperReapsOrphans(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Skipf("cannot be a child subreaper: %v", err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	r := newReaper(true)
	defer r.stop()
	b := &boot{root: "/", procs: r, console: &syncBuffer{}, started: time.Now()}
	// Each shell leaves a background child and exits: the children become ours when they die.
	for i := 0; i < 5; i++ {
		ws, err := b.runProc(t.Context(), proc{path: "/bin/sh", args: []string{"sh", "-c", "sleep 0.1 & sleep 0.05 & exit 0"}})
		if err != nil || ws != 0 {
			t.Fatalf("%v %s", err, statusText(ws))
		}
	}
	if !r.waitGone(5 * time.Second) {
		t.Fatal("orphans still running")
	}
	if z := zombieChildren(t); len(z) > 0 {
		t.Errorf("zombies left: %v", z)
	}
}

func TestKillAll(t *testing.T) {
	tests := []struct {
		name   string
		script string
		killed bool
		max    time.Duration
	}{
		{"exits on SIGTERM", "sleep 30", false, time.Second},
		{"ignores SIGTERM", "trap '' TERM; sleep 30", true, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &boot{root: "/", procs: testReaper(t), console: &syncBuffer{}, started: time.Now()}
			for i := 0; i < 3; i++ {
				if _, _, _, err := b.start(proc{path: "/bin/sh", args: []string{"sh", "-c", tt.script}}); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(100 * time.Millisecond) // let the shells set their traps
			t0 := time.Now()
			killed := b.procs.killAll(300 * time.Millisecond)
			if d := time.Since(t0); d > tt.max {
				t.Errorf("took %v", d)
			}
			if killed != tt.killed {
				t.Errorf("killed %v, want %v", killed, tt.killed)
			}
			if b.procs.hasChildren() {
				t.Error("children left")
			}
		})
	}
}

func TestCatchableSignals(t *testing.T) {
	set := map[os.Signal]bool{}
	for _, s := range catchableSignals() {
		set[s] = true
	}
	for _, s := range []syscall.Signal{syscall.SIGTERM, syscall.SIGPWR, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, sigHalt, sigPoweroff, sigReboot, 64} {
		if !set[s] {
			t.Errorf("%v is not caught", s)
		}
	}
	for _, s := range []syscall.Signal{syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD, syscall.SIGURG, 32, 33, 34} {
		if set[s] {
			t.Errorf("%v is caught", s)
		}
	}
}

func TestActionFor(t *testing.T) {
	tests := []struct {
		sig  os.Signal
		want action
	}{
		{syscall.SIGTERM, actStop},
		{syscall.SIGPWR, actStop},
		{syscall.Signal(38), actPoweroff},
		{syscall.SIGUSR2, actPoweroff},
		{syscall.Signal(37), actHalt},
		{syscall.SIGINT, actReboot},
		{syscall.Signal(39), actReboot},
		{syscall.SIGHUP, actNone},
		{syscall.SIGUSR1, actNone},
	}
	for _, tt := range tests {
		if got := actionFor(tt.sig); got != tt.want {
			t.Errorf("%v: %v, want %v", tt.sig, got, tt.want)
		}
	}
}

// TestRealtimeSignalsNotify checks Go delivers SIGRTMIN+3..5 to os/signal (it reserves 32–34).
func TestRealtimeSignalsNotify(t *testing.T) {
	for _, s := range []syscall.Signal{sigHalt, sigPoweroff, sigReboot} {
		c := make(chan os.Signal, 1)
		signal.Notify(c, s)
		syscall.Kill(os.Getpid(), s)
		select {
		case got := <-c:
			if got != s {
				t.Errorf("got %v, want %v", got, s)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%v not delivered", s)
		}
		signal.Stop(c)
	}
}
