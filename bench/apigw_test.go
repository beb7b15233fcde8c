package bench

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	apitypes "github.com/aws/aws-sdk-go-v2/service/apigatewayv2/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/nubis/nubis/internal/server"
	"github.com/nubis/nubis/internal/server/servertest"
)

// The API Gateway benchmarks: the calculate_mean function (python3.12) behind an HTTP API
// made by quick create with the route "GET /calculate_mean", called through the data plane
// (execute-api, by Host header) and, for comparison, invoked directly through the Lambda API.
// BenchmarkAPIGatewayOverhead times one request at a time over kept-alive connections;
// BenchmarkAPIGatewayLoad has 32 connections hammer the route with wrk, then with a Go client, and
// 32 SDK clients invoke the function directly, each for loadWindow.

const (
	// loadConns is how many connections (and function environments) the load benchmark uses.
	loadConns = 32
	// loadWindow is how long each load run lasts.
	loadWindow = 5 * time.Second
	// meanQuery is the request of the issue.
	meanQuery = "/calculate_mean?nums=1,2,3"
	// meanDirect is the same question as a direct invocation's event, and meanResult both answers:
	// the body through the API, the whole result (as Python's json.dumps writes it) when invoked.
	meanDirect = `{"nums":[1,2,3]}`
	meanBody   = "2.0"
	meanResult = `{"statusCode": 200, "body": "2.0"}`
)

// meanHandler is the handler: the mean of ?nums=1,2,3 through the API, or of event["nums"]
// when invoked directly. {"sleep": s} (never sent through the API) makes it wait first, so that the
// load benchmark's warm-up gets every connection an environment of its own.
const meanHandler = `import time


def lambda_handler(event, context):
    if "sleep" in event:
        time.sleep(event["sleep"])
    qs = event.get("queryStringParameters") or {}
    if "nums" in qs:
        nums = [float(x) for x in qs["nums"].split(",")]
    else:
        nums = event["nums"]
    return {"statusCode": 200, "body": str(sum(nums) / len(nums))}
`

// meanAPI is calculate_mean behind its API on a server.
type meanAPI struct {
	s     *servertest.Server
	id    string
	host  string // the API's endpoint host, <id>.execute-api.localhost:<port>
	url   string // where to send requests for it: the server's own address
	integ string // the route's integration id
}

// setupMean creates calculate_mean with memoryMB of memory, an HTTP API in front of it by quick
// create (route "GET /calculate_mean", stage $default with automatic deployment) and the
// permission for API Gateway to invoke it from that route only. A second route, "GET /denied", goes
// to the same integration, which the permission does not cover: requests to it go through all of
// the data plane and fail at the function's policy, before anything runs.
func setupMean(b *testing.B, s *servertest.Server, memoryMB int32) meanAPI {
	b.Helper()
	ctx := context.Background()
	lc := lambda.NewFromConfig(s.Config(b, nil))
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: "lambda_function.py", Method: zip.Deflate}
	h.SetMode(0o644)
	w, _ := zw.CreateHeader(h)
	io.WriteString(w, meanHandler)
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	if _, err := lc.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("calculate_mean"),
		Runtime: types.RuntimePython312, Role: aws.String(benchRole), Handler: aws.String("lambda_function.lambda_handler"),
		MemorySize: aws.Int32(memoryMB), Code: &types.FunctionCode{ZipFile: buf.Bytes()}}); err != nil {
		b.Fatal(err)
	}
	wait := lambda.NewFunctionActiveV2Waiter(lc, func(o *lambda.FunctionActiveV2WaiterOptions) {
		o.MinDelay, o.MaxDelay = 5*time.Millisecond, 50*time.Millisecond
	})
	if err := wait.Wait(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("calculate_mean")}, 30*time.Second); err != nil {
		b.Fatalf("function-active waiter: %v", err)
	}
	account := s.Identity().Account().ID
	ac := apigatewayv2.NewFromConfig(s.Config(b, nil))
	api, err := ac.CreateApi(ctx, &apigatewayv2.CreateApiInput{Name: aws.String("calculate_mean-API"),
		ProtocolType: apitypes.ProtocolTypeHttp, RouteKey: aws.String("GET /calculate_mean"),
		Target: aws.String("arn:aws:lambda:" + server.DefaultRegion + ":" + account + ":function:calculate_mean")})
	if err != nil {
		b.Fatal(err)
	}
	m := meanAPI{s: s, id: *api.ApiId, url: s.Endpoint()}
	u, _ := url.Parse(s.Endpoint())
	m.host = m.id + ".execute-api.localhost:" + u.Port()
	routes, err := ac.GetRoutes(ctx, &apigatewayv2.GetRoutesInput{ApiId: api.ApiId})
	if err != nil || len(routes.Items) != 1 {
		b.Fatalf("the quick-created API's routes: %v, %v", routes, err)
	}
	m.integ = aws.ToString(routes.Items[0].Target)
	if _, err := ac.CreateRoute(ctx, &apigatewayv2.CreateRouteInput{ApiId: api.ApiId, RouteKey: aws.String("GET /denied"),
		Target: aws.String(m.integ)}); err != nil {
		b.Fatal(err)
	}
	if _, err := lc.AddPermission(ctx, &lambda.AddPermissionInput{FunctionName: aws.String("calculate_mean"),
		StatementId: aws.String("apigw"), Action: aws.String("lambda:InvokeFunction"), Principal: aws.String("apigateway.amazonaws.com"),
		SourceArn: aws.String("arn:aws:execute-api:" + server.DefaultRegion + ":" + account + ":" + m.id + "/*/*/calculate_mean")}); err != nil {
		b.Fatal(err)
	}
	return m
}

