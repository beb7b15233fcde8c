// Package logs is nubis's CloudWatch Logs: log groups holding log streams of timestamped events,
// the JSON 1.1 API that reads and writes them (Logs_20140328), and the writer Lambda's execution
// environments log through (/aws/lambda/<function>, a stream per environment).
//
// Events are files, not store records: a log stream is a file of JSON lines, appended to, one
// event per line, read back from the file. A group is a directory with its settings beside its
// streams:
//
//	<Dir>/<account>/<region>/<group file name>/group.json
//	<Dir>/<account>/<region>/<group file name>/streams/<stream file name>.jsonl
//
// A file name is "n-" and the URL-escaped name or, for names too long for a file name, "h-" and
// a hash of the name, with the name in <file name>.name beside the stream (group.json holds the
// group's). A line is {"timestamp": <epoch ms>, "ingestionTime": <epoch ms>, "message": "..."};
// a line being written (no newline yet) is not read, and cut off before the next append.
package logs

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nubis/nubis/internal/errdefs"
)

// Store holds the log groups of every account and region under Dir.
type Store struct {
	// Dir is the root directory (<data-dir>/logs).
	Dir string

	mu sync.Mutex // serialises changes to groups and streams (not appends to a stream)
}

// Group is a log group's settings.
type Group struct {
	Name string `json:"name"`
	// Created is the creation time in epoch milliseconds.
	Created int64 `json:"created"`
	// RetentionDays is how long events are kept; 0 is forever.
	RetentionDays int               `json:"retentionDays,omitempty"`
	Tags          map[string]string `json:"tags,omitempty"`
}

// Stream describes a log stream.
type Stream struct {
	Name string
	// Created, FirstEvent, LastEvent and LastIngestion are epoch milliseconds (0: no events).
	Created, FirstEvent, LastEvent, LastIngestion int64
	Bytes                                         int64
}

// Event is one log event.
type Event struct {
	Timestamp     int64  `json:"timestamp"`
	IngestionTime int64  `json:"ingestionTime,omitempty"`
	Message       string `json:"message"`
	// Offset is where the event starts in its stream's file: with the stream's name, its id.
	Offset int64 `json:"-"`
}

const groupFile = "group.json"

func (s *Store) groupsDir(account, region string) string {
	return filepath.Join(s.Dir, account, region)
}

// fileName is the name of the file or directory that holds a group or stream: never "." or "..",
// never longer than a file name can be.
func fileName(name string) string {
	if e := url.PathEscape(name); len(e) <= 200 {
		return "n-" + e
	}
	sum := sha256.Sum256([]byte(name))
	return "h-" + hex.EncodeToString(sum[:20])
}

func (s *Store) groupDir(account, region, group string) string {
	return filepath.Join(s.groupsDir(account, region), fileName(group))
}

func (s *Store) streamPath(account, region, group, stream string) string {
	return filepath.Join(s.groupDir(account, region, group), "streams", fileName(stream)+".jsonl")
}

// CreateGroup creates a log group; ErrAlreadyExists if there is one of that name.
func (s *Store) CreateGroup(account, region string, g Group) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.group(account, region, g.Name); err == nil {
		return fmt.Errorf("log group %s: %w", g.Name, errdefs.ErrAlreadyExists)
	}
	return s.createGroup(account, region, g)
}

func (s *Store) createGroup(account, region string, g Group) error {
	dir := s.groupDir(account, region, g.Name)
	if err := os.MkdirAll(filepath.Join(dir, "streams"), 0o700); err != nil {
		return fmt.Errorf("log group %s: %w", g.Name, err)
	}
	if g.Created == 0 {
		g.Created = time.Now().UnixMilli()
	}
	return s.writeGroup(account, region, g)
}

func (s *Store) writeGroup(account, region string, g Group) error {
	b, err := json.Marshal(g)
	if err != nil {
		return err
	}
	dir := s.groupDir(account, region, g.Name)
	if err := writeFileSync(filepath.Join(dir, groupFile), b); err != nil {
		return fmt.Errorf("log group %s: %w", g.Name, err)
	}
	return nil
}

// writeFileSync replaces the file at path with data, durably: a temporary file, synced, renamed
// over it, and the directory synced.
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Group returns a log group; ErrNotFound if there is none.
func (s *Store) Group(account, region, name string) (Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.group(account, region, name)
}

