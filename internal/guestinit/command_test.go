package guestinit

import (
	"bytes"
	"errors"
	"strings"
	"syscall"
	"testing"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		cmd  string
		want action
		note bool // says the shutdown is not delayed
		err  bool
	}{
		{"shutdown -h now", actPoweroff, false, false},
		{"shutdown -P now", actPoweroff, false, false},
		{"shutdown -H now", actHalt, false, false},
		{"shutdown -H -h now", actHalt, false, false},
		{"shutdown -r now", actReboot, false, false},
		{"shutdown -r +0", actReboot, false, false},
		{"shutdown -hr now", actReboot, false, false},
		{"shutdown --reboot now going down", actReboot, false, false},
		{"shutdown --poweroff --no-wall now", actPoweroff, false, false},
		{"shutdown now", actPoweroff, false, false},
		{"shutdown", actPoweroff, true, false},
		{"shutdown -h +5", actPoweroff, true, false},
		{"shutdown -r 23:30 maintenance", actReboot, true, false},
		{"shutdown -t 5 -r now", actReboot, false, false},
		{"shutdown -t5 -h now", actPoweroff, false, false},
		{"shutdown -c", actNone, false, false},
		{"shutdown -k now", actNone, false, false},
		{"shutdown -h tomorrow", actPoweroff, false, true},
		{"shutdown -x now", actPoweroff, false, true},
		{"shutdown --frobnicate", actPoweroff, false, true},
		{"poweroff", actPoweroff, false, false},
		{"poweroff -f", actPoweroff, false, false},
		{"poweroff --force --no-wall", actPoweroff, false, false},
		{"poweroff --reboot", actReboot, false, false},
		{"poweroff -w", actNone, false, false},
		{"halt", actHalt, false, false},
		{"halt -p", actPoweroff, false, false},
		{"halt --poweroff -f", actPoweroff, false, false},
		{"reboot", actReboot, false, false},
		{"reboot -f", actReboot, false, false},
		{"reboot --force -p", actPoweroff, false, false},
		{"reboot now", actReboot, false, false},
		{"reboot -z", actReboot, false, true},
		{"halt extra", actHalt, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			f := strings.Fields(tt.cmd)
			req, err := parseCommand(f[0], f[1:])
			if (err != nil) != tt.err {
				t.Fatalf("err %v", err)
			}
			if err != nil {
				return
			}
			if req.act != tt.want || (req.note != "") != tt.note {
				t.Errorf("got %v note %q, want %v note %v", req.act, req.note, tt.want, tt.note)
			}
		})
	}
}

func TestRunCommand(t *testing.T) {
	tests := []struct {
		name    string
		cmd     string
		euid    int
		sendErr error
		code    int
		sent    syscall.Signal
		stderr  string
	}{
		{"poweroff", "poweroff", 0, nil, 0, sigPoweroff, ""},
		{"halt", "halt", 0, nil, 0, sigHalt, ""},
		{"reboot", "reboot", 0, nil, 0, sigReboot, ""},
		{"shutdown -r now", "shutdown -r now", 0, nil, 0, sigReboot, ""},
		{"delayed", "shutdown -h +10", 0, nil, 0, sigPoweroff, "shutting down now instead of at +10"},
		{"not root", "shutdown -h now", 1000, nil, 1, 0, "Failed to power off system: Access denied"},
		{"not root reboot", "reboot", 1000, nil, 1, 0, "Failed to reboot system: Access denied"},
		{"cancel as anyone", "shutdown -c", 1000, nil, 0, 0, ""},
		{"bad option", "poweroff --nope", 0, nil, 1, 0, "poweroff: invalid option '--nope'"},
		{"send fails", "poweroff", 0, errors.New("no such process"), 1, sigPoweroff, "Failed to power off system: no such process"},
		{"help", "reboot --help", 1000, nil, 0, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			var sent syscall.Signal
			f := strings.Fields(tt.cmd)
			code := runCommand(f[0], f[1:], &stdout, &stderr, tt.euid, func(s syscall.Signal) error {
				sent = s
				return tt.sendErr
			})
			if code != tt.code || sent != tt.sent {
				t.Errorf("code %d sent %v, want %d %v (stderr %q)", code, sent, tt.code, tt.sent, stderr.String())
			}
			if tt.stderr == "" && stderr.Len() > 0 || !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q, want %q", stderr.String(), tt.stderr)
			}
		})
	}
}
