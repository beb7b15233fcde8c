package guestinit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// proc is a program for the init to run.
type proc struct {
	path string   // the program, as a path inside the instance
	args []string // argv; empty means {path}
	dir  string   // working directory inside the instance; "" is /
	env  []string // nil means baseEnv
	// line receives each line of the program's stdout and stderr (nil: they go to /dev/null,
	// unless file is set).
	line func([]byte)
	file *os.File // stdout and stderr go straight to this file (sshd's log)
}

// baseEnv is the environment of the programs the init runs: root's, as cloud-init's scripts get.
var baseEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root",
	"USER=root",
	"LOGNAME=root",
	"SHELL=/bin/sh",
	"LANG=C.UTF-8",
}

// start starts p in its own session. It returns the pid, a channel for the exit status and one
// closed when all output has been read (which may be long after the exit, when the program left
// a background process holding its stdout).
func (b *boot) start(p proc) (int, <-chan syscall.WaitStatus, <-chan struct{}, error) {
	exe, dir := b.path(p.path), b.path(p.dir)
	sys := &syscall.SysProcAttr{Setsid: true}
	if b.chroot {
		exe, dir = p.path, p.dir
		if dir == "" {
			dir = "/"
		}
		sys.Chroot = b.root
	}
	args := p.args
	if len(args) == 0 {
		args = []string{p.path}
	}
	env := p.env
	if env == nil {
		env = baseEnv
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("start %s: %w", p.path, err)
	}
	defer devnull.Close()
	out := devnull
	copied := make(chan struct{})
	var r *os.File
	switch {
	case p.file != nil:
		out = p.file
		close(copied)
	case p.line != nil:
		var w *os.File
		r, w, err = os.Pipe()
		if err != nil {
			return 0, nil, nil, fmt.Errorf("start %s: %w", p.path, err)
		}
		defer w.Close()
		out = w
	default:
		close(copied)
	}
	pid, status, err := b.procs.forkExec(exe, args, &syscall.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: []uintptr{devnull.Fd(), out.Fd(), out.Fd()},
		Sys:   sys,
	})
	if err != nil {
		if r != nil {
			r.Close()
		}
		return 0, nil, nil, err
	}
	if r != nil {
		go func() {
			defer close(copied)
			defer r.Close()
			copyLines(r, p.line)
		}()
	}
	return pid, status, copied, nil
}

// runProc runs p and waits for it to exit, or for ctx to end (then it returns ctx's error and
// leaves the process to the stop that cancelled ctx).
func (b *boot) runProc(ctx context.Context, p proc) (syscall.WaitStatus, error) {
	_, status, copied, err := b.start(p)
	if err != nil {
		return 0, err
	}
	select {
	case ws := <-status:
		// The output usually ends with the process; do not wait for a background child that
		// keeps the pipe open (its output still reaches the log while it runs).
		select {
		case <-copied:
		case <-time.After(200 * time.Millisecond):
		}
		return ws, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("run %s: %w", p.path, ctx.Err())
	}
}

// copyLines calls line for each line read from r (without its newline); a very long line is
// passed on in pieces.
func copyLines(r io.Reader, line func([]byte)) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		l, err := br.ReadSlice('\n')
		if len(l) > 0 {
			line(trimNewline(l))
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

func trimNewline(l []byte) []byte {
	if n := len(l); n > 0 && l[n-1] == '\n' {
		l = l[:n-1]
		if n := len(l); n > 0 && l[n-1] == '\r' {
			l = l[:n-1]
		}
	}
	return l
}

// consoleLines is a line sink that writes to the console with the init's prefix.
func (b *boot) consoleLines(l []byte) {
	b.console.Write(append([]byte(b.prefix()), append(l, '\n')...))
}

// outputLines returns a line sink that writes to the console and, raw, to log (as cloud-init
// tees the output of user scripts to the console and cloud-init-output.log).
func (b *boot) outputLines(log io.Writer) func([]byte) {
	return func(l []byte) {
		b.consoleLines(l)
		if log != nil {
			log.Write(append(append([]byte(nil), l...), '\n'))
		}
	}
}
