package lambda

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

type entry struct {
	name, body string
	mode       os.FileMode
}

func zipOf(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name}
		h.SetMode(e.mode | 0o644)
		if e.mode.IsDir() {
			h.SetMode(e.mode | 0o755)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(e.body))
	}
	zw.Close()
	return buf.Bytes()
}

func testService(t *testing.T) *Service {
	dir := t.TempDir()
	return &Service{cfg: Config{DataDir: dir}, code: codeStore{dir: filepath.Join(dir, "lambda", "code")}}
}

func (s *Service) putZip(t *testing.T, b []byte) string {
	t.Helper()
	info, err := checkZip(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.code.put(info, b); err != nil {
		t.Fatal(err)
	}
	return info.Hex
}

// TestUnpackStaysInside: symbolic links that each look harmless cannot, chained, lead a write out
// of the directory, in one zip or across layers.
func TestUnpackStaysInside(t *testing.T) {
	s := testService(t)
	link := os.ModeSymlink
	chain := s.putZip(t, zipOf(t, entry{name: "d/", mode: os.ModeDir}, entry{name: "d/l", body: "..", mode: link},
		entry{name: "e", body: "d/l/..", mode: link}, entry{name: "f", body: "e/..", mode: link},
		entry{name: "f/PWNED", body: "x"}))
	if err := s.unpack(chain); err == nil {
		t.Error("a zip writing through a chain of links was unpacked")
	}
	// Across layers: the first makes the links, the second writes through them.
	links := s.putZip(t, zipOf(t, entry{name: "d/", mode: os.ModeDir}, entry{name: "d/l", body: "..", mode: link},
		entry{name: "e", body: "d/l/..", mode: link}, entry{name: "f", body: "e/..", mode: link}))
	through := s.putZip(t, zipOf(t, entry{name: "f/PWNED2", body: "x"}))
	if err := s.unpackLayers([]string{links, through}); err == nil {
		t.Error("layers writing through a chain of links were unpacked")
	}
	filepath.WalkDir(filepath.Dir(s.cfg.DataDir), func(p string, d os.DirEntry, err error) error {
		if err == nil && (d.Name() == "PWNED" || d.Name() == "PWNED2") {
			t.Errorf("written outside: %s", p)
		}
		return nil
	})
}

// TestUnpackLayersLaterWins: a later layer's entry replaces what an earlier one has at its path,
// whatever the kinds, and does not write through the earlier one's link.
func TestUnpackLayersLaterWins(t *testing.T) {
	s := testService(t)
	a := s.putZip(t, zipOf(t, entry{name: "python/mod.py", body: "A"}, entry{name: "python/target.py", body: "T"},
		entry{name: "python/link.py", body: "target.py", mode: os.ModeSymlink}, entry{name: "lib/", mode: os.ModeDir}))
	b := s.putZip(t, zipOf(t, entry{name: "python/mod.py", body: "B"}, entry{name: "python/link.py", body: "L"},
		entry{name: "lib", body: "python", mode: os.ModeSymlink}))
	if err := s.unpackLayers([]string{a, b}); err != nil {
		t.Fatal(err)
	}
	opt := s.optDir([]string{a, b})
	for name, want := range map[string]string{"python/mod.py": "B", "python/link.py": "L", "python/target.py": "T"} {
		if got, err := os.ReadFile(filepath.Join(opt, name)); err != nil || string(got) != want {
			t.Errorf("%s: %q %v, want %q", name, got, err, want)
		}
	}
	if fi, err := os.Lstat(filepath.Join(opt, "lib")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("lib: %v %v, want the later layer's link", fi, err)
	}
}