func (s *Store) group(account, region, name string) (Group, error) {
	b, err := os.ReadFile(filepath.Join(s.groupDir(account, region, name), groupFile))
	if errors.Is(err, fs.ErrNotExist) {
		return Group{}, fmt.Errorf("log group %s: %w", name, errdefs.ErrNotFound)
	}
	if err != nil {
		return Group{}, fmt.Errorf("log group %s: %w", name, err)
	}
	var g Group
	if err := json.Unmarshal(b, &g); err != nil || g.Name != name {
		return Group{}, fmt.Errorf("log group %s: unreadable settings (%v): %w", name, err, errdefs.ErrNotFound)
	}
	return g, nil
}

// UpdateGroup changes a log group's settings with f; an error from f changes nothing.
func (s *Store) UpdateGroup(account, region, name string, f func(*Group) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.group(account, region, name)
	if err != nil {
		return err
	}
	if err := f(&g); err != nil {
		return err
	}
	g.Name = name
	return s.writeGroup(account, region, g)
}

// DeleteGroup deletes a log group and its streams.
func (s *Store) DeleteGroup(account, region, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.group(account, region, name); err != nil {
		return err
	}
	// Moved out of the region at once, then removed: a crash part-way leaves only files in the
	// trash, which the next DeleteGroup removes, never a group's old streams under a new group.
	trash := filepath.Join(s.Dir, ".trash")
	if err := os.MkdirAll(trash, 0o700); err != nil {
		return fmt.Errorf("log group %s: %w", name, err)
	}
	gone, err := os.MkdirTemp(trash, "group-")
	if err != nil {
		return fmt.Errorf("log group %s: %w", name, err)
	}
	if err := os.Rename(s.groupDir(account, region, name), filepath.Join(gone, "g")); err != nil {
		return fmt.Errorf("log group %s: %w", name, err)
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("log group %s: %w", name, err)
	}
	return nil
}

