package guestinit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// accounts is /etc/passwd, /etc/group, /etc/shadow and /etc/gshadow of the instance, edited as
// text (useradd may be missing from an image, and would act on the host's files in tests).
type accounts struct {
	b                              *boot
	passwd, group, shadow, gshadow []string
	hasShadow, hasGshadow          bool
	changed                        map[string]bool
}

func (b *boot) loadAccounts() (*accounts, error) {
	a := &accounts{b: b, changed: map[string]bool{}}
	var err error
	if a.passwd, err = readLines(b.path("/etc/passwd")); err != nil {
		return nil, err
	}
	if a.group, err = readLines(b.path("/etc/group")); err != nil {
		return nil, err
	}
	if a.shadow, err = readLines(b.path("/etc/shadow")); err != nil {
		return nil, err
	}
	if a.gshadow, err = readLines(b.path("/etc/gshadow")); err != nil {
		return nil, err
	}
	_, err = os.Stat(b.path("/etc/shadow"))
	a.hasShadow = err == nil
	_, err = os.Stat(b.path("/etc/gshadow"))
	a.hasGshadow = err == nil
	return a, nil
}

// save writes the files that changed, keeping their modes and owners (shadow files: 0640
// root:shadow when new).
func (a *accounts) save() error {
	var errs []error
	for _, f := range []struct {
		name  string
		lines []string
		mode  os.FileMode
	}{
		{"/etc/passwd", a.passwd, 0o644},
		{"/etc/group", a.group, 0o644},
		{"/etc/shadow", a.shadow, 0o640},
		{"/etc/gshadow", a.gshadow, 0o640},
	} {
		if !a.changed[f.name] {
			continue
		}
		p := a.b.path(f.name)
		_, statErr := os.Stat(p)
		if err := writeIfChanged(p, []byte(strings.Join(f.lines, "\n")+"\n"), f.mode); err != nil {
			errs = append(errs, err)
			continue
		}
		if statErr != nil && f.mode == 0o640 {
			if gid, ok := a.groupID("shadow"); ok && a.b.asRoot {
				os.Chown(p, 0, gid)
			}
		}
	}
	a.changed = map[string]bool{}
	return errors.Join(errs...)
}

// find returns the index of the line for name in lines, or -1.
func find(lines []string, name string) int {
	for i, l := range lines {
		if n, _, ok := strings.Cut(l, ":"); ok && n == name {
			return i
		}
	}
	return -1
}

// passwdEntry is a line of /etc/passwd.
type passwdEntry struct {
	Name     string
	UID, GID int
	Gecos    string
	Home     string
	Shell    string
}

func (a *accounts) user(name string) (passwdEntry, bool) {
	i := find(a.passwd, name)
	if i < 0 {
		return passwdEntry{}, false
	}
	f := strings.Split(a.passwd[i], ":")
	if len(f) < 7 {
		return passwdEntry{}, false
	}
	uid, err1 := strconv.Atoi(f[2])
	gid, err2 := strconv.Atoi(f[3])
	if err1 != nil || err2 != nil {
		return passwdEntry{}, false
	}
	return passwdEntry{Name: f[0], UID: uid, GID: gid, Gecos: f[4], Home: f[5], Shell: f[6]}, true
}

func (a *accounts) groupID(name string) (int, bool) {
	i := find(a.group, name)
	if i < 0 {
		return 0, false
	}
	f := strings.Split(a.group[i], ":")
	if len(f) < 3 {
		return 0, false
	}
	gid, err := strconv.Atoi(f[2])
	return gid, err == nil
}

// usedIDs returns the ids in field 2 of lines.
func usedIDs(lines []string) map[int]bool {
	used := map[int]bool{}
	for _, l := range lines {
		if f := strings.Split(l, ":"); len(f) > 2 {
			if id, err := strconv.Atoi(f[2]); err == nil {
				used[id] = true
			}
		}
	}
	return used
}