// request is a GET of path on the API's endpoint (by Host header).
func (m meanAPI) request(ctx context.Context, path string) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.url+path, nil)
	req.Host = m.host
	return req
}

// get sends req and checks the answer's status and body.
func get(hc *http.Client, req *http.Request, status int, body string) error {
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != status || body != "" && string(got) != body {
		return fmt.Errorf("GET %s (Host %s): %s %s, want %d %s", req.URL.RequestURI(), req.Host, resp.Status, got, status, body)
	}
	return nil
}

// overheadPath is one way of asking calculate_mean (or the server) something, timed in
// BenchmarkAPIGatewayOverhead.
type overheadPath struct {
	name, what string
	dials      *atomic.Int32 // nil: no connection (in-process)
	op         func() error
	lat        []time.Duration
}

// BenchmarkAPIGatewayOverhead is the overhead target: what API Gateway's data plane adds to
// an invocation. In each iteration it makes, one after the other and each over a kept-alive
// connection of its own (failing if a second one was opened):
//
//   - invoke: Lambda Invoke of calculate_mean through the aws-sdk-go-v2 client (SigV4, REST-JSON),
//     as BenchmarkInvokeWarm does, with the event {"nums":[1,2,3]};
//   - signed: the same Invoke hand-built with plain net/http and signed with the SDK's SigV4
//     signer (no SDK client: no middleware stack, no retryer, no response deserializer);
//   - api: GET /calculate_mean?nums=1,2,3 through the data plane with plain net/http, by Host
//     header: unsigned, since the route's authorization is NONE;
//   - denied: GET /denied?nums=1,2,3, a route to the same integration that the function's policy
//     does not allow: everything the data plane does (API lookup, stage and route selection, the
//     payload 2.0 event, InvokeAs's load of the function and policy check) but the invocation;
//   - denied-inproc: the same request handed to the server's ServeHTTP in-process, with no
//     connection, HTTP parsing or writing: the data plane's own work alone;
//   - health: the baseline, an unsigned GET of the health endpoint.
//
// All of them reach the same warm environment. Interleaving them makes them share whatever the
// host was doing meanwhile. The overhead is api's p50 minus invoke's p50 (the target); api minus
// signed compares the data plane with the Lambda API path without the SDK client. It runs with
// 1769 MB of memory (one vCPU: the function's CPU quota does not add throttling to either path)
// and with the default 128 MB.
func BenchmarkAPIGatewayOverhead(b *testing.B) {
	needSandboxes(b)
	for _, mem := range []int32{1769, 128} {
		b.Run(fmt.Sprintf("memory=%dMB", mem), func(b *testing.B) { apiOverhead(b, mem) })
	}
}

