package lambda

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Function logs are kept as CloudWatch Logs keeps them: a log group /aws/lambda/<name> per function
// and a log stream per execution environment. Each stream is a file of JSON lines
// {"timestamp": <epoch ms>, "message": "..."}, one per log event, so that a later CloudWatch Logs
// API can serve them as they are:
//
//	<DataDir>/lambda/logs/<account>/<region>/<function>/<url-escaped stream name>.jsonl
type logStore struct {
	dir    string
	region string
}

func (l logStore) open(account, function, stream string) (*logStream, error) {
	dir := filepath.Join(l.dir, account, l.region, function)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("log stream: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, url.PathEscape(stream)+".jsonl"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("log stream: %w", err)
	}
	return &logStream{f: f, name: stream}, nil
}

// logStream is one environment's log stream.
type logStream struct {
	mu   sync.Mutex
	f    *os.File
	name string
}

type logEvent struct {
	Timestamp int64  `json:"timestamp"`
	Message   string `json:"message"`
}

// write appends one log event.
func (s *logStream) write(msg []byte) {
	b, _ := json.Marshal(logEvent{Timestamp: time.Now().UnixMilli(), Message: string(msg)})
	s.mu.Lock()
	defer s.mu.Unlock()
	s.f.Write(append(b, '\n'))
}

func (s *logStream) printf(format string, args ...any) { s.write(fmt.Appendf(nil, format, args...)) }

func (s *logStream) Close() error { return s.f.Close() }

// tailBuffer keeps the last maxTail bytes of one invocation's log, for X-Amz-Log-Result.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

// maxTail is how much log LogType Tail returns: the last 4 KB.
const maxTail = 4096

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 4*maxTail {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-maxTail:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) reset() {
	t.mu.Lock()
	t.buf = t.buf[:0]
	t.mu.Unlock()
}

// tail returns the last 4 KB written.
func (t *tailBuffer) tail() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	if len(b) > maxTail {
		b = b[len(b)-maxTail:]
	}
	return append([]byte(nil), b...)
}
