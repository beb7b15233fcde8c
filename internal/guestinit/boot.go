package guestinit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// boot is one boot of the instance. All its file-system work goes through path(), below root,
// so that tests run the steps against a temporary directory as a fake root without being PID 1.
type boot struct {
	root    string
	chroot  bool // run programs chrooted to root (only when root is not "/")
	console io.Writer
	procs   *reaper
	power   chan<- action // power_state requests; nil in tests that do not want them
	sshAddr string
	n       int       // which boot of this init, from 1
	started time.Time // when this boot began: console timestamps and "Up N seconds" count from it
	asRoot  bool      // chown files (only root may)

	cfg     Config
	cfgErr  error // reading instance.json
	cfgWarn error // values of it that were dropped

	ud          *userData // this boot's parsed user data
	perInstance bool      // user data not yet processed for this instance: do it now

	wg sync.WaitGroup // the sshd supervisor
}

// path maps a path inside the instance to the init's view of it.
func (b *boot) path(p string) string {
	return filepath.Join(b.root, filepath.Clean("/"+p))
}

func (b *boot) uptime() time.Duration { return time.Since(b.started) }

// logf writes one line of the init's own to the console, with a kernel-style timestamp (seconds
// since the boot began).
func (b *boot) logf(format string, a ...any) {
	fmt.Fprintf(b.console, "%s%s\n", b.prefix(), fmt.Sprintf(format, a...))
}

func (b *boot) prefix() string {
	return fmt.Sprintf("[%12.6f] nubis-init: ", b.uptime().Seconds())
}

// report writes a line to the console and to cloud-init-output.log, as cloud-init's own lines
// (stage start and finish, module messages) appear in both.
func (b *boot) report(format string, a ...any) {
	line := fmt.Sprintf(format, a...)
	fmt.Fprintf(b.console, "%s%s\n", b.prefix(), line)
	f, err := b.openOutputLog()
	if err != nil {
		b.logf("%v", err)
		return
	}
	defer f.Close()
	fmt.Fprintln(f, line)
}

// step runs one boot step, logging its error. A panic is logged too: it must not end PID 1.
func (b *boot) step(ctx context.Context, name string, fn func() error) {
	if ctx.Err() != nil {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			b.logf("%s: panic: %v", name, r)
		}
	}()
	if err := fn(); err != nil {
		b.logf("%s: %v", name, err)
	}
}

// ciVersion is how the init names itself in cloud-init's lines: cloud-init's shape (Debian 12's
// version) so tools that read them keep working, and honest about what wrote them.
const ciVersion = "22.4.2-nubis-init"

// datasource is what cloud-init on EC2 reports.
const datasource = "DataSourceEc2Local"

func rfc2822(t time.Time) string { return t.UTC().Format(time.RFC1123Z) }

func (b *boot) upSeconds() string { return fmt.Sprintf("%.2f", b.uptime().Seconds()) }

// run is the boot sequence. Each step logs its own errors and the boot goes on; a cancelled
// ctx (stop or reboot) skips what is left.
func (b *boot) run(ctx context.Context) {
	defer func() {
		if r := recover(); r != nil {
			b.logf("boot: panic: %v", r)
		}
	}()
	b.report("Cloud-init v. %s running 'init' at %s. Up %s seconds.", ciVersion, rfc2822(time.Now()), b.upSeconds())
	if b.cfgErr != nil {
		b.logf("%v; going on without it", b.cfgErr)
	}
	if b.cfgWarn != nil {
		b.logf("config: %v", b.cfgWarn)
	}
	b.step(ctx, "clear state", b.clearState)
	b.step(ctx, "/run", b.setupRun)
	b.step(ctx, "hostname", b.writeHostname)
	b.step(ctx, "resolv.conf", b.writeResolvConf)
	b.step(ctx, "ssh host keys", func() error { return b.hostKeys(ctx) })
	b.step(ctx, "default user", b.defaultUser)
	b.step(ctx, "power commands", b.linkPowerCommands)
	b.step(ctx, "user data", func() error { return b.userDataInit(ctx) })
	if ctx.Err() != nil {
		return
	}
	b.step(ctx, "instance connect", b.writeInstanceConnect)
	b.step(ctx, "sshd", func() error { return b.startSSHD(ctx) })
	b.step(ctx, "ready", b.writeReady)
	b.step(ctx, "final", func() error { return b.finalStage(ctx) })
}