func apiOverhead(b *testing.B, mem int32) {
	s := servertest.Start(b, "")
	m := setupMean(b, s, mem)
	ctx := b.Context()

	cfg, invokeDials := sdkConfig(b, s)
	lc := lambda.NewFromConfig(cfg)
	signedHC, signedDials := oneConnClient()
	apiHC, apiDials := oneConnClient()
	deniedHC, deniedDials := oneConnClient()
	healthHC, healthDials := oneConnClient()
	creds := aws.Credentials{AccessKeyID: s.Key.ID, SecretAccessKey: s.Key.Secret}
	signer := v4.NewSigner()
	hash := sha256Hex(meanDirect)
	invokeURL := s.Endpoint() + "/2015-03-31/functions/calculate_mean/invocations"
	var signing []time.Duration
	paths := []*overheadPath{
		{name: "invoke", what: "Lambda Invoke, aws-sdk-go-v2", dials: invokeDials, op: func() error {
			out, err := lc.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("calculate_mean"), Payload: []byte(meanDirect)})
			if err != nil {
				return err
			}
			if out.FunctionError != nil || string(out.Payload) != meanResult {
				return fmt.Errorf("invoke: function error %q, payload %s", aws.ToString(out.FunctionError), out.Payload)
			}
			return nil
		}},
		{name: "signed", what: "Lambda Invoke, net/http + SigV4 signer", dials: signedDials, op: func() error {
			req, err := newRequest(ctx, invokeURL, meanDirect)
			if err != nil {
				return err
			}
			t := time.Now()
			err = signer.SignHTTP(ctx, creds, req, hash, "lambda", server.DefaultRegion, t)
			signing = append(signing, time.Since(t))
			if err != nil {
				return err
			}
			return post(signedHC, req, meanResult)
		}},
		{name: "api", what: "GET " + meanQuery + " via execute-api", dials: apiDials, op: func() error {
			return get(apiHC, m.request(ctx, meanQuery), http.StatusOK, meanBody)
		}},
		{name: "denied", what: "GET /denied (policy denies: no run)", dials: deniedDials, op: func() error {
			return get(deniedHC, m.request(ctx, "/denied?nums=1,2,3"), http.StatusInternalServerError, "")
		}},
		{name: "denied-inproc", what: "the same, ServeHTTP in-process", op: func() error {
			req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/denied?nums=1,2,3", nil)
			req.Host = m.host
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != http.StatusInternalServerError {
				return fmt.Errorf("in-process GET /denied: %d %s", rec.Code, rec.Body)
			}
			return nil
		}},
		{name: "health", what: "GET " + server.HealthPath + " (baseline)", dials: healthDials, op: func() error {
			return get(healthHC, func() *http.Request {
				r, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint()+server.HealthPath, nil)
				return r
			}(), http.StatusOK, "")
		}},
	}
	// The path form reaches the same route, for clients that cannot set a Host header.
	if err := get(http.DefaultClient, func() *http.Request {
		r, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint()+"/_aws/execute-api/"+m.id+meanQuery, nil)
		return r
	}(), http.StatusOK, meanBody); err != nil {
		b.Fatal(err)
	}
	for _, p := range paths { // the cold start, and every connection opened
		if err := p.op(); err != nil {
			b.Fatalf("%s: %v", p.name, err)
		}
	}
	signing = signing[:0]
	before := throttling(s.DataDir)
	var diffs []time.Duration // api minus invoke, iteration by iteration
	for b.Loop() {
		for _, p := range paths {
			start := time.Now()
			err := p.op()
			p.lat = append(p.lat, time.Since(start))
			if err != nil {
				b.Fatalf("%s: %v", p.name, err)
			}
		}
		diffs = append(diffs, paths[2].lat[len(paths[2].lat)-1]-paths[0].lat[len(paths[0].lat)-1])
	}
	after := throttling(s.DataDir)
	st := map[string]stats{}
	for _, p := range paths {
		if p.dials != nil && p.dials.Load() != 1 {
			b.Fatalf("%s: %d connections opened, want 1", p.name, p.dials.Load())
		}
		st[p.name] = latencyStats(p.lat)
		results[b.Name()+"/"+p.name] = st[p.name]
		b.ReportMetric(msf(st[p.name].p50), p.name+"-p50-ms")
		b.ReportMetric(msf(st[p.name].p99), p.name+"-p99-ms")
	}
	overhead := st["api"].p50 - st["invoke"].p50
	slices.Sort(diffs)
	b.ReportMetric(msf(overhead), "overhead-ms")
	b.ReportMetric(msf(percentile(diffs, 50)), "paired-overhead-p50-ms")
	b.ReportMetric(float64(after.periods-before.periods), "throttled-periods")
	b.ReportMetric(0, "ns/op")

	sign := latencyStats(signing)
	var tab strings.Builder
	fmt.Fprintf(&tab, "%s: %d calls of each, interleaved\n", b.Name(), len(paths[0].lat))
	fmt.Fprintf(&tab, "| path | what | p50 ms | p99 ms | mean ms | max ms |\n|---|---|---:|---:|---:|---:|\n")
	for _, p := range paths {
		v := st[p.name]
		fmt.Fprintf(&tab, "| %s | %s | %.3f | %.3f | %.3f | %.3f |\n", p.name, p.what, msf(v.p50), msf(v.p99), msf(v.mean), msf(v.max))
	}
	fmt.Fprintf(&tab, "api − invoke p50: %+.3f ms (paired median %+.3f ms); api − signed p50: %+.3f ms; "+
		"denied − health p50: %+.3f ms; client-side SigV4 signing p50 %.3f ms; throttled periods %d\n",
		msf(overhead), msf(percentile(diffs, 50)), msf(st["api"].p50-st["signed"].p50),
		msf(st["denied"].p50-st["health"].p50), msf(sign.p50), after.periods-before.periods)
	tables = append(tables, tab.String())
}

