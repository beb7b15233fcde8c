package guestinit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

const (
	cloudDir     = "/var/lib/cloud"
	instanceLink = cloudDir + "/instance"
	outputLog    = "/var/log/cloud-init-output.log"
)

// openOutputLog opens /var/log/cloud-init-output.log for appending (0640, group adm, as current
// cloud-init leaves it).
func (b *boot) openOutputLog() (*os.File, error) {
	p := b.path(outputLog)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, fmt.Errorf("open %s: %w", outputLog, err)
	}
	_, statErr := os.Stat(p)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", outputLog, err)
	}
	if statErr != nil {
		if gid, ok := b.groupID("adm"); ok {
			b.chown(p, 0, gid)
		}
	}
	return f, nil
}

// defaultUserSpec is cloud-init's default user, named by the Config.
func (b *boot) defaultUserSpec() userSpec {
	return userSpec{
		Name:              b.cfg.DefaultUser,
		Gecos:             "EC2 Default User",
		Groups:            stringList{"adm", "sudo", "wheel", "systemd-journal"},
		Sudo:              sudoRules{"ALL=(ALL) NOPASSWD:ALL"},
		onlyExistingGroup: true,
	}
}

// defaultUser makes sure the default user exists, may sudo, and has the key pair's keys.
func (b *boot) defaultUser() error {
	if b.cfg.DefaultUser == "" {
		if len(b.cfg.PublicKeys) > 0 {
			return errors.New("no DefaultUser: the public keys are not installed")
		}
		return nil
	}
	return b.applyUser(b.defaultUserSpec(), b.cfg.PublicKeys)
}

// applyUser creates the user if needed, then adds its sudo rules and authorized keys.
func (b *boot) applyUser(u userSpec, keys []string) error {
	pw, created, err := b.ensureUser(u)
	if pw.Name == "" {
		return err
	}
	if created {
		b.logf("created user %s (uid %d)", pw.Name, pw.UID)
	}
	errs := []error{err}
	if len(u.Sudo) > 0 {
		errs = append(errs, b.addSudoRules(u.Name, u.Sudo))
	}
	errs = append(errs, b.addAuthorizedKeys(pw, append(append([]string(nil), keys...), u.SSHAuthorizedKeys...)))
	return errors.Join(errs...)
}

// addAuthorizedKeys adds the keys missing from the user's ~/.ssh/authorized_keys (dir 0700,
// file 0600, owned by the user). A key counts as present when its blob is, whatever the options
// or comment around it.
func (b *boot) addAuthorizedKeys(pw passwdEntry, keys []string) error {
	var add []string
	for _, k := range keys {
		if k = strings.TrimSpace(k); k != "" && !strings.ContainsAny(k, "\r\n") {
			add = append(add, k)
		}
	}
	if len(add) == 0 {
		return nil
	}
	home := b.path(pw.Home)
	if _, err := os.Stat(home); err != nil {
		return fmt.Errorf("authorized keys of %s: %w", pw.Name, err)
	}
	dir := filepath.Join(home, ".ssh")
	file := filepath.Join(dir, "authorized_keys")
	// Root writes into a directory its user controls: never through a symlink.
	for _, p := range []string{dir, file} {
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("authorized keys of %s: %s is a symlink", pw.Name, p)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("authorized keys of %s: %w", pw.Name, err)
	}
	os.Chmod(dir, 0o700)
	b.chown(dir, pw.UID, pw.GID)
	old, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("authorized keys of %s: %w", pw.Name, err)
	}
	have := map[string]bool{}
	for _, l := range strings.Split(string(old), "\n") {
		have[keyID(l)] = true
	}
	content := string(old)
	if content != "" && !strings.HasSuffix(content, "\n") {
		content += "\n"
	}
	n := 0
	for _, k := range add {
		if id := keyID(k); !have[id] {
			have[id] = true
			content += k + "\n"
			n++
		}
	}
	if n > 0 {
		if err := writeAtomic(file, []byte(content), 0o600); err != nil {
			return fmt.Errorf("authorized keys of %s: %w", pw.Name, err)
		}
		b.logf("added %d key(s) to %s's authorized_keys", n, pw.Name)
	}
	os.Chmod(file, 0o600)
	b.chown(file, pw.UID, pw.GID)
	return nil
}

