// Package mountinfo reads this process's mount table, /proc/self/mountinfo (see proc(5)), for
// the packages that mount things on the host (images, instance disks, volumes) and must know what
// is mounted where.
package mountinfo

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Mount is one line of the mount table.
type Mount struct {
	ID, Parent int
	Dev        string // major:minor
	Root       string // the directory of the file system mounted here
	Point      string
	Options    string // per-mount options (rw,nodev,...)
	FSType     string
	Source     string
}

// Read returns the mount table.
func Read() ([]Mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	defer f.Close()
	var out []Mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if m, ok := Parse(sc.Text()); ok {
			out = append(out, m)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	return out, nil
}

// Parse parses one line:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
func Parse(line string) (Mount, bool) {
	fields := strings.Fields(line)
	sep := -1
	for i := 6; i < len(fields); i++ {
		if fields[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 || sep+2 >= len(fields) {
		return Mount{}, false
	}
	id, err1 := strconv.Atoi(fields[0])
	parent, err2 := strconv.Atoi(fields[1])
	if err1 != nil || err2 != nil {
		return Mount{}, false
	}
	return Mount{ID: id, Parent: parent, Dev: fields[2], Root: Unescape(fields[3]), Point: Unescape(fields[4]),
		Options: fields[5], FSType: fields[sep+1], Source: Unescape(fields[sep+2])}, true
}

// Unescape undoes the kernel's octal escapes (\040 for a space and so on).
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Under lists the mount points at or below dir (one per mount, so a point mounted twice is
// listed twice), in the order of the table.
func Under(dir string) ([]string, error) {
	mounts, err := Read()
	if err != nil {
		return nil, err
	}
	dir = filepath.Clean(dir)
	prefix := strings.TrimSuffix(dir, "/") + "/"
	var out []string
	for _, m := range mounts {
		if m.Point == dir || strings.HasPrefix(m.Point, prefix) {
			out = append(out, m.Point)
		}
	}
	return out, nil
}
