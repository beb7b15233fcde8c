package image

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// DefaultMirror is the mirror used when neither Builder.Mirror nor the host's apt sources name one.
const DefaultMirror = "http://deb.debian.org/debian"

// HostMirror returns the first Debian mirror in the host's apt sources (/etc/apt/sources.list and
// the .list and deb822 .sources files in /etc/apt/sources.list.d) that serves suite with the main
// component, or DefaultMirror. Reusing the host's mirror keeps a build on whatever mirror or proxy
// this machine is known to reach.
func HostMirror(suite string) string {
	return hostMirror("/etc/apt", suite)
}

func hostMirror(aptDir, suite string) string {
	files := []string{filepath.Join(aptDir, "sources.list")}
	more, _ := filepath.Glob(filepath.Join(aptDir, "sources.list.d", "*"))
	slices.Sort(more)
	files = append(files, more...)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var uri string
		switch {
		case strings.HasSuffix(f, ".list"):
			uri = mirrorFromList(string(b), suite)
		case strings.HasSuffix(f, ".sources"):
			uri = mirrorFromDeb822(string(b), suite)
		}
		if uri != "" {
			return uri
		}
	}
	return DefaultMirror
}

// mirrorFromList reads one-line-style sources: "deb [options] uri suite component...".
func mirrorFromList(text, suite string) string {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		f := strings.Fields(stripComment(sc.Text()))
		if len(f) == 0 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if len(f) > 0 && strings.HasPrefix(f[0], "[") {
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) > 0 {
				f = f[1:]
			}
		}
		if len(f) >= 3 && f[1] == suite && slices.Contains(f[2:], "main") && usableURI(f[0]) {
			return strings.TrimSuffix(f[0], "/")
		}
	}
	return ""
}

// mirrorFromDeb822 reads deb822-style sources: stanzas of Types, URIs, Suites, Components.
func mirrorFromDeb822(text, suite string) string {
	for _, stanza := range strings.Split(text, "\n\n") {
		fields := map[string][]string{}
		enabled := true
		sc := bufio.NewScanner(strings.NewReader(stanza))
		for sc.Scan() {
			line := stripComment(sc.Text())
			k, v, ok := strings.Cut(line, ":")
			if !ok || strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
				continue
			}
			k = strings.ToLower(strings.TrimSpace(k))
			if k == "enabled" && strings.TrimSpace(v) == "no" {
				enabled = false
			}
			fields[k] = strings.Fields(v)
		}
		if !enabled || !slices.Contains(fields["types"], "deb") || !slices.Contains(fields["suites"], suite) ||
			!slices.Contains(fields["components"], "main") {
			continue
		}
		for _, u := range fields["uris"] {
			if usableURI(u) {
				return strings.TrimSuffix(u, "/")
			}
		}
	}
	return ""
}

func stripComment(line string) string {
	if i := strings.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	return line
}

// usableURI accepts the schemes debootstrap can fetch from.
func usableURI(u string) bool {
	return strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "file:/")
}