// freeID picks an id as useradd does: the lowest free one from 1000 up for users, the highest
// free one from 999 down to 100 for system accounts. want, when free, is taken.
func freeID(used map[int]bool, system bool, want int) (int, error) {
	if want > 0 && !used[want] {
		return want, nil
	}
	if system {
		for id := 999; id >= 100; id-- {
			if !used[id] {
				return id, nil
			}
		}
	} else {
		for id := 1000; id <= 60000; id++ {
			if !used[id] {
				return id, nil
			}
		}
	}
	return 0, errors.New("no free id")
}

// addGroup creates a group; gid 0 picks one.
func (a *accounts) addGroup(name string, gid int, system bool, members []string) (int, error) {
	if !validName.MatchString(name) {
		return 0, fmt.Errorf("invalid group name %q", name)
	}
	gid, err := freeID(usedIDs(a.group), system, gid)
	if err != nil {
		return 0, fmt.Errorf("group %s: %w", name, err)
	}
	a.group = append(a.group, fmt.Sprintf("%s:x:%d:%s", name, gid, strings.Join(members, ",")))
	a.changed["/etc/group"] = true
	if a.hasGshadow {
		a.gshadow = append(a.gshadow, fmt.Sprintf("%s:!::%s", name, strings.Join(members, ",")))
		a.changed["/etc/gshadow"] = true
	}
	return gid, nil
}

// addMember adds user to group's member list (in group and gshadow); it reports false when
// the group does not exist.
func (a *accounts) addMember(group, user string) bool {
	ok := addToList(a.group, group, 3, user)
	if ok {
		a.changed["/etc/group"] = true
	}
	if a.hasGshadow && addToList(a.gshadow, group, 3, user) {
		a.changed["/etc/gshadow"] = true
	}
	return ok
}

// addToList adds user to the comma-separated list in field of name's line; false when the
// line is missing (a user already listed counts as added, without a change).
func addToList(lines []string, name string, field int, user string) bool {
	i := find(lines, name)
	if i < 0 {
		return false
	}
	f := strings.Split(lines[i], ":")
	for len(f) <= field {
		f = append(f, "")
	}
	var members []string
	if f[field] != "" {
		members = strings.Split(f[field], ",")
	}
	if !slices.Contains(members, user) {
		f[field] = strings.Join(append(members, user), ",")
		lines[i] = strings.Join(f, ":")
	}
	return true
}

// lockedPassword is the password field of a user who logs in with keys only. It is "*", not
// "!": sshd without PAM (the images' UsePAM no) refuses every login, keys too, of an account
// whose password starts with "!".
const lockedPassword = "*"

// ensureUser creates the user u describes if it does not exist, and adds it to u's groups
// (creating missing ones, unless onlyExistingGroup). It returns the user's passwd entry and
// whether it was created.
func (b *boot) ensureUser(u userSpec) (passwdEntry, bool, error) {
	if !validName.MatchString(u.Name) {
		return passwdEntry{}, false, fmt.Errorf("invalid user name %q", u.Name)
	}
	for _, s := range []string{u.Gecos, u.Homedir, u.Shell, u.Passwd, u.HashedPasswd} {
		if strings.ContainsAny(s, ":\n") {
			return passwdEntry{}, false, fmt.Errorf("user %s: a value contains ':' or a newline", u.Name)
		}
	}
	a, err := b.loadAccounts()
	if err != nil {
		return passwdEntry{}, false, err
	}
	pw, exists := a.user(u.Name)
	if !exists {
		if pw, err = a.addUser(u); err != nil {
			return passwdEntry{}, false, err
		}
	}
	var errs []error
	for _, g := range u.Groups {
		if !validName.MatchString(g) {
			errs = append(errs, fmt.Errorf("user %s: invalid group name %q", u.Name, g))
			continue
		}
		if a.addMember(g, u.Name) || u.onlyExistingGroup {
			continue
		}
		if _, err := a.addGroup(g, 0, true, []string{u.Name}); err != nil {
			errs = append(errs, err)
		}
	}
	if err := a.save(); err != nil {
		return pw, !exists, errors.Join(append(errs, err)...)
	}
	if !exists && !u.NoCreateHome && !(u.System && u.Homedir == "") {
		if err := b.makeHome(pw); err != nil {
			errs = append(errs, err)
		}
	}
	return pw, !exists, errors.Join(errs...)
}

