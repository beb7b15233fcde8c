package logs

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPattern(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		match   []string
		miss    []string
	}{
		{"", []string{"", "anything"}, nil},
		{"ERROR", []string{"an ERROR here", "ERROR"}, []string{"an error here", "ERR"}},
		{"ERROR disk", []string{"ERROR: disk full"}, []string{"ERROR: net down", "disk full"}},
		{"?ERROR ?WARN", []string{"WARN low", "ERROR x"}, []string{"INFO ok"}},
		{"ERROR -timeout", []string{"ERROR disk"}, []string{"ERROR timeout"}},
		{`"disk full" ?a ?b`, []string{"disk full a", "b disk full"}, []string{"disk full c", "disk  full a"}},
		{`  "REPORT RequestId:"  `, []string{"REPORT RequestId: 1"}, []string{"REPORT Request"}},
		{`""`, []string{"x"}, nil},
		{`?"ERROR" "MainThread" ?"WARN" "Deadlock"`, []string{"ERROR in MainThread", "WARN Deadlock"}, []string{"ERROR Deadlock", "WARN MainThread"}},
		{`"say \"hi\"" "a\\b"`, []string{`say "hi" a\b`}, []string{`say hi a\b`}},
		{"ERROR\ndisk", []string{"ERROR: disk"}, []string{"ERROR\ndis"}},
	} {
		p, err := ParsePattern(tc.pattern)
		if err != nil {
			t.Fatalf("%q: %v", tc.pattern, err)
		}
		for _, m := range tc.match {
			if !p.Match(m) {
				t.Errorf("%q does not match %q", tc.pattern, m)
			}
		}
		for _, m := range tc.miss {
			if p.Match(m) {
				t.Errorf("%q matches %q", tc.pattern, m)
			}
		}
	}
	for _, bad := range []string{`{ $.level = "ERROR" }`, "[ip, user]", "%ERR.*%", `"open`, `"a"b`, "a\"b", "?", "- x"} {
		if _, err := ParsePattern(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParsePattern(f *testing.F) {
	for _, s := range []string{"", "ERROR", `"a b" ?c -d`, "{ $.x = 1 }", `"`, "? -", "a\tb"} {
		f.Add(s, "a b c")
	}
	f.Fuzz(func(t *testing.T, pattern, msg string) {
		p, err := ParsePattern(pattern)
		if err != nil {
			return
		}
		p.Match(msg)
		for _, terms := range append([][]string{p.all, p.none}, p.groups...) {
			if slices.Contains(terms, "") {
				t.Fatalf("%q: an empty term", pattern)
			}
		}
		// The required terms, written out, match when nothing is excluded or optional.
		if len(p.none) == 0 && len(p.groups) == 0 && !p.Match(strings.Join(p.all, " ")) {
			t.Fatalf("%q does not match its own terms", pattern)
		}
	})
}

// TestEventsSkipPartialLines: a line being written (no newline yet) and a line that does not
// parse are not events.
func TestEventsSkipPartialLines(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	w, err := s.OpenWriter("1", "r", "/g", "st")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("one"))
	w.Close()
	path := s.streamPath("1", "r", "/g", "st")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("not json\n{\"timestamp\": 5, \"message\": \"half")
	f.Close()
	events, err := s.Events("1", "r", "/g", "st")
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, e := range events {
		msgs = append(msgs, e.Message)
	}
	if !slices.Equal(msgs, []string{"one"}) {
		t.Fatalf("events %q", msgs)
	}
	if st, err := s.Streams("1", "r", "/g"); err != nil || len(st) != 1 || st[0].FirstEvent == 0 || filepath.Base(path) != "n-st.jsonl" {
		t.Fatalf("streams %+v %v", st, err)
	}
	// Written to again: the cut-short line is dropped, the new event is whole.
	w, err = s.OpenWriter("1", "r", "/g", "st")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("two"))
	w.Close()
	events, _ = s.Events("1", "r", "/g", "st")
	if len(events) != 2 || events[1].Message != "two" {
		t.Fatalf("after the next write: %+v", events)
	}
}

// TestNames: any valid name is a group or stream of its own, "." and ".." and 512-character
// names included, and deleting one touches no other.
func TestNames(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	long := strings.Repeat("a/", 256)
	for _, g := range []string{".", "..", "...", long, long[:511] + "b", "/x"} {
		if err := s.CreateGroup("1", "r", Group{Name: g}); err != nil {
			t.Fatalf("%q: %v", g, err)
		}
		for _, st := range []string{".", "..", long, "%2F"} {
			if err := s.CreateStream("1", "r", g, st); err != nil {
				t.Fatalf("%q %q: %v", g, st, err)
			}
		}
	}
	if err := s.DeleteGroup("1", "r", ".."); err != nil {
		t.Fatal(err)
	}
	groups, err := s.Groups("1", "r")
	if err != nil || len(groups) != 5 {
		t.Fatalf("groups after deleting \"..\": %d %v", len(groups), err)
	}
	streams, err := s.Streams("1", "r", long)
	if err != nil || len(streams) != 4 || !slices.ContainsFunc(streams, func(st Stream) bool { return st.Name == long }) {
		t.Fatalf("streams of the long group: %+v %v", streams, err)
	}
}

// TestPrune: streams whose newest event is past their group's retention go; others stay.
func TestPrune(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	now := time.Now()
	for _, g := range []Group{{Name: "/kept-forever"}, {Name: "/week", RetentionDays: 7}} {
		if err := s.CreateGroup("1", "r", g); err != nil {
			t.Fatal(err)
		}
		for name, age := range map[string]time.Duration{"old": 10 * 24 * time.Hour, "new": time.Hour} {
			if err := s.CreateStream("1", "r", g.Name, name); err != nil {
				t.Fatal(err)
			}
			f, _ := os.OpenFile(s.streamPath("1", "r", g.Name, name), os.O_WRONLY|os.O_APPEND, 0)
			ts := now.Add(-age).UnixMilli()
			fmt.Fprintf(f, `{"timestamp":%d,"ingestionTime":%d,"message":"m"}`+"\n", ts, ts)
			f.Close()
		}
	}
	n, err := s.Prune(now)
	if err != nil || n != 1 {
		t.Fatalf("pruned %d, %v; want 1", n, err)
	}
	for g, want := range map[string]int{"/kept-forever": 2, "/week": 1} {
		if st, _ := s.Streams("1", "r", g); len(st) != want {
			t.Errorf("%s: %d streams left, want %d", g, len(st), want)
		}
	}
}
