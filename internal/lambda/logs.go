package lambda

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/nubis/nubis/internal/logs"
)

// Function logs go to CloudWatch Logs (internal/logs) as on AWS: a log group /aws/lambda/<name>
// per function, created with its first environment, and a log stream per execution environment.

// logGroup is the default log group of a function's logs.
func logGroup(function string) string { return "/aws/lambda/" + function }

// logGroupOf is the log group a version logs to: its LoggingConfig's, else the default.
func logGroupOf(c FunctionConfiguration) string {
	if g := c.LoggingConfig["LogGroup"]; g != "" {
		return g
	}
	return logGroup(c.FunctionName)
}

// loggingConfigInput is a create's or update's LoggingConfig.
type loggingConfigInput struct {
	LogFormat           *string
	ApplicationLogLevel *string
	SystemLogLevel      *string
	LogGroup            *string
}

var logGroupNameRE = regexp.MustCompile(`^[.\-_/#A-Za-z0-9]{1,512}$`)

// applyLogging sets a LoggingConfig on c: another log group, and the text format (nubis writes
// function logs as text; JSON and log levels are not there yet).
func applyLogging(c *FunctionConfiguration, in *loggingConfigInput) error {
	if in == nil {
		return nil
	}
	if in.LogFormat != nil {
		switch *in.LogFormat {
		case "Text":
		case "JSON":
			return invalidParam("nubis writes function logs as text; LogFormat JSON is not supported yet.")
		default:
			return validation(*in.LogFormat, "loggingConfig.logFormat", "Member must satisfy enum value set: [JSON, Text]")
		}
	}
	if in.ApplicationLogLevel != nil || in.SystemLogLevel != nil {
		return invalidParam("ApplicationLogLevel and SystemLogLevel require LogFormat JSON, which nubis does not support yet.")
	}
	if in.LogGroup != nil {
		if !logGroupNameRE.MatchString(*in.LogGroup) {
			return validation(*in.LogGroup, "loggingConfig.logGroup", `Member must satisfy regular expression pattern: [\.\-_/#A-Za-z0-9]+`)
		}
		c.LoggingConfig = map[string]string{"LogFormat": "Text", "LogGroup": *in.LogGroup}
	}
	return nil
}

// logStream is one environment's log stream.
type logStream struct {
	w *logs.Writer
}

func (s *Service) openLogStream(account string, c FunctionConfiguration, stream string) (*logStream, error) {
	w, err := s.cfg.Logs.OpenWriter(account, s.cfg.Region, logGroupOf(c), stream)
	if err != nil {
		return nil, err
	}
	return &logStream{w: w}, nil
}

// write appends one log event.
func (s *logStream) write(msg []byte) { s.w.Write(msg) }

func (s *logStream) printf(format string, args ...any) { s.write(fmt.Appendf(nil, format, args...)) }

func (s *logStream) Close() error { return s.w.Close() }

// migrateLogs moves the log streams of the layout before CloudWatch Logs
// (<DataDir>/lambda/logs/<account>/<region>/<function>/<url-escaped stream>.jsonl) into their
// log groups.
func (s *Service) migrateLogs() error {
	old := filepath.Join(s.cfg.DataDir, "lambda", "logs")
	streams, err := filepath.Glob(filepath.Join(old, "*", "*", "*", "*.jsonl"))
	if err != nil {
		return err
	}
	for _, path := range streams {
		rel, _ := filepath.Rel(old, path)
		parts := strings.Split(rel, string(filepath.Separator))
		stream, err := url.PathUnescape(strings.TrimSuffix(parts[3], ".jsonl"))
		if err != nil {
			continue
		}
		if err := s.cfg.Logs.Adopt(parts[0], parts[1], logGroup(parts[2]), stream, path); err != nil {
			return fmt.Errorf("move function logs: %w", err)
		}
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("move function logs: %w", err)
	}
	return nil
}

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