// Groups lists the log groups of an account in a region, by name.
func (s *Store) Groups(account, region string) ([]Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	entries, err := os.ReadDir(s.groupsDir(account, region))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("log groups: %w", err)
	}
	var out []Group
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(s.groupsDir(account, region), e.Name(), groupFile))
		var g Group
		if err != nil || json.Unmarshal(b, &g) != nil || fileName(g.Name) != e.Name() {
			continue // not a group, or one whose settings were lost
		}
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b Group) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// StoredBytes is the size of a log group's events on disk.
func (s *Store) StoredBytes(account, region, group string) int64 {
	var n int64
	entries, _ := os.ReadDir(filepath.Join(s.groupDir(account, region, group), "streams"))
	for _, e := range entries {
		if fi, err := e.Info(); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// CreateStream creates a log stream in a group: ErrNotFound without the group, ErrAlreadyExists
// if the stream exists.
func (s *Store) CreateStream(account, region, group, stream string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.group(account, region, group); err != nil {
		return err
	}
	path := s.streamPath(account, region, group, stream)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("log stream %s: %w", stream, errdefs.ErrAlreadyExists)
	}
	if err != nil {
		return fmt.Errorf("log stream %s: %w", stream, err)
	}
	f.Close()
	if err := nameStream(path, stream); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// nameStream writes the sidecar with the name of a stream whose file name is a hash.
func nameStream(path, stream string) error {
	if !strings.HasPrefix(filepath.Base(path), "h-") {
		return nil
	}
	if err := writeFileSync(strings.TrimSuffix(path, ".jsonl")+".name", []byte(stream)); err != nil {
		return fmt.Errorf("log stream %s: %w", stream, err)
	}
	return nil
}

// streamName returns the name of the stream in the file base.jsonl of dir.
func streamName(dir, base string) (string, bool) {
	if e, ok := strings.CutPrefix(base, "n-"); ok {
		name, err := url.PathUnescape(e)
		return name, err == nil
	}
	b, err := os.ReadFile(filepath.Join(dir, base+".name"))
	return string(b), err == nil && strings.HasPrefix(base, "h-") && fileName(string(b)) == base
}

// DeleteStream deletes a log stream.
func (s *Store) DeleteStream(account, region, group, stream string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.group(account, region, group); err != nil {
		return err
	}
	path := s.streamPath(account, region, group, stream)
	err := os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("log stream %s: %w", stream, errdefs.ErrNotFound)
	}
	os.Remove(strings.TrimSuffix(path, ".jsonl") + ".name")
	return err
}

// Streams lists the streams of a group, by name.
func (s *Store) Streams(account, region, group string) ([]Stream, error) {
	if _, err := s.Group(account, region, group); err != nil {
		return nil, err
	}
	return s.streams(account, region, group)
}

// streams lists the streams of a group the caller has found.
func (s *Store) streams(account, region, group string) ([]Stream, error) {
	dir := filepath.Join(s.groupDir(account, region, group), "streams")
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("log streams of %s: %w", group, err)
	}
	var out []Stream
	for _, e := range entries {
		base, ok := strings.CutSuffix(e.Name(), ".jsonl")
		if !ok {
			continue
		}
		name, ok := streamName(dir, base)
		if !ok {
			continue
		}
		st, err := statStream(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // deleted meanwhile
		}
		st.Name = name
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b Stream) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// statStream describes a stream file: its first and last events (first and last lines), its size
// and times.
func statStream(path string) (Stream, error) {
	f, err := os.Open(path)
	if err != nil {
		return Stream{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Stream{}, err
	}
	st := Stream{Bytes: fi.Size(), Created: birthTime(path, fi)}
	if fi.Size() == 0 {
		return st, nil
	}
	first, _ := bufio.NewReader(f).ReadBytes('\n')
	var e Event
	if json.Unmarshal(first, &e) == nil {
		st.FirstEvent = e.Timestamp
	}
	// The last complete line, from the file's last 64 KiB (events are at most 256 KiB, but a
	// stream's last event is rarely that big; a miss leaves LastEvent at the first event's).
	tail := min(fi.Size(), 64<<10)
	buf := make([]byte, tail)
	if _, err := f.ReadAt(buf, fi.Size()-tail); err == nil {
		buf = buf[:bytes.LastIndexByte(buf, '\n')+1]
		lines := bytes.Split(bytes.TrimSuffix(buf, []byte("\n")), []byte("\n"))
		if json.Unmarshal(lines[len(lines)-1], &e) == nil {
			st.LastEvent, st.LastIngestion = e.Timestamp, cmp.Or(e.IngestionTime, e.Timestamp)
		}
	}
	if st.LastEvent == 0 {
		st.LastEvent, st.LastIngestion = st.FirstEvent, st.FirstEvent
	}
	return st, nil
}

// birthTime is when the file was made (statx's birth time; its modification time where the file
// system does not keep one), in epoch milliseconds.
func birthTime(path string, fi fs.FileInfo) int64 {
	var sx unix.Statx_t
	if unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_BTIME, &sx) == nil && sx.Mask&unix.STATX_BTIME != 0 {
		return sx.Btime.Sec*1000 + int64(sx.Btime.Nsec)/1e6
	}
	return fi.ModTime().UnixMilli()
}

// Events reads the events of a stream in the order they were written; ErrNotFound if the group
// or the stream does not exist.
func (s *Store) Events(account, region, group, stream string) ([]Event, error) {
	if _, err := s.Group(account, region, group); err != nil {
		return nil, err
	}
	return s.events(account, region, group, stream)
}

// streamExists is nil if a stream of a group the caller has found exists, an error wrapping
// ErrNotFound if it does not.
func (s *Store) streamExists(account, region, group, stream string) error {
	_, err := os.Stat(s.streamPath(account, region, group, stream))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("log stream %s: %w", stream, errdefs.ErrNotFound)
	}
	return err
}

// events reads the events of a stream of a group the caller has found.
func (s *Store) events(account, region, group, stream string) ([]Event, error) {
	f, err := os.Open(s.streamPath(account, region, group, stream))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("log stream %s: %w", stream, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("log stream %s: %w", stream, err)
	}
	defer f.Close()
	return readEvents(f)
}

// readEvents reads JSON lines; a last line without its newline (being written) is left out, as
// are lines that do not parse.
func readEvents(f *os.File) ([]Event, error) {
	r := bufio.NewReaderSize(f, 64<<10)
	var out []Event
	var off int64
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return nil, err
			}
			return out, nil // EOF, with or without a partial line
		}
		var e Event
		if json.Unmarshal(line, &e) == nil {
			if e.IngestionTime == 0 {
				e.IngestionTime = e.Timestamp
			}
			e.Offset = off
			out = append(out, e)
		}
		off += int64(len(line))
	}
}

