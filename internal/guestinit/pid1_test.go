package guestinit

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// testInit is the init's main loop on a fake root, outside PID 1, fed signals by the test.
type testInit struct {
	root    string
	console *syncBuffer
	sigs    chan os.Signal
	synced  atomic.Int32
	code    chan int
}

func startInit(t *testing.T, root string) *testInit {
	t.Helper()
	ti := &testInit{root: root, console: &syncBuffer{}, sigs: make(chan os.Signal, 8), code: make(chan int, 1)}
	p := &pid1{
		root: root, console: ti.console, procs: testReaper(t), power: make(chan action, 1),
		sshAddr: "127.0.0.1:1", start: time.Now(), sync: func() { ti.synced.Add(1) },
	}
	go func() { ti.code <- p.serve(ti.sigs) }()
	return ti
}

// waitFor polls until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (ti *testInit) ready(t *testing.T, boot int) {
	t.Helper()
	waitFor(t, "boot-finished", func() bool {
		_, err := os.Stat(filepath.Join(ti.root, cloudDir, "instance/boot-finished"))
		return err == nil
	})
	if r := readReady(t, ti.root); r.Boot != boot {
		t.Fatalf("ready %+v, want boot %d", r, boot)
	}
}

func (ti *testInit) exit(t *testing.T) int {
	t.Helper()
	select {
	case code := <-ti.code:
		return code
	case <-time.After(15 * time.Second):
		t.Fatalf("init did not exit; console:\n%s", ti.console.String())
		return -1
	}
}

func TestServeStop(t *testing.T) {
	tests := []struct {
		sig  syscall.Signal
		exit string
		last string
	}{
		{syscall.SIGTERM, "stop", "reboot: Power down"},
		{syscall.SIGPWR, "stop", "reboot: Power down"},
		{sigPoweroff, "poweroff", "reboot: Power down"},
		{syscall.SIGUSR2, "poweroff", "reboot: Power down"},
		{sigHalt, "poweroff", "reboot: System halted"},
	}
	for _, tt := range tests {
		t.Run(tt.sig.String(), func(t *testing.T) {
			// The user data leaves a daemon behind that the stop must end.
			root := newRoot(t, testConfig, []byte("#!/bin/sh\nsleep 60 &\necho started\n"))
			ti := startInit(t, root)
			ti.ready(t, 1)
			ti.sigs <- syscall.SIGHUP // ignored
			t0 := time.Now()
			ti.sigs <- tt.sig
			if code := ti.exit(t); code != 0 {
				t.Errorf("exit code %d", code)
			}
			if d := time.Since(t0); d > time.Second {
				t.Errorf("stop took %v", d)
			}
			if got := readTestFile(t, filepath.Join(root, StateDir, ExitFile)); got != tt.exit {
				t.Errorf("exit file %q, want %q", got, tt.exit)
			}
			if ti.synced.Load() != 1 {
				t.Error("no sync")
			}
			out := ti.console.String()
			mustContain(t, "console", out, "ignoring SIGHUP", tt.last)
		})
	}
}

func TestServeReboot(t *testing.T) {
	root := t.TempDir()
	marks := filepath.Join(root, "marks")
	cc := "#cloud-config\nbootcmd: [\"echo boot >> " + marks + "\"]\nruncmd: [\"echo run >> " + marks + "\"]\n"
	root = newRootAt(t, root, testConfig, []byte(cc))
	ti := startInit(t, root)
	ti.ready(t, 1)
	ti.sigs <- syscall.SIGINT
	waitFor(t, "the second boot", func() bool {
		data, _ := os.ReadFile(filepath.Join(root, StateDir, ReadyFile))
		return bytes.Contains(data, []byte(`"boot":2`))
	})
	ti.ready(t, 2)
	ti.sigs <- sigReboot
	waitFor(t, "the third boot", func() bool {
		data, _ := os.ReadFile(filepath.Join(root, StateDir, ReadyFile))
		return bytes.Contains(data, []byte(`"boot":3`))
	})
	ti.ready(t, 3)
	ti.sigs <- syscall.SIGTERM
	ti.exit(t)
	if got := readTestFile(t, marks); got != "boot\nrun\nboot\nboot\n" {
		t.Errorf("marks %q (bootcmd every boot, runcmd once)", got)
	}
	out := ti.console.String()
	if n := strings.Count(out, "reboot: Restarting system"); n != 2 {
		t.Errorf("%d reboot lines:\n%s", n, out)
	}
	if ti.synced.Load() != 1 {
		t.Errorf("synced %d times", ti.synced.Load())
	}
}

func TestServePowerState(t *testing.T) {
	root := newRoot(t, testConfig, []byte("#cloud-config\npower_state:\n  mode: poweroff\n  message: going down\n  condition: [sh, -c, 'exit 0']\n"))
	ti := startInit(t, root)
	if code := ti.exit(t); code != 0 {
		t.Errorf("exit code %d", code)
	}
	if got := readTestFile(t, filepath.Join(root, StateDir, ExitFile)); got != "poweroff" {
		t.Errorf("exit file %q", got)
	}
	mustContain(t, "output log", readTestFile(t, filepath.Join(root, outputLog)), "going down")
}

func TestPowerStateCondition(t *testing.T) {
	for _, cond := range []string{"false", "[sh, -c, 'exit 1']"} {
		t.Run(cond, func(t *testing.T) {
			root := newRoot(t, testConfig, []byte("#cloud-config\npower_state:\n  mode: reboot\n  condition: "+cond+"\n"))
			ti := startInit(t, root)
			ti.ready(t, 1)
			ti.sigs <- syscall.SIGTERM
			ti.exit(t)
			if got := readTestFile(t, filepath.Join(root, StateDir, ExitFile)); got != "stop" {
				t.Errorf("exit file %q", got)
			}
			if strings.Contains(ti.console.String(), "Restarting") {
				t.Error("rebooted although the condition was not met")
			}
		})
	}
}

func TestStaleStateCleared(t *testing.T) {
	root := newRoot(t, testConfig, nil)
	writeTestFile(t, filepath.Join(root, StateDir, ExitFile), "poweroff")
	writeTestFile(t, filepath.Join(root, StateDir, ReadyFile), `{"boot":7}`)
	ti := startInit(t, root)
	ti.ready(t, 1)
	if _, err := os.Stat(filepath.Join(root, StateDir, ExitFile)); err == nil {
		t.Error("stale exit file left")
	}
	ti.sigs <- syscall.SIGTERM
	ti.exit(t)
}