// cpuSample is where the host's CPU time had gone at one moment, for a load run's split.
type cpuSample struct {
	busy      time.Duration // all CPUs, not idle (/proc/stat)
	self      time.Duration // this process: the in-process nubis, and the Go clients when they run
	functions time.Duration // the functions' sandboxes (their cgroups' cpuacct)
	procs     map[int]procTime
}

// procTime is a process's CPU time so far, and its name.
type procTime struct {
	comm string
	t    time.Duration
}

// procTimes reads the CPU time of every process on the host but this one.
func procTimes() map[int]procTime {
	m := map[int]procTime{}
	self := os.Getpid()
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range dirs {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		open, end := bytes.IndexByte(data, '('), bytes.LastIndexByte(data, ')')
		if open < 0 || end < open {
			continue
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(data[:open])))
		fields := strings.Fields(string(data[end+1:])) // from the state, the stat's third field
		if pid == self || len(fields) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(fields[11], 10, 64)
		st, _ := strconv.ParseInt(fields[12], 10, 64)
		m[pid] = procTime{string(data[open+1 : end]), time.Duration(ut+st) * 10 * time.Millisecond}
	}
	return m
}

// since is the CPU time used between before and c.
func (c cpuSample) since(before cpuSample) cpuSample {
	d := cpuSample{busy: c.busy - before.busy, self: c.self - before.self, functions: c.functions - before.functions,
		procs: map[int]procTime{}}
	for pid, p := range c.procs {
		if b, ok := before.procs[pid]; ok && b.comm == p.comm {
			p.t -= b.t
		}
		if p.t > 0 {
			d.procs[pid] = p
		}
	}
	return d
}