// addUser adds the passwd, shadow and (user private) group lines for a new user.
func (a *accounts) addUser(u userSpec) (passwdEntry, error) {
	want := 0
	if u.UID != nil {
		want = *u.UID
	}
	group := u.PrimaryGroup
	if group == "" {
		group = u.Name
	}
	gid, ok := a.groupID(group)
	used := usedIDs(a.passwd)
	if !ok { // a user private group: one id for both, as useradd picks it
		for id := range usedIDs(a.group) {
			used[id] = true
		}
	}
	uid, err := freeID(used, u.System, want)
	if err != nil {
		return passwdEntry{}, fmt.Errorf("user %s: %w", u.Name, err)
	}
	if !ok {
		if gid, err = a.addGroup(group, uid, u.System, nil); err != nil {
			return passwdEntry{}, fmt.Errorf("user %s: %w", u.Name, err)
		}
	}
	pw := passwdEntry{Name: u.Name, UID: uid, GID: gid, Gecos: u.Gecos, Home: u.Homedir, Shell: u.Shell}
	if pw.Home == "" {
		pw.Home = "/home/" + u.Name
		if u.System {
			pw.Home = "/nonexistent"
		}
	}
	if pw.Shell == "" {
		pw.Shell = "/bin/sh"
		if _, err := os.Stat(a.b.path("/bin/bash")); err == nil {
			pw.Shell = "/bin/bash"
		}
	}
	a.passwd = append(a.passwd, fmt.Sprintf("%s:x:%d:%d:%s:%s:%s", pw.Name, pw.UID, pw.GID, pw.Gecos, pw.Home, pw.Shell))
	a.changed["/etc/passwd"] = true
	pass, hash := lockedPassword, u.HashedPasswd
	if hash == "" {
		hash = u.Passwd
	}
	if hash != "" {
		pass = hash
		if u.LockPasswd == nil || *u.LockPasswd { // cloud-init locks by default
			pass = "!" + hash
		}
	}
	days := time.Now().Unix() / 86400
	a.shadow = append(a.shadow, fmt.Sprintf("%s:%s:%d:0:99999:7:::", pw.Name, pass, days))
	a.changed["/etc/shadow"] = true
	return pw, nil
}

// makeHome creates a new user's home from /etc/skel, owned by the user, mode 0700.
func (b *boot) makeHome(pw passwdEntry) error {
	home := b.path(pw.Home)
	if _, err := os.Stat(home); err == nil {
		return nil
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return fmt.Errorf("home of %s: %w", pw.Name, err)
	}
	b.chown(home, pw.UID, pw.GID)
	skel := b.path("/etc/skel")
	err := filepath.WalkDir(skel, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == skel {
			return err
		}
		rel, _ := filepath.Rel(skel, p)
		dst := filepath.Join(home, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			err = os.Mkdir(dst, info.Mode().Perm())
		case d.Type().IsRegular():
			var data []byte
			if data, err = os.ReadFile(p); err == nil {
				err = os.WriteFile(dst, data, info.Mode().Perm())
			}
		case d.Type()&fs.ModeSymlink != 0:
			var target string
			if target, err = os.Readlink(p); err == nil {
				err = os.Symlink(target, dst)
			}
		default:
			return nil
		}
		if err != nil {
			return err
		}
		b.lchown(dst, pw.UID, pw.GID)
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("home of %s: %w", pw.Name, err)
	}
	return nil
}

