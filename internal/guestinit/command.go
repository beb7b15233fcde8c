package guestinit

import (
	"fmt"
	"io"
	"strings"
	"syscall"
)

// Command mode: inside an instance /usr/local/sbin/{shutdown,poweroff,halt,reboot} are symlinks
// to the init's binary, which then acts as that command: it asks PID 1, by a signal, to power
// off, halt or reboot.

// commandRequest is a parsed power command.
type commandRequest struct {
	act  action // actNone: nothing to do (shutdown -c, -k, --help, -w)
	note string // said on stderr before acting (a delayed shutdown runs now)
	help bool
}

// parseCommand parses the arguments of shutdown, poweroff, halt or reboot, with the options of
// systemd's and sysvinit's versions. Options that change nothing here are accepted and ignored.
func parseCommand(name string, args []string) (commandRequest, error) {
	if name == "shutdown" {
		return parseShutdown(args)
	}
	req := commandRequest{act: map[string]action{"poweroff": actPoweroff, "halt": actHalt, "reboot": actReboot}[name]}
	if req.act == actNone {
		return req, fmt.Errorf("unknown command %q", name)
	}
	positional := 0
	for i, a := range args {
		switch a {
		case "--help":
			return commandRequest{help: true}, nil
		case "--halt":
			req.act = actHalt
		case "-p", "--poweroff":
			req.act = actPoweroff
		case "--reboot":
			req.act = actReboot
		case "-w", "--wtmp-only":
			return commandRequest{}, nil
		case "-f", "-ff", "--force", "-n", "--no-sync", "-d", "--no-wtmp", "--no-wall", "-i", "-h":
		case "--":
			positional += len(args) - i - 1
		default:
			if strings.HasPrefix(a, "-") {
				return req, fmt.Errorf("invalid option '%s'", a)
			}
			positional++
		}
		if a == "--" {
			break
		}
	}
	if positional > 0 && req.act != actReboot {
		return req, fmt.Errorf("too many arguments")
	}
	return req, nil
}

func parseShutdown(args []string) (commandRequest, error) {
	req := commandRequest{act: actPoweroff}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--help":
			return commandRequest{help: true}, nil
		case a == "--halt":
			req.act = actHalt
		case a == "--poweroff":
			req.act = actPoweroff
		case a == "--reboot":
			req.act = actReboot
		case a == "--no-wall":
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "--"):
			return req, fmt.Errorf("unrecognized option '%s'", a)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			cancel := false
			for j, c := range a[1:] {
				switch c {
				case 'H':
					req.act = actHalt
				case 'P', 'h':
					// -h is power off (halt with -H), as systemd's shutdown has it.
					if c == 'P' || req.act != actHalt {
						req.act = actPoweroff
					}
				case 'r':
					req.act = actReboot
				case 'c', 'k':
					cancel = true
				case 'f', 'F', 'n', 'a', 'q':
				case 't':
					// sysvinit's -t SECONDS: the value follows, in this word or the next.
					if j+2 >= len(a) {
						i++
					}
				default:
					return req, fmt.Errorf("invalid option -- '%c'", c)
				}
				if c == 't' {
					break
				}
			}
			if cancel {
				return commandRequest{}, nil // nothing is scheduled: nothing to cancel or warn of
			}
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) == 0 {
		req.note = "no time given; shutting down now (scheduled shutdowns are not supported here)"
		return req, nil
	}
	switch when := pos[0]; {
	case when == "now" || when == "+0" || when == "0":
	case isShutdownTime(when):
		req.note = fmt.Sprintf("scheduled shutdowns are not supported here; shutting down now instead of at %s", when)
	default:
		return req, fmt.Errorf("failed to parse time specification: %s", when)
	}
	return req, nil
}

// isShutdownTime tells whether s is +MINUTES or HH:MM.
func isShutdownTime(s string) bool {
	digits := func(s string) bool {
		if s == "" {
			return false
		}
		for _, c := range s {
			if c < '0' || c > '9' {
				return false
			}
		}
		return true
	}
	if m, ok := strings.CutPrefix(s, "+"); ok {
		return digits(m)
	}
	h, m, ok := strings.Cut(s, ":")
	return ok && digits(h) && digits(m) && len(h) <= 2 && len(m) == 2
}

// signalInit sends sig to PID 1.
func signalInit(sig syscall.Signal) error { return syscall.Kill(1, sig) }

// signalFor is the signal that asks PID 1 for a.
func signalFor(a action) syscall.Signal {
	switch a {
	case actHalt:
		return sigHalt
	case actReboot:
		return sigReboot
	}
	return sigPoweroff
}

// runCommand is command mode: it parses the arguments, checks the caller is root, and asks
// PID 1 to act. It returns the exit code.
func runCommand(name string, args []string, stdout, stderr io.Writer, euid int, send func(syscall.Signal) error) int {
	req, err := parseCommand(name, args)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	if req.help {
		fmt.Fprintf(stdout, "%s [OPTIONS...]\n\n%s\n", name, commandHelp[name])
		return 0
	}
	if req.act == actNone {
		return 0
	}
	verb := map[action]string{actPoweroff: "power off", actHalt: "halt", actReboot: "reboot"}[req.act]
	if euid != 0 {
		fmt.Fprintf(stderr, "Failed to %s system: Access denied (you must be root)\n", verb)
		return 1
	}
	if req.note != "" {
		fmt.Fprintf(stderr, "%s: %s\n", name, req.note)
	}
	if err := send(signalFor(req.act)); err != nil {
		fmt.Fprintf(stderr, "Failed to %s system: %v\n", verb, err)
		return 1
	}
	return 0
}

var commandHelp = map[string]string{
	"shutdown": "Power off (-P, -h), halt (-H) or reboot (-r) this instance. A time (+m, hh:mm) is\n" +
		"accepted but the instance shuts down now; -c and -k do nothing.",
	"poweroff": "Power off this instance (it stops, as after `aws ec2 stop-instances`).",
	"halt":     "Halt this instance (the same as power off here).",
	"reboot":   "Reboot this instance.",
}
