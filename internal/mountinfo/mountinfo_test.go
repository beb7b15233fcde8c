package mountinfo

import (
	"testing"
)

func TestParse(t *testing.T) {
	m, ok := Parse(`36 35 98:0 /mnt1 /mnt\0402 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`)
	want := Mount{ID: 36, Parent: 35, Dev: "98:0", Root: "/mnt1", Point: "/mnt 2", Options: "rw,noatime", FSType: "ext3", Source: "/dev/root"}
	if !ok || m != want {
		t.Fatalf("got %+v, want %+v", m, want)
	}
	for _, bad := range []string{"", "36 35 98:0 /a /b rw", "x 35 98:0 /a /b rw - ext4 /dev/x rw"} {
		if _, ok := Parse(bad); ok {
			t.Errorf("parsed %q", bad)
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{`/a\040b\134c`: `/a b\c`, `/x\04`: `/x\04`, `/plain`: `/plain`} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReadAndUnder(t *testing.T) {
	ms, err := Read()
	if err != nil || len(ms) == 0 {
		t.Fatalf("Read: %v, %d mounts", err, len(ms))
	}
	under, err := Under("/")
	if err != nil || len(under) != len(ms) {
		t.Fatalf("Under(/): %v, %d of %d", err, len(under), len(ms))
	}
}

func FuzzParse(f *testing.F) {
	f.Add(`36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`)
	f.Fuzz(func(t *testing.T, line string) {
		Parse(line)
		Unescape(line)
	})
}

func TestParseTable(t *testing.T) {
	tests := []struct {
		line string
		ok   bool
		want Mount
	}{
		{
			line: `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`,
			ok:   true,
			want: Mount{ID: 36, Parent: 35, Dev: "98:0", Root: "/mnt1", Point: "/mnt2", Options: "rw,noatime", FSType: "ext3", Source: "/dev/root"},
		},
		{
			line: `610 27 7:3 / /tmp/a\040b rw,nosuid,nodev,relatime shared:300 master:2 - ext4 /dev/loop3 rw,discard`,
			ok:   true,
			want: Mount{ID: 610, Parent: 27, Dev: "7:3", Root: "/", Point: "/tmp/a b", Options: "rw,nosuid,nodev,relatime", FSType: "ext4", Source: "/dev/loop3"},
		},
		{
			line: `22 27 0:21 / /proc rw,relatime - proc proc rw`,
			ok:   true,
			want: Mount{ID: 22, Parent: 27, Dev: "0:21", Root: "/", Point: "/proc", Options: "rw,relatime", FSType: "proc", Source: "proc"},
		},
		{line: `22 27 0:21 / /proc rw,relatime proc proc rw`},
		{line: `x 27 0:21 / /proc rw - proc proc rw`},
		{line: ``},
	}
	for _, tt := range tests {
		got, ok := Parse(tt.line)
		if ok != tt.ok || got != tt.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}
