package runtimes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// ---------------------------------------------------------------------------------------------
// Overhead of a warm invocation.

// baselineClient is the least a client can do: GET next and POST the payload back over one
// kept-alive connection, in Go. What a runtime client takes beyond it is its own overhead. It
// ends when the test's Runtime API shuts down.
func baselineClient(api *runtimeAPI) {
	c := &http.Client{}
	base := api.srv.URL + "/2018-06-01/runtime/invocation/"
	for {
		resp, err := c.Get(base + "next")
		if err != nil {
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return
		}
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		resp, err = c.Post(base+id+"/response", "application/json", bytes.NewReader(body))
		if err != nil {
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

type timings []time.Duration

func (d timings) String() string {
	s := slices.Clone(d)
	slices.Sort(s)
	var sum time.Duration
	for _, x := range s {
		sum += x
	}
	q := func(f float64) time.Duration { return s[int(f*float64(len(s)-1))] }
	return fmt.Sprintf("mean %v  p50 %v  p90 %v  p99 %v  (n=%d)",
		(sum / time.Duration(len(s))).Round(time.Microsecond), q(0.5).Round(time.Microsecond),
		q(0.9).Round(time.Microsecond), q(0.99).Round(time.Microsecond), len(s))
}

func (d timings) median() time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// measure times n warm invocations, each from handing it out to receiving its response.
func measure(t testing.TB, api *runtimeAPI, n int) timings {
	t.Helper()
	const payload = `{"key1":"value1","key2":"value2","key3":"value3"}`
	for range 20 { // warm up
		api.invoke(t, invocation{Payload: payload})
	}
	d := make(timings, 0, n)
	for range n {
		t0 := time.Now()
		o := api.invoke(t, invocation{Payload: payload})
		d = append(d, time.Since(t0))
		if o.Kind != "response" {
			t.Fatalf("got %s %q", o.Kind, o.Body)
		}
	}
	return d
}

// TestWarmInvokeOverhead reports what a warm invocation costs through each client against the
// test Runtime API, beside a Go client doing only the HTTP; run with -v to see the numbers.
func TestWarmInvokeOverhead(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 200
	}

	api := newRuntimeAPI(t)
	go baselineClient(api)
	base := measure(t, api, n)
	t.Logf("baseline (Go client, HTTP only): %v", base)

	check := func(t *testing.T, name string, d timings) {
		t.Logf("%s: %v; over the baseline at p50: %v", name, d, (d.median() - base.median()).Round(time.Microsecond))
		// A warm invocation must add well under a millisecond; allow for a busy machine.
		if d.median()-base.median() > time.Millisecond {
			t.Errorf("%s adds %v a warm invocation at p50, want well under 1ms", name, d.median()-base.median())
		}
	}
	t.Run("python", func(t *testing.T) {
		forEachPython(t, func(t *testing.T, python string) {
			api := newRuntimeAPI(t)
			start(t, api, pythonArgv(t, python), function{"lambda_function.py": "def handler(event, context):\n    return event\n"}, "lambda_function.handler")
			check(t, python, measure(t, api, n))
		})
	})
	t.Run("node", func(t *testing.T) {
		api := newRuntimeAPI(t)
		start(t, api, nodeArgv(t), function{"index.js": "exports.handler = async (event) => event;\n"}, "index.handler")
		check(t, "node", measure(t, api, n))
	})
	t.Run("node callback", func(t *testing.T) {
		api := newRuntimeAPI(t)
		start(t, api, nodeArgv(t), function{"index.js": "exports.handler = (event, context, callback) => callback(null, event);\n"}, "index.handler")
		check(t, "node callback", measure(t, api, n))
	})
}

// BenchmarkWarmInvoke times a warm invocation through each client (and the Go baseline) against
// the test Runtime API.
func BenchmarkWarmInvoke(b *testing.B) {
	const payload = `{"key1":"value1","key2":"value2","key3":"value3"}`
	bench := func(b *testing.B, api *runtimeAPI) {
		for range 50 {
			api.invoke(b, invocation{Payload: payload})
		}
		b.ResetTimer()
		for range b.N {
			api.invoke(b, invocation{Payload: payload})
		}
	}
	b.Run("baseline", func(b *testing.B) {
		api := newRuntimeAPI(b)
		go baselineClient(api)
		bench(b, api)
	})
	for _, name := range pythons {
		b.Run(strings.Trim(strings.ReplaceAll(name, "/", "_"), "_"), func(b *testing.B) {
			p, err := exec.LookPath(name)
			if err != nil {
				b.Skip(err)
			}
			api := newRuntimeAPI(b)
			start(b, api, pythonArgv(b, p), function{"f.py": "def h(event, context):\n    return event\n"}, "f.h")
			bench(b, api)
		})
	}
	b.Run("node", func(b *testing.B) {
		node, err := exec.LookPath("node")
		if err != nil {
			b.Skip(err)
		}
		api := newRuntimeAPI(b)
		start(b, api, []string{node, filepath.Join(installed(b), "node", "bootstrap.js")}, function{"index.js": "exports.handler = async (event) => event;\n"}, "index.handler")
		bench(b, api)
	})
}

// ---------------------------------------------------------------------------------------------
// The clients' HTTP: large (chunked) bodies, a server that closes connections.

func TestConnections(t *testing.T) {
	big := `{"s":"` + strings.Repeat("abcdefgh", 1<<17) + `","u":"żółw ✓"}` // 1 MiB: the server sends it chunked
	same := func(t *testing.T, o outcome, want string) {
		t.Helper()
		var got, exp any
		if o.Kind != "response" || json.Unmarshal(o.Body, &got) != nil || json.Unmarshal([]byte(want), &exp) != nil || !reflect.DeepEqual(got, exp) {
			t.Fatalf("got %s of %d bytes, want the event back (%d bytes)", o.Kind, len(o.Body), len(want))
		}
	}
	run := func(t *testing.T, argv []string, code function, handler string) {
		t.Run("chunked", func(t *testing.T) {
			api := newRuntimeAPI(t)
			start(t, api, argv, code, handler)
			same(t, api.invoke(t, invocation{Payload: big}), big)
			same(t, api.invoke(t, invocation{Payload: `{"small":true}`}), `{"small":true}`)
		})
		t.Run("connection close", func(t *testing.T) {
			api := newRuntimeAPI(t)
			api.srv.Config.SetKeepAlivesEnabled(false)
			start(t, api, argv, code, handler)
			for i := range 3 {
				p := fmt.Sprintf(`{"i":%d}`, i)
				same(t, api.invoke(t, invocation{Payload: p}), p)
			}
		})
		t.Run("connections dropped", func(t *testing.T) {
			api := newRuntimeAPI(t)
			start(t, api, argv, code, handler)
			// Count from the runtime's first request: counted before it, the first drop's second
			// wait could be met by the dropped request itself, still waiting, which would then
			// take the next invocation and lose it.
			api.waitNext(t, 0)
			for i := range 3 {
				p := fmt.Sprintf(`{"i":%d}`, i)
				calls := api.calls.Load()
				same(t, api.invoke(t, invocation{Payload: p}), p)
				// Once the runtime waits for the next invocation on its kept-alive connection,
				// drop the connection: the runtime asks again on a new one. (The next invocation
				// must wait until the dropped request's handler has gone, or it would take it.)
				api.waitNext(t, calls)
				api.srv.CloseClientConnections()
				api.waitNext(t, calls+1)
			}
			same(t, api.invoke(t, invocation{Payload: `{}`}), `{}`)
		})
	}
	t.Run("python", func(t *testing.T) {
		forEachPython(t, func(t *testing.T, python string) {
			run(t, pythonArgv(t, python), function{"f.py": "def h(event, context):\n    return event\n"}, "f.h")
		})
	})
	t.Run("node", func(t *testing.T) {
		run(t, nodeArgv(t), function{"index.js": "exports.handler = async (event) => event;\n"}, "index.handler")
	})
}
