// Package image builds root filesystems from Debian packages with debootstrap, never downloading
// an image whole. A Recipe describes a root; its Hash names the result, so a Builder builds each
// recipe once per machine into a shared cache and hands the same read-only tree to every caller.
package image

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"

	"github.com/nubis/nubis/internal/errdefs"
)

// formatVersion is part of every Hash: bump it when the way a recipe is turned into a tree changes
// (the post-processing in this package), so that old cache entries are not reused.
const formatVersion = 1

// Recipe describes a root filesystem: a Debian suite bootstrapped with a variant plus packages,
// and the users the sandboxes run as.
type Recipe struct {
	// Name names the cache entry (lower-case letters, digits and dashes).
	Name string
	// Suite is the Debian suite, for example "bookworm".
	Suite string
	// Variant is debootstrap's --variant, for example "minbase"; empty means debootstrap's default.
	Variant string
	// Packages are installed on top of the variant (debootstrap --include).
	Packages []string
	// Users are added to /etc/passwd and /etc/group of the new root.
	Users []User
	// Dirs are created (mode 0755, owned by root) in the new root: mount points for sandboxes,
	// which must exist because roots are shared and read-only.
	Dirs []string
	// KeepDocs keeps man pages, info, /usr/share/doc and translations, which are removed by
	// default (and kept out of later package installs) as in Debian's slim images.
	KeepDocs bool
	// Files are written into the new root last (configuration drop-ins, sudoers rules).
	Files []File `json:",omitempty"`
}

// File is a regular file written into a root, owned by root.
type File struct {
	Path    string // absolute path inside the root; its directory must exist
	Content string
	Mode    os.FileMode // 0644 when 0
}

// User is an account written into a root's /etc/passwd and /etc/group (no password).
type User struct {
	Name string
	UID  int
	GID  int
	// Home is the home directory named in /etc/passwd; it is created only with CreateHome (the
	// roots of sandboxes are read-only, those of instances are copied on write).
	Home string
	// Shell is the login shell; /usr/sbin/nologin when empty.
	Shell string `json:",omitempty"`
	// CreateHome creates Home (0700, owned by the user) with an empty .ssh (0700) in it.
	CreateHome bool `json:",omitempty"`
	// Groups are existing groups the user is added to (adm, sudo...).
	Groups []string `json:",omitempty"`
}

// LambdaRuntimeUID and LambdaRuntimeGID are the ids function code runs as, as on AWS Lambda,
// where `id` in a function prints uid=993(sbx_user1051) gid=990.
const (
	LambdaRuntimeUID = 993
	LambdaRuntimeGID = 990
)

// LambdaRuntime is the root of the Lambda runtimes: Python 3.11 and Node.js 18 from bookworm.
var LambdaRuntime = Recipe{
	Name:     "lambda-runtime",
	Suite:    "bookworm",
	Variant:  "minbase",
	Packages: []string{"python3", "nodejs", "ca-certificates"},
	Users:    []User{{Name: "sbx_user1051", UID: LambdaRuntimeUID, GID: LambdaRuntimeGID, Home: "/home/sbx_user1051"}},
	// Function code, the runtime client, and layers, as on AWS.
	Dirs: []string{"/var/task", "/var/runtime", "/opt"},
}

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	suiteRE   = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	packageRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]{0,127}$`)
	userRE    = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	homeRE    = regexp.MustCompile(`^/[A-Za-z0-9_/.-]*$`)
)

// Validate checks that every field is well formed; names that reach debootstrap's command line
// cannot be read as options.
func (r Recipe) Validate() error {
	if !nameRE.MatchString(r.Name) {
		return fmt.Errorf("image recipe name %q: %w", r.Name, errdefs.ErrInvalidArgument)
	}
	if !suiteRE.MatchString(r.Suite) {
		return fmt.Errorf("image recipe %s: suite %q: %w", r.Name, r.Suite, errdefs.ErrInvalidArgument)
	}
	if r.Variant != "" && !suiteRE.MatchString(r.Variant) {
		return fmt.Errorf("image recipe %s: variant %q: %w", r.Name, r.Variant, errdefs.ErrInvalidArgument)
	}
	for _, p := range r.Packages {
		if !packageRE.MatchString(p) {
			return fmt.Errorf("image recipe %s: package %q: %w", r.Name, p, errdefs.ErrInvalidArgument)
		}
	}
	for _, u := range r.Users {
		if !userRE.MatchString(u.Name) || u.UID <= 0 || u.GID <= 0 || u.UID > 65533 || u.GID > 65533 {
			return fmt.Errorf("image recipe %s: user %+v: %w", r.Name, u, errdefs.ErrInvalidArgument)
		}
		if !homeRE.MatchString(u.Home) {
			return fmt.Errorf("image recipe %s: user %s home %q: %w", r.Name, u.Name, u.Home, errdefs.ErrInvalidArgument)
		}
		if u.Shell != "" && !homeRE.MatchString(u.Shell) {
			return fmt.Errorf("image recipe %s: user %s shell %q: %w", r.Name, u.Name, u.Shell, errdefs.ErrInvalidArgument)
		}
		for _, g := range u.Groups {
			if !userRE.MatchString(g) {
				return fmt.Errorf("image recipe %s: user %s group %q: %w", r.Name, u.Name, g, errdefs.ErrInvalidArgument)
			}
		}
	}
	for _, f := range r.Files {
		if !homeRE.MatchString(f.Path) || f.Path != path.Clean(f.Path) || f.Path == "/" || f.Mode&^0o777 != 0 {
			return fmt.Errorf("image recipe %s: file %q: %w", r.Name, f.Path, errdefs.ErrInvalidArgument)
		}
	}
	for _, d := range r.Dirs {
		if !homeRE.MatchString(d) || d != path.Clean(d) || d == "/" {
			return fmt.Errorf("image recipe %s: dir %q: %w", r.Name, d, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// Hash is a stable hash of the recipe's content (16 hex digits): the order of Packages does not
// matter, and neither does the mirror it is built from.
func (r Recipe) Hash() string {
	pkgs := slices.Clone(r.Packages)
	slices.Sort(pkgs)
	pkgs = slices.Compact(pkgs)
	dirs := slices.Clone(r.Dirs)
	slices.Sort(dirs)
	dirs = slices.Compact(dirs)
	users := slices.Clone(r.Users)
	slices.SortFunc(users, func(a, b User) int { return a.UID - b.UID })
	b, err := json.Marshal(struct {
		Format   int
		Name     string
		Suite    string
		Variant  string
		Packages []string
		Users    []User
		Dirs     []string
		KeepDocs bool
		Files    []File `json:",omitempty"`
	}{formatVersion, r.Name, r.Suite, r.Variant, pkgs, users, dirs, r.KeepDocs, r.Files})
	if err != nil {
		panic(err) // plain strings and ints always marshal
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// ID is the name of the recipe's cache entry: <name>-<hash>.
func (r Recipe) ID() string { return r.Name + "-" + r.Hash() }
