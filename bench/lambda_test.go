package bench

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/nubis/nubis/internal/server"
	"github.com/nubis/nubis/internal/server/servertest"
)

// The Lambda benchmarks: warm and cold invocations of a Python function through the API, and the
// throughput of 16 concurrent clients, each beside the same handler and runtime client run by AWS's
// Lambda Runtime Interface Emulator (rie_test.go); BenchmarkColdStartPhases times the steps of a
// cold start one by one.

const (
	benchRole = "arn:aws:iam::123456789012:role/bench"
	// coldStarts is how many cold starts each cold-start benchmark makes, whatever -benchtime says.
	coldStarts = 20
	// throughputClients invoke at once in the throughput benchmarks, for throughputWindow or until
	// throughputMax invocations, whichever ends first (after warming up one environment each).
	throughputClients = 16
	throughputWindow  = 5 * time.Second
	throughputMax     = 20000
)

// echoHandler returns its event. {"sleep": s} makes it wait s seconds first: the throughput
// benchmark warms up with it, so that every client's invocation gets an environment of its own.
const echoHandler = `import time


def handler(event, context):
    if type(event) is dict and "sleep" in event:
        time.sleep(event["sleep"])
    return event
`

// needSandboxes skips a benchmark that runs functions when this host cannot.
func needSandboxes(b *testing.B) {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("skipped: running Lambda functions needs root (nubis runs them in runc sandboxes)")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		if _, err := os.Stat("/usr/sbin/runc"); err != nil {
			b.Skip("skipped: running Lambda functions needs runc (make deps installs it)")
		}
	}
}

// echoZip is the function's code: app.py with echoHandler.
func echoZip(b *testing.B) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: "app.py", Method: zip.Deflate}
	h.SetMode(0o644)
	w, err := zw.CreateHeader(h)
	if err != nil {
		b.Fatal(err)
	}
	io.WriteString(w, echoHandler)
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// createEcho creates a python3.12 function running echoHandler with memoryMB of memory (0: the
// default, 128) and waits until it is Active.
func createEcho(b *testing.B, c *lambda.Client, name string, memoryMB int32) {
	b.Helper()
	in := &lambda.CreateFunctionInput{FunctionName: aws.String(name), Runtime: types.RuntimePython312,
		Role: aws.String(benchRole), Handler: aws.String("app.handler"), Code: &types.FunctionCode{ZipFile: echoZip(b)}}
	if memoryMB != 0 {
		in.MemorySize = aws.Int32(memoryMB)
	}
	if _, err := c.CreateFunction(context.Background(), in); err != nil {
		b.Fatal(err)
	}
	w := lambda.NewFunctionActiveV2Waiter(c, func(o *lambda.FunctionActiveV2WaiterOptions) {
		o.MinDelay = 5 * time.Millisecond
		o.MaxDelay = 50 * time.Millisecond
	})
	if err := w.Wait(context.Background(), &lambda.GetFunctionInput{FunctionName: aws.String(name)}, 30*time.Second); err != nil {
		b.Fatalf("function-active waiter: %v", err)
	}
}

// invokeEcho invokes name with payload and checks that the function answered it unchanged: want
// is payload as Python's json.dumps writes it.
func invokeEcho(ctx context.Context, c *lambda.Client, name, payload, want string, tail bool) (*lambda.InvokeOutput, error) {
	in := &lambda.InvokeInput{FunctionName: aws.String(name), Payload: []byte(payload)}
	if tail {
		in.LogType = types.LogTypeTail
	}
	out, err := c.Invoke(ctx, in)
	if err != nil {
		return nil, err
	}
	if out.FunctionError != nil || string(out.Payload) != want {
		return nil, fmt.Errorf("invoke %s: function error %q, payload %s, want %s", name, aws.ToString(out.FunctionError), out.Payload, want)
	}
	return out, nil
}

