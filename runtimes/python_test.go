package runtimes

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// ---------------------------------------------------------------------------------------------
// Python.

const meanPy = `from statistics import mean

def lambda_handler(event, context):
    return {"statusCode": 200, "body": mean(event["nums"])}
`

func pythonArgv(t testing.TB, python string) []string {
	return []string{python, filepath.Join(installed(t), "python", "bootstrap.py")}
}

func TestPython(t *testing.T) {
	forEachPython(t, func(t *testing.T, python string) {
		argv := pythonArgv(t, python)

		t.Run("mean, warm", func(t *testing.T) {
			api := newRuntimeAPI(t)
			p := start(t, api, argv, function{"lambda_function.py": meanPy}, "lambda_function.lambda_handler")
			// statistics.mean of ints is an int in Python 3.11; AWS answers the same.
			wantResponse(t, api.invoke(t, invocation{Payload: `{"nums":[1,2,3,4,5]}`}), `{"statusCode": 200, "body": 3}`)
			// The same process takes the next one.
			wantResponse(t, api.invoke(t, invocation{Payload: `{"nums":[1,2]}`}), `{"statusCode": 200, "body": 1.5}`)
			select {
			case <-p.exited:
				t.Fatal("the runtime exited between invocations")
			default:
			}
		})

		t.Run("context", func(t *testing.T) {
			api := newRuntimeAPI(t)
			code := `import json, logging, os, sys

def handler(event, context):
    print("hello from print")
    logging.getLogger().warning("careful: %s", event["x"])
    logging.info("dropped: the root logger's level is WARNING")
    return {
        "aws_request_id": context.aws_request_id,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "invoked_function_arn": context.invoked_function_arn,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining": context.get_remaining_time_in_millis(),
        "identity_id": context.identity.cognito_identity_id,
        "identity_pool": context.identity.cognito_identity_pool_id,
        "client_custom": context.client_context.custom,
        "client_app_title": context.client_context.client.app_title,
        "trace": os.environ.get("_X_AMZN_TRACE_ID"),
        "cwd": os.getcwd(),
        "path0": sys.path[0],
        "event": event,
    }
`
			p := start(t, api, argv, function{"lambda_function.py": code}, "lambda_function.handler")
			inv := invocation{
				ID:            "c0ffee00-1111-4222-8333-444455556666",
				Payload:       `{"x": "y"}`,
				Deadline:      time.Now().Add(2500 * time.Millisecond),
				ARN:           "arn:aws:lambda:us-east-1:000000000000:function:fn:live",
				TraceID:       "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
				ClientContext: `{"custom":{"k":"v"},"env":{},"client":{"app_title":"app"}}`,
				Cognito:       `{"cognitoIdentityId":"us-east-1:abc","cognitoIdentityPoolId":"us-east-1:pool"}`,
			}
			o := api.invoke(t, inv)
			if o.Kind != "response" || o.ContentType != "application/json" {
				t.Fatalf("got %s %q (%s)", o.Kind, o.Body, o.ContentType)
			}
			m := decode(t, o.Body)
			wantString(t, m, "aws_request_id", inv.ID)
			wantString(t, m, "function_name", "fn")
			wantString(t, m, "function_version", "$LATEST")
			wantString(t, m, "memory_limit_in_mb", "128") // a string on AWS too
			wantString(t, m, "invoked_function_arn", inv.ARN)
			wantString(t, m, "log_group_name", "/aws/lambda/fn")
			wantString(t, m, "log_stream_name", "2026/11/25/[$LATEST]0123456789abcdef0123456789abcdef")
			wantString(t, m, "identity_id", "us-east-1:abc")
			wantString(t, m, "identity_pool", "us-east-1:pool")
			wantString(t, m, "client_app_title", "app")
			wantString(t, m, "trace", inv.TraceID)
			wantString(t, m, "path0", m["cwd"].(string))
			if r, _ := m["remaining"].(float64); r <= 1500 || r > 2500 {
				t.Errorf("get_remaining_time_in_millis() = %v, want about 2500", m["remaining"])
			}
			if c, _ := m["client_custom"].(map[string]any); c["k"] != "v" {
				t.Errorf("client_context.custom = %v", m["client_custom"])
			}
			if e, _ := m["event"].(map[string]any); e["x"] != "y" {
				t.Errorf("event = %v", m["event"])
			}
			p.waitOutput(t, `(?m)^hello from print\n`)
			p.waitOutput(t, `(?m)^\[WARNING\]\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\t`+inv.ID+`\tcareful: y\n`)
			if strings.Contains(p.stdout.String(), "dropped") {
				t.Error("logging.info reached the log with the root level at WARNING")
			}

			// Without the optional headers: no client context, an empty identity, no trace id.
			o = api.invoke(t, invocation{Payload: `{"x": 1}`})
			m = decode(t, o.Body)
			if m["client_custom"] != nil || m["identity_id"] != nil || m["trace"] != nil {
				t.Errorf("optional headers absent, got %v", m)
			}
		})

		t.Run("print is unbuffered", func(t *testing.T) {
			api := newRuntimeAPI(t)
			code := `import time

def handler(event, context):
    print("first", end="")
    time.sleep(0.3)
    return 1
`
			p := start(t, api, argv, function{"lambda_function.py": code}, "lambda_function.handler")
			done := make(chan outcome, 1)
			go func() { done <- api.invoke(t, invocation{Payload: `{}`}) }()
			p.waitOutput(t, `first`)
			select {
			case <-done:
				t.Error("print output appeared only after the handler returned")
			default:
			}
			wantResponse(t, <-done, `1`)
		})

		t.Run("exception", func(t *testing.T) {
			api := newRuntimeAPI(t)
			code := "def lambda_handler(event, context):\n    return 1 / event[\"d\"]\n"
			p := start(t, api, argv, function{"lambda_function.py": code}, "lambda_function.lambda_handler")
			o := api.invoke(t, invocation{ID: "e0000000-0000-4000-8000-000000000001", Payload: `{"d": 0}`})
			if o.Kind != "error" || o.ErrorType != "ZeroDivisionError" {
				t.Fatalf("got %s %q, error type %q", o.Kind, o.Body, o.ErrorType)
			}
			m := decode(t, o.Body)
			wantString(t, m, "errorMessage", "division by zero")
			wantString(t, m, "errorType", "ZeroDivisionError")
			wantString(t, m, "requestId", "e0000000-0000-4000-8000-000000000001")
			file := filepath.Join(p.cmd.Dir, "lambda_function.py")
			want := []any{fmt.Sprintf("  File \"%s\", line 2, in lambda_handler\n    return 1 / event[\"d\"]\n", file)}
			if st, _ := m["stackTrace"].([]any); !slices.Equal(st, want) {
				t.Errorf("stackTrace = %q, want %q", m["stackTrace"], want)
			}
			if keys := slices.Sorted(mapsKeys(m)); !slices.Equal(keys, []string{"errorMessage", "errorType", "requestId", "stackTrace"}) {
				t.Errorf("error keys %v", keys)
			}
			p.waitOutput(t, `(?m)^\[ERROR\] ZeroDivisionError: division by zero\rTraceback \(most recent call last\):\r\x{a0}\x{a0}File "`+regexp.QuoteMeta(file)+`", line 2, in lambda_handler\r\x{a0}{4}return 1 / event\["d"\]\n`)
			// The process lives on.
			wantResponse(t, api.invoke(t, invocation{Payload: `{"d": 4}`}), `0.25`)
		})

		t.Run("marshal error", func(t *testing.T) {
			api := newRuntimeAPI(t)
			code := "import datetime\n\ndef handler(event, context):\n    return {\"at\": datetime.datetime(2026, 1, 1)}\n"
			start(t, api, argv, function{"lambda_function.py": code}, "lambda_function.handler")
			o := api.invoke(t, invocation{Payload: `{}`})
			if o.Kind != "error" || o.ErrorType != "Runtime.MarshalError" {
				t.Fatalf("got %s %q, error type %q", o.Kind, o.Body, o.ErrorType)
			}
			m := decode(t, o.Body)
			wantString(t, m, "errorMessage", "Unable to marshal response: Object of type datetime is not JSON serializable")
			if st, _ := m["stackTrace"].([]any); st == nil || len(st) != 0 {
				t.Errorf("stackTrace = %#v, want []", m["stackTrace"])
			}
		})

		t.Run("packages", func(t *testing.T) {
			code := function{
				"pkg/__init__.py": "",
				"pkg/mod.py":      "def handler(event, context):\n    return __name__\n",
			}
			for _, h := range []string{"pkg/mod.handler", "pkg.mod.handler"} {
				api := newRuntimeAPI(t)
				start(t, api, argv, code, h)
				wantResponse(t, api.invoke(t, invocation{Payload: `{}`}), `"pkg.mod"`)
			}
		})

		t.Run("bytes result", func(t *testing.T) {
			api := newRuntimeAPI(t)
			start(t, api, argv, function{"f.py": "def h(e, c):\n    return b'\\x00raw'\n"}, "f.h")
			o := api.invoke(t, invocation{Payload: `{}`})
			if o.Kind != "response" || string(o.Body) != "\x00raw" || o.ContentType != "application/unknown" {
				t.Errorf("got %s %q (%s)", o.Kind, o.Body, o.ContentType)
			}
		})

		initErrors := []struct {
			name, handler string
			code          function
			errorType     string
			message       string
			trace         *regexp.Regexp
		}{
			{"import error", "lambda_function.lambda_handler", nil, "Runtime.ImportModuleError",
				"Unable to import module 'lambda_function': No module named 'lambda_function'", nil},
			{"import error inside", "lambda_function.lambda_handler", function{"lambda_function.py": "import nubis_no_such_module\n"},
				"Runtime.ImportModuleError", "Unable to import module 'lambda_function': No module named 'nubis_no_such_module'", nil},
			{"handler not found", "lambda_function.nope", function{"lambda_function.py": meanPy},
				"Runtime.HandlerNotFound", "Handler 'nope' missing on module 'lambda_function'", nil},
			{"malformed handler", "lambda_function", function{"lambda_function.py": meanPy},
				"Runtime.MalformedHandlerName", "Bad handler 'lambda_function': not enough values to unpack (expected 2, got 1)", nil},
			{"syntax error", "lambda_function.lambda_handler", function{"lambda_function.py": "def lambda_handler(event, context):\n    return (1 +\n"},
				"Runtime.UserCodeSyntaxError", "", regexp.MustCompile(`^  File ".*/lambda_function.py" Line \d+\n    `)},
			{"built-in module", "sys.exit", nil, "Runtime.BuiltInModuleConflict", "Cannot use built-in module sys as a handler module", nil},
			{"exception at import", "lambda_function.lambda_handler", function{"lambda_function.py": "x = {}['k']\n"},
				"KeyError", "'k'", regexp.MustCompile(`File ".*/lambda_function.py", line 1, in <module>\n    x = \{\}\['k'\]\n$`)},
		}
		for _, c := range initErrors {
			t.Run(c.name, func(t *testing.T) {
				api := newRuntimeAPI(t)
				p := start(t, api, argv, c.code, c.handler)
				o := api.wait(t)
				if o.Kind != "init" || o.ErrorType != c.errorType {
					t.Fatalf("got %s %q, error type %q; want init error %s", o.Kind, o.Body, o.ErrorType, c.errorType)
				}
				m := decode(t, o.Body)
				wantString(t, m, "errorType", c.errorType)
				wantString(t, m, "requestId", "")
				if c.message != "" {
					wantString(t, m, "errorMessage", c.message)
				} else if msg, _ := m["errorMessage"].(string); !strings.HasPrefix(msg, "Syntax error in module 'lambda_function': ") {
					t.Errorf("errorMessage %q", msg)
				}
				st, ok := m["stackTrace"].([]any)
				switch {
				case !ok:
					t.Errorf("stackTrace = %#v", m["stackTrace"])
				case c.trace == nil && len(st) != 0:
					t.Errorf("stackTrace = %q, want []", st)
				case c.trace != nil && (len(st) == 0 || !c.trace.MatchString(st[len(st)-1].(string))):
					t.Errorf("stackTrace = %q, want the last to match %s", st, c.trace)
				}
				if code := p.exitCode(t); code != 1 {
					t.Errorf("exit status %d, want 1", code)
				}
				p.waitOutput(t, `(?m)^\[WARNING\]\t[^\t]+\t\tLAMBDA_WARNING: Unhandled exception`)
				p.waitOutput(t, `(?m)^\[ERROR\] `+regexp.QuoteMeta(c.errorType)+`: .*\rTraceback \(most recent call last\):`)
			})
		}
	})
}

func mapsKeys(m map[string]any) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