// top names the commands of the other processes that used the most CPU, with their shares of
// one core over elapsed.
func (c cpuSample) top(n int, elapsed time.Duration) string {
	byComm := map[string]time.Duration{}
	for _, p := range c.procs {
		byComm[p.comm] += p.t
	}
	comms := slices.Collect(maps.Keys(byComm))
	slices.SortFunc(comms, func(a, b string) int { return int(byComm[b] - byComm[a]) })
	var parts []string
	for _, k := range comms[:min(n, len(comms))] {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", k, 100*byComm[k].Seconds()/elapsed.Seconds()))
	}
	return strings.Join(parts, ", ")
}

func sampleCPU(dataDir string) cpuSample {
	c := cpuSample{procs: procTimes()}
	if data, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(data), "\n")
		f := strings.Fields(line)
		for i, v := range f[1:] {
			n, _ := strconv.ParseInt(v, 10, 64)
			// user nice system idle iowait irq softirq steal (guest time is in user already)
			if i < 8 && i != 3 && i != 4 {
				c.busy += time.Duration(n) * 10 * time.Millisecond // USER_HZ is 100
			}
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		c.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	bundles, _ := filepath.Glob(filepath.Join(dataDir, "sandboxes", "bundles", "*"))
	for _, bundle := range bundles {
		id := filepath.Base(bundle)
		if data, err := os.ReadFile("/sys/fs/cgroup/cpuacct/nubis/" + id + "/cpuacct.usage"); err == nil { // v1, ns
			n, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
			c.functions += time.Duration(n)
			continue
		}
		if data, err := os.ReadFile("/sys/fs/cgroup/nubis/" + id + "/cpu.stat"); err == nil { // v2
			for _, line := range strings.Split(string(data), "\n") {
				if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
					n, _ := strconv.ParseInt(v, 10, 64)
					c.functions += time.Duration(n) * time.Microsecond
				}
			}
		}
	}
	return c
}

// loadResult is what one load run measured.
type loadResult struct {
	stats
	requests int
	elapsed  time.Duration
	cpu      cpuSample     // the CPU used during the run (after minus before)
	tool     time.Duration // the load tool's CPU, when it is a process of its own
}

func (r loadResult) metrics() []metric {
	per := func(d time.Duration) float64 {
		return float64(d) / float64(time.Microsecond) / float64(max(r.requests, 1))
	}
	return append([]metric{{r.rate, "requests/s"}, {float64(r.errors), "errors"}, {float64(r.requests), "requests"}},
		append(latencyMetrics("", r.stats), metric{per(r.cpu.self), "nubis-cpu-us/req"},
			metric{per(r.cpu.functions), "functions-cpu-us/req"})...)
}

// cpuSplit describes where the CPU went during a run, as shares of the host's CPUs.
func (r loadResult) cpuSplit(selfIs string) string {
	cores := r.elapsed.Seconds()
	pct := func(d time.Duration) float64 { return 100 * d.Seconds() / cores }
	other := r.cpu.busy - r.cpu.self - r.cpu.functions - r.tool
	return fmt.Sprintf("%s %.0f%%, functions %.0f%%, load tool %.0f%%, rest of host %.0f%% (of one core; busy %.0f%%); "+
		"busiest other processes: %s", selfIs, pct(r.cpu.self), pct(r.cpu.functions), pct(r.tool), pct(other), pct(r.cpu.busy),
		r.cpu.top(4, r.elapsed))
}