// Append adds events to a stream (ErrNotFound without the group or the stream).
func (s *Store) Append(account, region, group, stream string, events []Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.group(account, region, group); err != nil {
		return err
	}
	f, err := openAppend(s.streamPath(account, region, group, stream), 0)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("log stream %s: %w", stream, errdefs.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("log stream %s: %w", stream, err)
	}
	var buf bytes.Buffer
	now := time.Now().UnixMilli()
	for _, e := range events {
		e.IngestionTime = now
		b, _ := json.Marshal(e)
		buf.Write(append(b, '\n'))
	}
	_, err = f.Write(buf.Bytes())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("log stream %s: %w", stream, err)
	}
	return nil
}

// Adopt moves the stream file at path (events as JSON lines, in this package's format) into a
// group, creating the group if needed; a stream of that name already there is kept, and path
// removed.
func (s *Store) Adopt(account, region, group, stream, path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.group(account, region, group); errors.Is(err, errdefs.ErrNotFound) {
		if err := s.createGroup(account, region, Group{Name: group}); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	dst := s.streamPath(account, region, group, stream)
	if _, err := os.Stat(dst); err == nil {
		return os.Remove(path)
	}
	if err := os.Rename(path, dst); err != nil {
		return fmt.Errorf("log stream %s: %w", stream, err)
	}
	return nameStream(dst, stream)
}

// Writer appends events to one stream, one write per event; Lambda's environments log through it.
type Writer struct {
	mu sync.Mutex
	f  *os.File
}

// OpenWriter opens a stream for appending, creating its group and the stream if needed (as the
// Lambda service does for its functions' groups).
func (s *Store) OpenWriter(account, region, group, stream string) (*Writer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.group(account, region, group); errors.Is(err, errdefs.ErrNotFound) {
		if err := s.createGroup(account, region, Group{Name: group}); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	path := s.streamPath(account, region, group, stream)
	f, err := openAppend(path, os.O_CREATE)
	if err == nil {
		err = nameStream(path, stream)
	}
	if err != nil {
		return nil, fmt.Errorf("log stream %s: %w", stream, err)
	}
	return &Writer{f: f}, nil
}

// openAppend opens a stream's file for appending; a last line without its newline (a write cut
// short by a crash) is cut off first, so that the next event starts a line of its own.
func openAppend(path string, flag int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|flag, 0o600)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return f, err
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, fi.Size()-1); err != nil || last[0] == '\n' {
		return f, err
	}
	// Find the last newline, reading backwards in blocks.
	end := fi.Size()
	buf := make([]byte, 64<<10)
	for end > 0 {
		n := min(int64(len(buf)), end)
		if _, err := f.ReadAt(buf[:n], end-n); err != nil {
			f.Close()
			return nil, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			end = end - n + int64(i) + 1
			break
		}
		end -= n
	}
	if err := f.Truncate(end); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Write appends one event with the message msg, timestamped now.
func (w *Writer) Write(msg []byte) {
	now := time.Now().UnixMilli()
	b, _ := json.Marshal(Event{Timestamp: now, IngestionTime: now, Message: string(msg)})
	w.mu.Lock()
	defer w.mu.Unlock()
	w.f.Write(append(b, '\n'))
}

// Close closes the stream.
func (w *Writer) Close() error { return w.f.Close() }

// Prune deletes, in every group of every account and region that has a retention, the streams
// whose newest event is older than the retention (as CloudWatch Logs lets expired data go), and
// returns how many it deleted. Streams with newer events keep their older ones (reads hide them).
func (s *Store) Prune(now time.Time) (int, error) {
	accounts, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	deleted := 0
	for _, acct := range accounts {
		if !acct.IsDir() || strings.HasPrefix(acct.Name(), ".") {
			continue
		}
		regions, _ := os.ReadDir(filepath.Join(s.Dir, acct.Name()))
		for _, region := range regions {
			groups, err := s.Groups(acct.Name(), region.Name())
			if err != nil {
				return deleted, err
			}
			for _, g := range groups {
				if g.RetentionDays <= 0 {
					continue
				}
				cutoff := now.Add(-time.Duration(g.RetentionDays) * 24 * time.Hour).UnixMilli()
				streams, err := s.Streams(acct.Name(), region.Name(), g.Name)
				if err != nil {
					continue // deleted meanwhile
				}
				for _, st := range streams {
					if st.LastEvent > 0 && st.LastEvent < cutoff && st.LastIngestion < cutoff {
						if s.DeleteStream(acct.Name(), region.Name(), g.Name, st.Name) == nil {
							deleted++
						}
					}
				}
			}
		}
	}
	return deleted, nil
}