// fixedWork runs a benchmark whose work does not follow b.N (cold starts, a timed throughput run):
// work runs in the first iteration of b.Loop, and the other iterations that -benchtime asks for
// (2000 under `make bench`) do nothing. Under a -benchtime that is a time, work that ended sooner
// waits for the rest of it, so that b.Loop needs no second iteration. The metrics are reported
// without ns/op; the iteration count printed is not the work's, which each benchmark reports as a
// metric of its own (cold-starts, invocations).
func fixedWork(b *testing.B, work func() []metric) {
	b.Helper()
	var ms []metric
	done := false
	for b.Loop() {
		if !done {
			start := time.Now()
			ms, done = work(), true
			if f := flag.Lookup("test.benchtime"); f != nil && !strings.HasSuffix(f.Value.String(), "x") {
				if d, err := time.ParseDuration(f.Value.String()); err == nil {
					time.Sleep(d - time.Since(start))
				}
			}
		}
	}
	for _, m := range ms {
		b.ReportMetric(m.v, m.unit)
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkInvokeWarm is the warm target: Invoke of a warm python3.12 function that
// returns its event, through the aws-sdk-go-v2 Lambda client (SigV4, REST-JSON), sequential over one
// connection, with the default memory (128 MB) and with 1769 MB. An environment gets CPU time in
// proportion to its memory, 128/1769 of a vCPU by default (a quota per CFS period of 10 ms, 13.8 ms at 128 MB): the
// metrics throttled-periods and throttled-ms are how often and how long the kernel held the
// environment back for having used its quota, during the timed calls.
func BenchmarkInvokeWarm(b *testing.B) {
	needSandboxes(b)
	for _, mem := range []int32{128, 1769} {
		b.Run(fmt.Sprintf("memory=%dMB", mem), func(b *testing.B) {
			s := servertest.Start(b, "")
			createEcho(b, lambda.NewFromConfig(s.Config(b, nil)), "echo", mem)
			cfg, dials := sdkConfig(b, s)
			c := lambda.NewFromConfig(cfg)
			op := func() error {
				_, err := invokeEcho(b.Context(), c, "echo", `{"hello":"world","n":1}`, `{"hello": "world", "n": 1}`, false)
				return err
			}
			if err := op(); err != nil { // the cold start
				b.Fatal(err)
			}
			before := throttling(s.DataDir)
			measure(b, dials, op)
			after := throttling(s.DataDir)
			b.ReportMetric(float64(after.periods-before.periods), "throttled-periods")
			b.ReportMetric(msf(after.time-before.time), "throttled-ms")
		})
	}
}

// cpuThrottling is what the kernel's CFS bandwidth control reports for the environments of a
// server, summed: how many periods found a cgroup out of quota, and for how long it was held back.
type cpuThrottling struct {
	periods int64
	time    time.Duration
}

// throttling reads the cpu.stat of the cgroup of each sandbox of the server on dataDir.
func throttling(dataDir string) cpuThrottling {
	var t cpuThrottling
	bundles, _ := filepath.Glob(filepath.Join(dataDir, "sandboxes", "bundles", "*"))
	for _, bundle := range bundles {
		id := filepath.Base(bundle)
		// cgroup v1 (the cpu controller's hierarchy) or v2; the driver's default parent, nubis.
		for _, path := range []string{"/sys/fs/cgroup/cpu/nubis/" + id + "/cpu.stat", "/sys/fs/cgroup/nubis/" + id + "/cpu.stat"} {
			data, err := os.ReadFile(path)
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(data), "\n") {
				k, v, _ := strings.Cut(line, " ")
				n, _ := strconv.ParseInt(v, 10, 64)
				switch k {
				case "nr_throttled":
					t.periods += n
				case "throttled_time": // v1, ns
					t.time += time.Duration(n)
				case "throttled_usec": // v2
					t.time += time.Duration(n) * time.Microsecond
				}
			}
			break
		}
	}
	return t
}

// BenchmarkInvokeWarmHandSigned is the same call without the SDK client: a hand-built request
// signed with the SDK's SigV4 signer. Its difference from BenchmarkInvokeWarm is the SDK's own cost.
func BenchmarkInvokeWarmHandSigned(b *testing.B) {
	needSandboxes(b)
	s := servertest.Start(b, "")
	createEcho(b, lambda.NewFromConfig(s.Config(b, nil)), "echo", 0)
	hc, dials := oneConnClient()
	creds := aws.Credentials{AccessKeyID: s.Key.ID, SecretAccessKey: s.Key.Secret}
	signer := v4.NewSigner()
	const body, want = `{"hello":"world","n":1}`, `{"hello": "world", "n": 1}`
	hash := sha256Hex(body)
	url := s.Endpoint() + "/2015-03-31/functions/echo/invocations"
	measure(b, dials, func() error {
		req, err := newRequest(b.Context(), url, body)
		if err != nil {
			return err
		}
		if err := signer.SignHTTP(b.Context(), creds, req, hash, "lambda", server.DefaultRegion, time.Now()); err != nil {
			return err
		}
		return post(hc, req, want)
	})
}

// initDurationRE finds the Init Duration of a REPORT line.
var initDurationRE = regexp.MustCompile(`\tInit Duration: ([0-9.]+) ms\t`)

// BenchmarkColdStart is the cold target: the first Invoke of a function just created (and
// Active), through the SDK over one connection, for coldStarts fresh functions, each deleted after
// (which stops its environment) so that none runs beside the next. It reports the invocation's
// latency (p50-ms, p99-ms, ...) and the Init Duration of the REPORT line (init-p50-ms, ...), with
// the default memory (128 MB, so 128/1769 of a vCPU) and with 1769 MB (one vCPU).
func BenchmarkColdStart(b *testing.B) {
	needSandboxes(b)
	for _, mem := range []int32{128, 1769} {
		b.Run(fmt.Sprintf("memory=%dMB", mem), func(b *testing.B) {
			fixedWork(b, func() []metric { return coldStart(b, mem) })
		})
	}
}

func coldStart(b *testing.B, mem int32) []metric {
	s := servertest.Start(b, "")
	admin := lambda.NewFromConfig(s.Config(b, nil))
	cfg, _ := sdkConfig(b, s)
	c := lambda.NewFromConfig(cfg)
	var lat, inits []time.Duration
	for i := range coldStarts {
		name := fmt.Sprintf("cold-%02d", i)
		createEcho(b, admin, name, mem)
		start := time.Now()
		out, err := invokeEcho(b.Context(), c, name, `{"cold":true}`, `{"cold": true}`, true)
		lat = append(lat, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		log, _ := base64.StdEncoding.DecodeString(aws.ToString(out.LogResult))
		m := initDurationRE.FindSubmatch(log)
		if m == nil {
			b.Fatalf("no Init Duration in the cold invocation's log:\n%s", log)
		}
		f, _ := strconv.ParseFloat(string(m[1]), 64)
		inits = append(inits, time.Duration(f*float64(time.Millisecond)))
		if _, err := admin.DeleteFunction(b.Context(), &lambda.DeleteFunctionInput{FunctionName: aws.String(name)}); err != nil {
			b.Fatal(err)
		}
	}
	st, init := latencyStats(lat), latencyStats(inits)
	results[b.Name()] = st
	return append(append(latencyMetrics("", st), latencyMetrics("init-", init)...), metric{float64(len(lat)), "cold-starts"})
}

// BenchmarkThroughput is the throughput target: throughputClients clients, each an SDK
// client with a connection of its own, invoke the warm function as fast as they can for
// throughputWindow (or throughputMax invocations). Every client first makes one slow invocation at
// the same time as the others, so that each has a warm environment of its own. The SDK does not
// retry: a failed invocation counts as an error. It runs with the default memory (128 MB: each
// environment may use 128/1769 of a vCPU) and with 1769 MB (one vCPU each).
func BenchmarkThroughput(b *testing.B) {
	needSandboxes(b)
	for _, mem := range []int32{128, 1769} {
		b.Run(fmt.Sprintf("memory=%dMB", mem), func(b *testing.B) {
			fixedWork(b, func() []metric { return throughput(b, mem) })
		})
	}
}

func throughput(b *testing.B, mem int32) []metric {
	s := servertest.Start(b, "")
	createEcho(b, lambda.NewFromConfig(s.Config(b, nil)), "echo", mem)
	clients := make([]*lambda.Client, throughputClients)
	for i := range clients {
		cfg, _ := sdkConfig(b, s)
		cfg.Retryer = func() aws.Retryer { return aws.NopRetryer{} }
		clients[i] = lambda.NewFromConfig(cfg)
	}
	var before cpuThrottling
	ms := hammer(b, func() { before = throttling(s.DataDir) }, func(client, i int) error {
		payload, want := echoPayload(client, i)
		_, err := invokeEcho(context.Background(), clients[client], "echo", payload, want, false)
		return err
	})
	after := throttling(s.DataDir)
	envs, _ := filepath.Glob(filepath.Join(s.DataDir, "sandboxes", "bundles", "*"))
	return append(ms, metric{float64(after.periods - before.periods), "throttled-periods"},
		metric{msf(after.time - before.time), "throttled-ms"}, metric{float64(len(envs)), "environments"})
}

// echoPayload is the event client sends in its i-th call (i < 0: the warm-up, which sleeps), and
// the answer expected.
func echoPayload(client, i int) (payload, want string) {
	if i < 0 {
		return fmt.Sprintf(`{"c":%d,"sleep":0.3}`, client), fmt.Sprintf(`{"c": %d, "sleep": 0.3}`, client)
	}
	return fmt.Sprintf(`{"c":%d,"i":%d}`, client, i), fmt.Sprintf(`{"c": %d, "i": %d}`, client, i)
}

// hammer warms up (every client calls op(client, -1) at once) and then has every client call op
// as fast as it can (after calling warmed) until throughputWindow has passed or throughputMax calls were made. It reports
// the calls per second that succeeded, the errors, and the latency of the calls.
func hammer(b *testing.B, warmed func(), op func(client, i int) error) []metric {
	var wg sync.WaitGroup
	warm := make([]error, throughputClients)
	for c := range throughputClients {
		wg.Go(func() { warm[c] = op(c, -1) })
	}
	wg.Wait()
	if err := errors.Join(warm...); err != nil {
		b.Fatalf("warming up: %v", err)
	}
	warmed()
	var (
		issued, failed atomic.Int64
		mu             sync.Mutex
		lat            []time.Duration
		firstErr       error
	)
	start := time.Now()
	deadline := start.Add(throughputWindow)
	for c := range throughputClients {
		wg.Go(func() {
			mine := make([]time.Duration, 0, throughputMax/throughputClients)
			for i := 0; time.Now().Before(deadline) && issued.Add(1) <= throughputMax; i++ {
				t := time.Now()
				err := op(c, i)
				mine = append(mine, time.Since(t))
				if err != nil {
					if failed.Add(1) == 1 {
						mu.Lock()
						firstErr = err
						mu.Unlock()
					}
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		b.Logf("first error: %v", firstErr)
	}
	st := latencyStats(lat)
	st.errors = int(failed.Load())
	st.rate = float64(len(lat)-st.errors) / elapsed.Seconds()
	results[b.Name()] = st
	return append([]metric{{st.rate, "invocations/s"}, {float64(st.errors), "errors"}, {float64(len(lat)), "invocations"}},
		latencyMetrics("", st)...)
}