// BenchmarkAPIGatewayLoad is the load target: 2,000 requests/s or more of
// GET /calculate_mean?nums=1,2,3 through the data plane with loadConns connections, for
// loadWindow, with no errors, on the function at 1769 MB. Its sub-benchmarks share one server,
// whose function gets loadConns warm environments first:
//
//   - wrk: wrk -t2 -c32 -d5s --latency with the API's Host header and a Lua script that prints
//     its summary (skipped without wrk: apt-get install wrk);
//   - go: the same with 32 Go clients (net/http, one connection each) in this process;
//   - invoke: 32 aws-sdk-go-v2 clients invoking calculate_mean directly, the baseline.
//
// Each reports requests/s, errors (non-2xx, socket errors, wrong answers), latency, and the CPU
// time that nubis (this process: the server, and the Go clients in go and invoke) and the
// functions' sandboxes used per request; the run's split of the host's CPU is printed after the
// summary.
func BenchmarkAPIGatewayLoad(b *testing.B) {
	needSandboxes(b)
	s := servertest.Start(b, "")
	m := setupMean(b, s, 1769)
	warmMean(b, s, loadConns)
	var split strings.Builder
	fmt.Fprintf(&split, "%s: %d connections for %s, calculate_mean at 1769 MB; CPU as %% of one core (the host has %d; "+
		"the rest of host is /proc/stat's ticks minus getrusage and cgroup times, ±5%%)\n", b.Name(), loadConns, loadWindow, cpus())
	defer func() { tables = append(tables, split.String()) }()
	b.Run("wrk", func(b *testing.B) {
		if _, err := exec.LookPath("wrk"); err != nil {
			b.Skip("skipped: wrk is not installed (apt-get install -y wrk; make deps installs it)")
		}
		fixedWork(b, func() []metric {
			r, out := runWrk(b, m)
			results[b.Name()] = r.stats
			fmt.Fprintf(&split, "wrk: %.0f requests/s, %d errors, p50 %.2f ms, p99 %.2f ms; CPU: %s\nwrk's output:\n%s",
				r.rate, r.errors, msf(r.p50), msf(r.p99), r.cpuSplit("nubis"), indent(out))
			return append(r.metrics(), metric{float64(r.tool) / float64(time.Microsecond) / float64(max(r.requests, 1)), "wrk-cpu-us/req"})
		})
	})
	b.Run("go", func(b *testing.B) {
		fixedWork(b, func() []metric {
			clients := make([]*http.Client, loadConns)
			dials := make([]*atomic.Int32, loadConns)
			for i := range clients {
				clients[i], dials[i] = oneConnClient()
			}
			r := load(b, s.DataDir, func(c int) error {
				return get(clients[c], m.request(context.Background(), meanQuery), http.StatusOK, meanBody)
			})
			var conns int32
			for _, d := range dials {
				conns += d.Load()
			}
			results[b.Name()] = r.stats
			fmt.Fprintf(&split, "go: %.0f requests/s, %d errors, p50 %.2f ms, p99 %.2f ms, %d connections; CPU: %s\n",
				r.rate, r.errors, msf(r.p50), msf(r.p99), conns, r.cpuSplit("nubis + Go clients"))
			return append(r.metrics(), metric{float64(conns), "connections"})
		})
	})
	b.Run("invoke", func(b *testing.B) {
		fixedWork(b, func() []metric {
			clients := make([]*lambda.Client, loadConns)
			for i := range clients {
				cfg, _ := sdkConfig(b, s)
				cfg.Retryer = func() aws.Retryer { return aws.NopRetryer{} }
				clients[i] = lambda.NewFromConfig(cfg)
			}
			r := load(b, s.DataDir, func(c int) error {
				out, err := clients[c].Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("calculate_mean"),
					Payload: []byte(meanDirect)})
				if err != nil {
					return err
				}
				if out.FunctionError != nil || string(out.Payload) != meanResult {
					return fmt.Errorf("invoke: function error %q, payload %s", aws.ToString(out.FunctionError), out.Payload)
				}
				return nil
			})
			results[b.Name()] = r.stats
			fmt.Fprintf(&split, "invoke: %.0f invocations/s, %d errors, p50 %.2f ms, p99 %.2f ms; CPU: %s\n",
				r.rate, r.errors, msf(r.p50), msf(r.p99), r.cpuSplit("nubis + SDK clients"))
			return r.metrics()
		})
	})
	envs, _ := filepath.Glob(filepath.Join(s.DataDir, "sandboxes", "bundles", "*"))
	fmt.Fprintf(&split, "environments at the end: %d\n", len(envs))
}

func cpus() int {
	data, _ := os.ReadFile("/proc/stat")
	return strings.Count(string(data), "\ncpu")
}

func indent(s string) string {
	var out strings.Builder
	for line := range strings.Lines(s) {
		out.WriteString("    " + line)
	}
	return out.String()
}