func (b *boot) chown(p string, uid, gid int) {
	if b.asRoot {
		os.Chown(p, uid, gid)
	}
}

func (b *boot) lchown(p string, uid, gid int) {
	if b.asRoot {
		os.Lchown(p, uid, gid)
	}
}

// keepOwner gives path the owner of fi (a file it replaced).
func keepOwner(path string, fi os.FileInfo) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
		os.Chown(path, int(st.Uid), int(st.Gid))
	}
}

// groupID looks a group up in the instance's /etc/group.
func (b *boot) groupID(name string) (int, bool) {
	lines, err := readLines(b.path("/etc/group"))
	if err != nil {
		return 0, false
	}
	return (&accounts{group: lines}).groupID(name)
}

// owner resolves "user:group", "user" or ":group" (names or numbers) in the instance's files.
func (b *boot) owner(spec string) (uid, gid int, err error) {
	a, err := b.loadAccounts()
	if err != nil {
		return 0, 0, err
	}
	user, group, hasGroup := strings.Cut(spec, ":")
	if user != "" {
		if pw, ok := a.user(user); ok {
			uid, gid = pw.UID, pw.GID
		} else if n, err := strconv.Atoi(user); err == nil {
			uid = n
		} else {
			return 0, 0, fmt.Errorf("owner %q: unknown user %s", spec, user)
		}
	}
	if hasGroup && group != "" {
		if g, ok := a.groupID(group); ok {
			gid = g
		} else if n, err := strconv.Atoi(group); err == nil {
			gid = n
		} else {
			return 0, 0, fmt.Errorf("owner %q: unknown group %s", spec, group)
		}
	}
	return uid, gid, nil
}

const sudoersFile = "/etc/sudoers.d/90-cloud-init-users"

// addSudoRules adds rules for user to /etc/sudoers.d/90-cloud-init-users, as cloud-init writes
// them; rules already there are not added again.
func (b *boot) addSudoRules(user string, rules []string) error {
	p := b.path(sudoersFile)
	old, err := os.ReadFile(p)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("read %s: %w", sudoersFile, err)
	}
	have := map[string]bool{}
	for _, l := range strings.Split(string(old), "\n") {
		have[strings.Join(strings.Fields(l), " ")] = true
	}
	var add []string
	for _, r := range rules {
		if strings.ContainsAny(r, "\n\r") {
			return fmt.Errorf("sudo rule for %s contains a newline", user)
		}
		line := user + " " + r
		if !have[strings.Join(strings.Fields(line), " ")] {
			add = append(add, line)
			have[line] = true
		}
	}
	if len(add) == 0 {
		return nil
	}
	content := string(old)
	if len(old) == 0 {
		content = fmt.Sprintf("# Created by cloud-init v. %s on %s\n", ciVersion, rfc2822(time.Now()))
	} else if !strings.HasSuffix(content, "\n") {
		content += "\n"
	}
	content += "\n# User rules for " + user + "\n" + strings.Join(add, "\n") + "\n"
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return fmt.Errorf("write %s: %w", sudoersFile, err)
	}
	if err := writeAtomic(p, []byte(content), 0o440); err != nil {
		return err
	}
	b.chown(p, 0, 0)
	return b.includeSudoersD()
}

// includeSudoersD makes /etc/sudoers read /etc/sudoers.d, if sudo is installed and it does not.
func (b *boot) includeSudoersD() error {
	p := b.path("/etc/sudoers")
	data, err := os.ReadFile(p)
	if err != nil {
		return nil // no sudo
	}
	if strings.Contains(string(data), "includedir /etc/sudoers.d") {
		return nil
	}
	add := "\n# Added by cloud-init v. " + ciVersion + "\n#includedir /etc/sudoers.d\n"
	return writeIfChanged(p, append(data, add...), 0o440)
}