// keyID identifies an authorized_keys line by its key blob (or the whole line if it is not a key).
func keyID(line string) string {
	line = strings.TrimSpace(line)
	if pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err == nil {
		return string(pk.Marshal())
	}
	return line
}

// powerCommands are linked to the init so `sudo shutdown -h now` works without systemd.
var powerCommands = []string{"shutdown", "poweroff", "halt", "reboot"}

// linkPowerCommands makes /usr/local/sbin/<name> a symlink to the init for each power command
// the image does not provide in /sbin or /usr/sbin. systemd's (symlinks to systemctl) do not
// count: systemd does not run here, so they could not act.
func (b *boot) linkPowerCommands() error {
	var errs []error
	for _, name := range powerCommands {
		link := b.path("/usr/local/sbin/" + name)
		target, _ := os.Readlink(link)
		if b.imageProvides(name) {
			if target == BinaryPath {
				os.Remove(link) // the image has one now
			}
			continue
		}
		if target == BinaryPath {
			continue
		}
		if _, err := os.Lstat(link); err == nil {
			continue // something of the user's: leave it
		}
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Symlink(BinaryPath, link); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (b *boot) imageProvides(name string) bool {
	for _, dir := range []string{"/sbin/", "/usr/sbin/"} {
		p := b.path(dir + name)
		fi, err := os.Lstat(p)
		if err != nil {
			continue
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			if t, err := os.Readlink(p); err == nil && filepath.Base(t) == "systemctl" {
				continue
			}
		}
		return true
	}
	return false
}

// instanceDir is /var/lib/cloud/instances/<id>, or "" without an instance id.
func (b *boot) instanceDir() string {
	if b.cfg.InstanceID == "" {
		return ""
	}
	return cloudDir + "/instances/" + b.cfg.InstanceID
}

// userDataInit reads and parses the user data, runs bootcmd (every boot) and, on the instance's
// first boot, what cloud-init does before sshd starts: write_files, groups, users,
// ssh_authorized_keys. The semaphore sem/user-data in the instance's directory marks the user
// data as processed, so a later boot of the same instance does not process it again (the disk
// persists) while a new instance id does.
func (b *boot) userDataInit(ctx context.Context) error {
	raw, err := os.ReadFile(b.path(UserDataPath))
	if err != nil && !os.IsNotExist(err) {
		b.logf("read user data: %v", err)
	}
	b.ud = parseUserData(raw)
	inst := b.instanceDir()
	if inst == "" {
		return errors.New("no InstanceID: user data not processed")
	}
	for _, d := range []string{inst + "/sem", inst + "/scripts"} {
		if err := os.MkdirAll(b.path(d), 0o755); err != nil {
			return fmt.Errorf("user data: %w", err)
		}
	}
	os.Remove(b.path(inst + "/boot-finished"))
	if err := b.linkInstance(); err != nil {
		b.logf("%v", err)
	}
	cc := b.ud.config
	if cc != nil && len(cc.BootCmd) > 0 {
		b.runScript(ctx, "bootcmd", inst+"/bootcmd", shellScript(cc.BootCmd),
			append(append([]string(nil), baseEnv...), "INSTANCE_ID="+b.cfg.InstanceID))
	}
	sem := b.path(inst + "/sem/user-data")
	if _, err := os.Stat(sem); err == nil {
		return nil
	}
	if err := os.WriteFile(sem, fmt.Appendf(nil, "%d: %d\n", os.Getpid(), time.Now().Unix()), 0o644); err != nil {
		return fmt.Errorf("user data semaphore: %w", err)
	}
	b.perInstance = true
	if len(raw) > 0 {
		if err := os.WriteFile(b.path(inst+"/user-data.txt"), raw, 0o600); err != nil {
			b.logf("save user data: %v", err)
		}
	}
	for _, w := range b.ud.warnings {
		b.report("%s", w)
	}
	switch b.ud.kind {
	case udScript:
		b.logf("user data is a script; it runs once the boot is complete")
	case udUnsupported:
		b.report("Unhandled user data (%s): nubis-init runs #! scripts and #cloud-config only", b.ud.format)
	case udCloudConfig:
		b.applyConfig(cc)
	}
	return nil
}

// linkInstance points /var/lib/cloud/instance at this instance's directory (relative, which
// cloud-init's absolute link means too).
func (b *boot) linkInstance() error {
	link, target := b.path(instanceLink), "instances/"+b.cfg.InstanceID
	if t, err := os.Readlink(link); err == nil && t == target {
		return nil
	}
	if fi, err := os.Lstat(link); err == nil && fi.Mode()&os.ModeSymlink == 0 {
		return fmt.Errorf("%s is not a symlink; leaving it", instanceLink)
	}
	os.Remove(link)
	if err := os.Symlink(target, link); err != nil {
		return fmt.Errorf("link %s: %w", instanceLink, err)
	}
	return nil
}

// applyConfig applies the modules of cloud-init's init stage, in its order.
func (b *boot) applyConfig(cc *cloudConfig) {
	for _, k := range cc.Unsupported {
		b.report("skipping module '%s': not supported by nubis-init", k)
	}
	for _, k := range cc.Unknown {
		b.report("skipping unknown module '%s'", k)
	}
	if cc.Hostname != "" || cc.FQDN != "" {
		b.report("hostname/fqdn: the host name cannot be changed from inside the instance; it stays %s", b.fqdn())
	}
	b.writeFiles(cc.WriteFiles, false)
	a, err := b.loadAccounts()
	for _, g := range cc.Groups {
		if err != nil {
			b.report("groups: %v", err)
			break
		}
		if _, ok := a.groupID(g.Name); !ok {
			if _, err := a.addGroup(g.Name, 0, true, nil); err != nil {
				b.report("groups: %v", err)
				continue
			}
		}
		for _, m := range g.Members {
			if _, ok := a.user(m); !ok {
				b.report("groups: unable to add user %s to group %s: no such user", m, g.Name)
				continue
			}
			a.addMember(g.Name, m)
		}
	}
	if err == nil {
		if err := a.save(); err != nil {
			b.report("groups: %v", err)
		}
	}
	for _, u := range cc.Users {
		if u.isDefault {
			continue // created before user data, on every boot
		}
		if err := b.applyUser(u, nil); err != nil {
			b.report("users: %v", err)
		}
	}
	if len(cc.SSHAuthorizedKeys) > 0 {
		def, ok := b.defaultPasswd()
		if !ok {
			b.report("ssh_authorized_keys: no default user to add them to")
		} else if err := b.addAuthorizedKeys(def, cc.SSHAuthorizedKeys); err != nil {
			b.report("ssh_authorized_keys: %v", err)
		}
	}
}

func (b *boot) defaultPasswd() (passwdEntry, bool) {
	if b.cfg.DefaultUser == "" {
		return passwdEntry{}, false
	}
	a, err := b.loadAccounts()
	if err != nil {
		return passwdEntry{}, false
	}
	return a.user(b.cfg.DefaultUser)
}

// writeFiles writes the write_files entries of one phase (deferred: after users exist).
func (b *boot) writeFiles(files []writeFile, deferred bool) {
	for _, f := range files {
		if f.Defer != deferred {
			continue
		}
		if err := b.writeFile(f); err != nil {
			b.report("write_files: %v", err)
		}
	}
}

func (b *boot) writeFile(f writeFile) error {
	if f.Path == "" {
		return errors.New("an entry has no path")
	}
	if f.Source.node != nil && f.Content == "" {
		return fmt.Errorf("%s: source is not supported (no network to fetch it)", f.Path)
	}
	data, warning, err := decodeContent(f.Content, f.Encoding)
	if err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	if warning != "" {
		b.report("write_files: %s: %s", f.Path, warning)
	}
	mode := uint32(0o644)
	if f.Permissions.set {
		mode = f.Permissions.mode
	}
	if f.Permissions.bad != "" {
		b.report("write_files: %s: undecodable permissions %s, using 0644", f.Path, f.Permissions.bad)
	}
	owner := f.Owner
	if owner == "" {
		owner = "root:root"
	}
	uid, gid, err := b.owner(owner)
	if err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	p := b.path(f.Path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	if f.Append {
		w, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, os.FileMode(mode&0o777))
		if err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
		_, err = w.Write(data)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
	} else if err := writeAtomic(p, data, os.FileMode(mode&0o777)); err != nil {
		return err
	}
	b.chown(p, uid, gid)
	if err := os.Chmod(p, unixMode(mode)); err != nil { // after chown, which clears set-id bits
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	return nil
}

// unixMode converts permission bits as chmod(1) takes them to an os.FileMode.
func unixMode(m uint32) os.FileMode {
	mode := os.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= os.ModeSticky
	}
	return mode
}