var (
	validName       = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	validInstanceID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	validHost       = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?$`)
)

// checkConfig drops values that would break the files they go into (passwd lines, paths).
func (b *boot) checkConfig() error {
	var errs []error
	c := &b.cfg
	if c.InstanceID != "" && !validInstanceID.MatchString(c.InstanceID) {
		errs = append(errs, fmt.Errorf("invalid InstanceID %q ignored", c.InstanceID))
		c.InstanceID = ""
	}
	if c.DefaultUser != "" && !validName.MatchString(c.DefaultUser) {
		errs = append(errs, fmt.Errorf("invalid DefaultUser %q ignored", c.DefaultUser))
		c.DefaultUser = ""
	}
	if c.Hostname != "" && !validHost.MatchString(c.Hostname) {
		errs = append(errs, fmt.Errorf("invalid Hostname %q ignored", c.Hostname))
		c.Hostname = ""
	}
	if c.Domain != "" && !validHost.MatchString(c.Domain) {
		errs = append(errs, fmt.Errorf("invalid Domain %q ignored", c.Domain))
		c.Domain = ""
	}
	if strings.ContainsAny(c.PrivateIP, " \t\n#") {
		errs = append(errs, fmt.Errorf("invalid PrivateIP %q ignored", c.PrivateIP))
		c.PrivateIP = ""
	}
	if c.Hostname == "" && b.root == "/" {
		c.Hostname, _ = os.Hostname() // runc set it in the instance's UTS namespace
	}
	return errors.Join(errs...)
}

// clearState removes what a previous run of the instance left in StateDir.
func (b *boot) clearState() error {
	var errs []error
	for _, name := range []string{ReadyFile, ExitFile} {
		if err := os.Remove(filepath.Join(b.path(StateDir), name)); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// setupRun makes what Debian expects in /run, which is a fresh tmpfs on every start.
func (b *boot) setupRun() error {
	var errs []error
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{
		{"/run/sshd", 0o755},
		{"/run/lock", 0o777 | os.ModeSticky},
		{"/run/user", 0o755},
	} {
		if err := os.MkdirAll(b.path(d.path), 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Chmod(b.path(d.path), d.mode); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := os.Lstat(b.path("/run/utmp")); os.IsNotExist(err) {
		if err := os.WriteFile(b.path("/run/utmp"), nil, 0o664); err != nil {
			errs = append(errs, err)
		} else {
			os.Chmod(b.path("/run/utmp"), 0o664)
			if gid, ok := b.groupID("utmp"); ok {
				b.chown(b.path("/run/utmp"), 0, gid)
			}
		}
	}
	for link, target := range map[string]string{"/var/run": "/run", "/var/lock": "/run/lock"} {
		if _, err := os.Lstat(b.path(link)); os.IsNotExist(err) {
			if err := os.Symlink(target, b.path(link)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// fqdn is the instance's full host name.
func (b *boot) fqdn() string {
	if b.cfg.Domain == "" {
		return b.cfg.Hostname
	}
	return b.cfg.Hostname + "." + b.cfg.Domain
}

// writeHostname writes /etc/hostname and maps the host name in /etc/hosts (sudo warns when the
// host name does not resolve). The UTS host name itself was set by runc.
func (b *boot) writeHostname() error {
	host := b.cfg.Hostname
	if host == "" {
		return errors.New("no host name")
	}
	if err := writeIfChanged(b.path("/etc/hostname"), []byte(host+"\n"), 0o644); err != nil {
		return err
	}
	old, err := os.ReadFile(b.path("/etc/hosts"))
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("read /etc/hosts: %w", err)
	}
	ip := b.cfg.PrivateIP
	if ip == "" {
		ip = "127.0.1.1" // Debian's convention for the host's own name without a fixed address
	}
	return writeIfChanged(b.path("/etc/hosts"), updateHosts(old, ip, b.fqdn(), host), 0o644)
}

// defaultHosts is /etc/hosts for an image that has none.
const defaultHosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"

// updateHosts returns hosts with names mapped to ip: the names are taken out of every other
// line (a line left without names goes), and one line "ip fqdn short" is added. Comments,
// localhost lines and everything else stay as they were.
func updateHosts(hosts []byte, ip string, names ...string) []byte {
	if len(hosts) == 0 {
		hosts = []byte(defaultHosts)
	}
	drop := map[string]bool{}
	var want []string
	for _, n := range names {
		if n != "" && !drop[n] {
			drop[n] = true
			want = append(want, n)
		}
	}
	var out bytes.Buffer
	for _, line := range strings.SplitAfter(string(hosts), "\n") {
		if line == "" {
			continue
		}
		body, comment, _ := strings.Cut(strings.TrimRight(line, "\n"), "#")
		fields := strings.Fields(body)
		if len(fields) < 2 {
			out.WriteString(line)
			continue
		}
		kept := fields[:1]
		for _, f := range fields[1:] {
			if !drop[f] {
				kept = append(kept, f)
			}
		}
		switch {
		case len(kept) == len(fields):
			out.WriteString(line)
		case len(kept) > 1:
			out.WriteString(strings.Join(kept, "\t"))
			if comment != "" {
				out.WriteString(" #" + comment)
			}
			out.WriteString("\n")
		}
	}
	if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
		out.WriteString("\n")
	}
	if len(want) > 0 {
		fmt.Fprintf(&out, "%s\t%s\n", ip, strings.Join(want, " "))
	}
	return out.Bytes()
}

// writeReady tells nubis the boot is complete.
func (b *boot) writeReady() error {
	data, err := json.Marshal(struct {
		Boot int    `json:"boot"`
		Time string `json:"time"`
	}{b.n, time.Now().UTC().Format(time.RFC3339)})
	if err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	if err := writeAtomic(filepath.Join(b.path(StateDir), ReadyFile), data, 0o644); err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	b.logf("boot %d complete", b.n)
	return nil
}

// writeState writes a file in StateDir, logging a failure.
func (b *boot) writeState(path string, data []byte) {
	if err := writeAtomic(path, data, 0o644); err != nil {
		b.logf("%v", err)
	}
}

// writeAtomic writes data to a temporary file beside path and renames it over path.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writeIfChanged replaces path's content when it differs, keeping the file's mode and owner.
// It writes in place when the file cannot be replaced (a bind-mounted /etc/hosts, say).
func writeIfChanged(path string, data []byte, mode os.FileMode) error {
	old, err := os.ReadFile(path)
	if err == nil && bytes.Equal(old, data) {
		return nil
	}
	fi, statErr := os.Stat(path)
	if statErr == nil {
		mode = fi.Mode().Perm()
	}
	if err := writeAtomic(path, data, mode); err != nil {
		if statErr != nil {
			return err
		}
		if err := os.WriteFile(path, data, mode); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		return nil
	}
	if statErr == nil {
		keepOwner(path, fi)
	}
	return nil
}

// readLines reads a text file as lines without their newlines; a missing file has none.
func readLines(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	s := strings.TrimSuffix(string(data), "\n")
	if s == "" {
		return nil, nil
	}
	return strings.Split(s, "\n"), nil
}

// writeResolvConf points the resolver at the VPC's DNS server, as EC2's DHCP options do.
func (b *boot) writeResolvConf() error {
	if b.cfg.Nameserver == "" {
		return nil
	}
	text := "# Written by nubis-init at every boot: the VPC's DNS resolver.\n"
	if b.cfg.Domain != "" {
		text += "search " + b.cfg.Domain + "\n"
	}
	text += "nameserver " + b.cfg.Nameserver + "\n"
	path := b.path("/etc/resolv.conf")
	os.Remove(path) // a symlink (systemd-resolved's, say) is replaced, not followed
	return os.WriteFile(path, []byte(text), 0o644)
}