// warmMean gives calculate_mean n warm environments: n invocations at once that each sleep long
// enough for the others to need environments of their own.
func warmMean(b *testing.B, s *servertest.Server, n int) {
	lc := lambda.NewFromConfig(s.Config(b, nil))
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			out, err := lc.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("calculate_mean"),
				Payload: []byte(`{"nums":[1,2,3],"sleep":0.5}`)})
			if err == nil && (out.FunctionError != nil || string(out.Payload) != meanResult) {
				err = fmt.Errorf("warm-up invoke: function error %q, payload %s", aws.ToString(out.FunctionError), out.Payload)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatalf("warming up: %v", err)
	}
	if envs, _ := filepath.Glob(filepath.Join(s.DataDir, "sandboxes", "bundles", "*")); len(envs) < n {
		b.Logf("warm-up made %d environments, not %d", len(envs), n)
	}
}

// load has loadConns clients call op as fast as they can for loadWindow.
func load(b *testing.B, dataDir string, op func(client int) error) loadResult {
	var (
		failed   atomic.Int64
		mu       sync.Mutex
		lat      []time.Duration
		firstErr error
		wg       sync.WaitGroup
	)
	before := sampleCPU(dataDir)
	start := time.Now()
	deadline := start.Add(loadWindow)
	for c := range loadConns {
		wg.Go(func() {
			var mine []time.Duration
			for time.Now().Before(deadline) {
				t := time.Now()
				err := op(c)
				mine = append(mine, time.Since(t))
				if err != nil && failed.Add(1) == 1 {
					mu.Lock()
					firstErr = err
					mu.Unlock()
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	r := loadResult{elapsed: time.Since(start), requests: len(lat)}
	after := sampleCPU(dataDir)
	r.cpu = after.since(before)
	if firstErr != nil {
		b.Logf("first error: %v", firstErr)
	}
	r.stats = latencyStats(lat)
	r.errors = int(failed.Load())
	r.rate = float64(r.requests-r.errors) / r.elapsed.Seconds()
	return r
}

// wrkScript prints wrk's summary in microseconds, on a line of its own, after wrk's usual output.
const wrkScript = `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("nubis-wrk requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p99_us=%d max_us=%d mean_us=%d\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, math.floor(latency.mean)))
end
`

var wrkSummaryRE = regexp.MustCompile(`(?m)^nubis-wrk (.*)$`)

// runWrk runs wrk against the API for loadWindow and returns what it measured, and its output.
func runWrk(b *testing.B, m meanAPI) (loadResult, string) {
	script := filepath.Join(b.TempDir(), "summary.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o644); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), loadWindow+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "wrk", "-t2", fmt.Sprintf("-c%d", loadConns), fmt.Sprintf("-d%ds", int(loadWindow.Seconds())),
		"--latency", "-s", script, "-H", "Host: "+m.host, m.url+meanQuery)
	before := sampleCPU(m.s.DataDir)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	r := loadResult{elapsed: time.Since(start)}
	after := sampleCPU(m.s.DataDir)
	if err != nil {
		b.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	r.cpu = after.since(before)
	r.tool = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	sm := wrkSummaryRE.FindSubmatch(out)
	if sm == nil {
		b.Fatalf("no summary in wrk's output:\n%s", out)
	}
	v := map[string]int64{}
	for _, kv := range strings.Fields(string(sm[1])) {
		k, val, _ := strings.Cut(kv, "=")
		v[k], _ = strconv.ParseInt(val, 10, 64)
	}
	us := func(k string) time.Duration { return time.Duration(v[k]) * time.Microsecond }
	r.requests = int(v["requests"])
	r.errors = int(v["connect"] + v["read"] + v["write"] + v["status"] + v["timeout"])
	r.p50, r.p99, r.max, r.mean = us("p50_us"), us("p99_us"), us("max_us"), us("mean_us")
	// wrk's own Requests/sec counts every response; the target counts the successful ones.
	r.rate = float64(r.requests-int(v["status"])) / us("duration_us").Seconds()
	return r, string(out)
}
