package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwltypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/nubis/nubis/internal/server"
	"github.com/nubis/nubis/internal/server/servertest"
	"github.com/nubis/nubis/internal/testenv"
)

// needSandboxes skips a test that runs functions when this host cannot (not root, no runc), and
// fails it instead under NUBIS_REQUIRE_ALL=1.
func needSandboxes(t *testing.T) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "running functions needs root"
	} else if _, err := exec.LookPath("runc"); err != nil {
		if _, err := os.Stat("/usr/sbin/runc"); err != nil {
			why = "running functions needs runc (make deps installs it)"
		}
	}
	testenv.Need(t, why == "", why)
}

func createFunction(t *testing.T, c *lambda.Client, name string, rt types.Runtime, handler string, files ...zipEntry) {
	t.Helper()
	createMean(t, c, name, func(in *lambda.CreateFunctionInput) {
		in.Runtime, in.Handler = rt, aws.String(handler)
		in.Code.ZipFile = makeZip(t, files...)
	})
}

type invokeResult struct {
	payload  string
	fnError  string
	log      string
	executed string
}

func invoke(t *testing.T, c *lambda.Client, name, payload string) invokeResult {
	t.Helper()
	out, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String(name), Payload: []byte(payload), LogType: types.LogTypeTail})
	if err != nil {
		t.Fatalf("Invoke %s: %v", name, err)
	}
	log, _ := base64.StdEncoding.DecodeString(aws.ToString(out.LogResult))
	return invokeResult{payload: string(out.Payload), fnError: aws.ToString(out.FunctionError), log: string(log), executed: aws.ToString(out.ExecutedVersion)}
}

func TestInvokePython(t *testing.T) {
	needSandboxes(t)
	s := servertest.Start(t, "")
	c := lambda.NewFromConfig(s.Config(t, nil))
	createMean(t, c, "calculate_mean")
	cold := invoke(t, c, "calculate_mean", `{"nums": [1, 2, 3, 4, 5]}`)
	if cold.payload != `{"statusCode": 200, "body": 3}` || cold.fnError != "" || cold.executed != "$LATEST" {
		t.Fatalf("cold invoke: %+v", cold)
	}
	for _, want := range []string{"START RequestId: ", " Version: $LATEST", "END RequestId: ", "REPORT RequestId: ",
		"\tBilled Duration: ", "\tMemory Size: 128 MB\tMax Memory Used: ", "\tInit Duration: "} {
		if !strings.Contains(cold.log, want) {
			t.Fatalf("cold log has no %q:\n%s", want, cold.log)
		}
	}
	// After its init the environment is limited to its memory's share of a CPU: 128/1769.
	ids, _ := exec.Command("runc", "--root", s.DataDir+"/sandboxes/runc", "list", "-q").Output()
	cg := "/sys/fs/cgroup/cpu/nubis/" + strings.TrimSpace(string(ids))
	quota, err1 := os.ReadFile(cg + "/cpu.cfs_quota_us")
	period, err2 := os.ReadFile(cg + "/cpu.cfs_period_us")
	if err1 == nil && err2 == nil {
		q, _ := strconv.ParseFloat(strings.TrimSpace(string(quota)), 64)
		p, _ := strconv.ParseFloat(strings.TrimSpace(string(period)), 64)
		if share := q / p; share < 0.0723 || share > 0.0724 {
			t.Fatalf("CPU quota %v per %v µs: %.4f of a CPU, want 128/1769 = 0.0724", q, p, share)
		}
	}
	warm := invoke(t, c, "calculate_mean", `{"nums": [1.5, 2.5]}`)
	if warm.payload != `{"statusCode": 200, "body": 2.0}` || strings.Contains(warm.log, "Init Duration") {
		t.Fatalf("warm invoke: %+v", warm)
	}
	// An unhandled error.
	bad := invoke(t, c, "calculate_mean", `{"numbers": []}`)
	var e struct{ ErrorType, ErrorMessage string }
	json.Unmarshal([]byte(bad.payload), &e)
	if bad.fnError != "Unhandled" || e.ErrorType != "KeyError" {
		t.Fatalf("function error: %+v", bad)
	}
	_, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("calculate_mean"), Payload: []byte("{not json")})
	wantAPIError(t, err, "InvalidRequestContentException", 400)
	_, err = c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("nope")})
	wantAPIError(t, err, "ResourceNotFoundException", 404)
	_, err = c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("calculate_mean"), Qualifier: aws.String("7")})
	wantAPIError(t, err, "ResourceNotFoundException", 404)
	_, err = c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("calculate_mean:nosuchalias")})
	wantAPIError(t, err, "ResourceNotFoundException", 404)
	_, err = c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("calculate_mean"),
		Payload: []byte(`{"x": "` + strings.Repeat("x", 6<<20) + `"}`)})
	wantAPIError(t, err, "RequestEntityTooLargeException", 413)
	dry, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("calculate_mean"), InvocationType: types.InvocationTypeDryRun})
	if err != nil || dry.StatusCode != 204 {
		t.Fatalf("DryRun: %v %v", dry, err)
	}
}

func TestInvokeFailures(t *testing.T) {
	needSandboxes(t)
	s := servertest.Start(t, "")
	c := lambda.NewFromConfig(s.Config(t, nil))
	createFunction(t, c, "slow", types.RuntimePython312, "app.handler", zipEntry{name: "app.py", body: "import time\ndef handler(e, c):\n    time.sleep(5)\n"})
	if _, err := c.UpdateFunctionConfiguration(context.Background(), &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("slow"), Timeout: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	waitUpdated(t, c, "slow")
	r := invoke(t, c, "slow", `{}`)
	if r.fnError != "Unhandled" || !strings.Contains(r.payload, `"errorType": "Sandbox.Timedout"`) && !strings.Contains(r.payload, `"errorType":"Sandbox.Timedout"`) ||
		!strings.Contains(r.payload, "Task timed out after 1.00 seconds") || !strings.Contains(r.log, "Status: timeout") {
		t.Fatalf("timeout: %+v", r)
	}
	// The timed-out environment was killed with everything in it.
	if out, _ := exec.Command("runc", "--root", s.DataDir+"/sandboxes/runc", "list", "-q").Output(); strings.TrimSpace(string(out)) != "" {
		t.Fatalf("a timed-out environment still exists: %s", out)
	}
	createFunction(t, c, "hog", types.RuntimePython312, "app.handler", zipEntry{name: "app.py", body: "def handler(e, c):\n    x = bytearray(512 << 20)\n    return len(x)\n"})
	r = invoke(t, c, "hog", `{}`)
	if r.fnError != "Unhandled" || !strings.Contains(r.payload, "Runtime.OutOfMemory") {
		t.Fatalf("out of memory: %+v", r)
	}
	createFunction(t, c, "quitter", types.RuntimePython312, "app.handler", zipEntry{name: "app.py", body: "import os\ndef handler(e, c):\n    os._exit(3)\n"})
	r = invoke(t, c, "quitter", `{}`)
	if r.fnError != "Unhandled" || !strings.Contains(r.payload, "Runtime.ExitError") || !strings.Contains(r.payload, "exit status 3") {
		t.Fatalf("exit: %+v", r)
	}
	createFunction(t, c, "missing", types.RuntimePython312, "nothere.handler", zipEntry{name: "app.py", body: "def handler(e, c):\n    return 1\n"})
	r = invoke(t, c, "missing", `{}`)
	if r.fnError != "Unhandled" || !strings.Contains(r.payload, "Runtime.ImportModuleError") {
		t.Fatalf("import error: %+v", r)
	}
	createFunction(t, c, "nohandler", types.RuntimePython312, "app.nope", zipEntry{name: "app.py", body: "def handler(e, c):\n    return 1\n"})
	r = invoke(t, c, "nohandler", `{}`)
	if r.fnError != "Unhandled" || !strings.Contains(r.payload, "Runtime.HandlerNotFound") {
		t.Fatalf("handler not found: %+v", r)
	}
}

const probe = `import os, json
def handler(event, context):
    def readable(p):
        try:
            open(p).read(1)
            return True
        except Exception:
            return False
    pids = [p for p in os.listdir("/proc") if p.isdigit()]
    mine = "/tmp/" + event["mark"]
    open(mine, "w").write("x")
    forks = 0
    try:
        for _ in range(5000):
            if os.fork() == 0:
                import time; time.sleep(2); os._exit(0)
            forks += 1
    except OSError:
        pass
    return {"pids": len(pids), "tmp": sorted(os.listdir("/tmp")), "host_file": readable("/work/main/go.mod") or readable("/etc/shadow"),
            "forks": forks, "uid": os.getuid(), "env": os.environ.get("AWS_LAMBDA_FUNCTION_NAME"),
            "task_writable": os.access("/var/task", os.W_OK), "root_writable": os.access("/", os.W_OK)}
`

// TestIsolation checks what a function can and cannot do: it sees only its own processes, its own
// /tmp, none of the host's files, cannot fork without bound, runs without root, on a read-only root.
func TestIsolation(t *testing.T) {
	needSandboxes(t)
	s := servertest.Start(t, "")
	c := lambda.NewFromConfig(s.Config(t, nil))
	// Two functions, so two environments: neither sees the other's /tmp or processes.
	var results []invokeResult
	for _, name := range []string{"probe", "probe2"} {
		createMean(t, c, name, func(in *lambda.CreateFunctionInput) {
			in.Runtime, in.Handler, in.Timeout, in.MemorySize = types.RuntimePython312, aws.String("app.handler"), aws.Int32(60), aws.Int32(1769)
			in.Code.ZipFile = makeZip(t, zipEntry{name: "app.py", body: probe})
		})
	}
	for _, name := range []string{"probe", "probe2"} {
		results = append(results, invoke(t, c, name, `{"mark": "`+name+`"}`))
	}
	for i, r := range results {
		var got struct {
			Pids, Forks, UID int
			Tmp              []string
			HostFile         bool `json:"host_file"`
			Env              string
			TaskWritable     bool `json:"task_writable"`
			RootWritable     bool `json:"root_writable"`
		}
		if err := json.Unmarshal([]byte(r.payload), &got); err != nil {
			t.Fatalf("%s: %v", r.payload, err)
		}
		if got.HostFile || got.UID == 0 || got.TaskWritable || got.RootWritable || !strings.HasPrefix(got.Env, "probe") || got.Pids > 5 ||
			len(got.Tmp) != 1 || got.Forks >= 1024 {
			t.Fatalf("environment %d is not isolated: %+v (payload %s)", i, got, r.payload)
		}
	}
}

// TestConcurrentInvocationsScaleOut runs 20 one-second invocations at once: they take about a
// second together, not twenty.
func TestConcurrentInvocationsScaleOut(t *testing.T) {
	needSandboxes(t)
	s := servertest.Start(t, "")
	c := lambda.NewFromConfig(s.Config(t, nil))
	createFunction(t, c, "sleepy", types.RuntimePython312, "app.handler", zipEntry{name: "app.py", body: "import time\ndef handler(e, c):\n    time.sleep(1)\n    return 'ok'\n"})
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := invoke(t, c, "sleepy", "{}"); r.payload != `"ok"` {
				t.Errorf("invoke: %+v", r)
			}
		}()
	}
	wg.Wait()
	if d := time.Since(start); d > 8*time.Second {
		t.Fatalf("20 concurrent 1-second invocations took %v: they did not run side by side", d)
	}
	// Reserved concurrency 0 throttles.
	if _, err := c.PutFunctionConcurrency(context.Background(), &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String("sleepy"), ReservedConcurrentExecutions: aws.Int32(0)}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("sleepy")})
	wantAPIError(t, err, "TooManyRequestsException", 429)
}

func TestInvokeNodeAndProvided(t *testing.T) {
	needSandboxes(t)
	s := servertest.Start(t, "")
	c := lambda.NewFromConfig(s.Config(t, nil))
	createFunction(t, c, "node-mean", types.RuntimeNodejs18x, "index.handler", zipEntry{name: "index.js", body: `
exports.handler = async (event, context) => {
  console.log("averaging", event.nums.length, "numbers");
  return { statusCode: 200, body: event.nums.reduce((a, b) => a + b, 0) / event.nums.length, fn: context.functionName };
};`})
	r := invoke(t, c, "node-mean", `{"nums": [1, 2, 3, 4, 5]}`)
	if r.payload != `{"statusCode":200,"body":3,"fn":"node-mean"}` || !strings.Contains(r.log, "\tINFO\taveraging 5 numbers") {
		t.Fatalf("node: %+v", r)
	}

	// A Go function built with aws-lambda-go runs unchanged as provided.al2023's bootstrap.
	bin := t.TempDir() + "/bootstrap"
	build := exec.Command("go", "build", "-o", bin, "github.com/nubis/nubis/test/functions/gomean")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the Go function: %v\n%s", err, out)
	}
	exe, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	createFunction(t, c, "go-mean", types.RuntimeProvidedal2023, "bootstrap", zipEntry{name: "bootstrap", body: string(exe), mode: 0o755})
	r = invoke(t, c, "go-mean", `{"nums": [1, 2, 3, 4, 5]}`)
	var got struct {
		StatusCode int
		Body       float64
		RequestID  string
	}
	if err := json.Unmarshal([]byte(r.payload), &got); err != nil || got.StatusCode != 200 || got.Body != 3 || len(got.RequestID) != 36 {
		t.Fatalf("go: %+v (%v)", r, err)
	}
	r = invoke(t, c, "go-mean", `{"nums": []}`)
	if r.fnError != "Unhandled" || !strings.Contains(r.payload, "no numbers") {
		t.Fatalf("go error: %+v", r)
	}
}

func TestInvokeEvent(t *testing.T) {
	needSandboxes(t)
	s := servertest.Start(t, "")
	c := lambda.NewFromConfig(s.Config(t, nil))
	createFunction(t, c, "async", types.RuntimePython312, "app.handler", zipEntry{name: "app.py", body: "def handler(e, c):\n    print('got', e['n'])\n    return e\n"})
	out, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("async"), InvocationType: types.InvocationTypeEvent,
		Payload: []byte(`{"n": 42}`)})
	if err != nil || out.StatusCode != 202 {
		t.Fatalf("Event invoke: %v %v", out, err)
	}
	_, err = c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("async"), InvocationType: types.InvocationTypeEvent,
		Payload: []byte(`{"big": "` + strings.Repeat("x", 300<<10) + `"}`)})
	wantAPIError(t, err, "RequestEntityTooLargeException", 413)
	// The event runs in the background and its log lands in the function's log group.
	deadline := time.Now().Add(30 * time.Second)
	for {
		all := functionLogs(t, s, "async")
		if strings.Contains(all, `got 42`) && strings.Contains(all, `REPORT RequestId:`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the event did not run within 30 s; log group:\n%s", all)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestIdleEnvironmentsAreReclaimed: after the keep-warm period no environment is left (scale to
// zero), and the next invoke is a cold start again.
func TestIdleEnvironmentsAreReclaimed(t *testing.T) {
	needSandboxes(t)
	s := servertest.StartConfig(t, server.Config{KeepWarm: 300 * time.Millisecond})
	c := lambda.NewFromConfig(s.Config(t, nil))
	createMean(t, c, "calculate_mean")
	invoke(t, c, "calculate_mean", `{"nums": [1]}`)
	runcRoot := s.DataDir + "/sandboxes/runc"
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := exec.Command("runc", "--root", runcRoot, "list", "-q").Output()
		if strings.TrimSpace(string(out)) == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("idle environment not reclaimed: %s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := invoke(t, c, "calculate_mean", `{"nums": [1]}`); !strings.Contains(r.log, "Init Duration") {
		t.Fatalf("invoke after reclaim was not cold: %s", r.log)
	}
}

// functionLogs returns every message in a function's log group, read with FilterLogEvents.
func functionLogs(t *testing.T, s *servertest.Server, name string) string {
	t.Helper()
	c := cloudwatchlogs.NewFromConfig(s.Config(t, nil))
	var all strings.Builder
	p := cloudwatchlogs.NewFilterLogEventsPaginator(c, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/aws/lambda/" + name)})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		var nf *cwltypes.ResourceNotFoundException
		if errors.As(err, &nf) {
			return "" // no environment has started yet
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range out.Events {
			all.WriteString(aws.ToString(e.Message))
		}
	}
	return all.String()
}

// TestEventRetriesAndLogs: a failing Event invocation runs three times in all (two retries), and
// the log group has AWS's INIT_START line with the real interpreter version.
func TestEventRetriesAndLogs(t *testing.T) {
	needSandboxes(t)
	s := servertest.StartConfig(t, server.Config{EventRetryDelays: []time.Duration{50 * time.Millisecond, 50 * time.Millisecond}})
	c := lambda.NewFromConfig(s.Config(t, nil))
	createFunction(t, c, "flaky", types.RuntimePython312, "app.handler", zipEntry{name: "app.py", body: "def handler(e, c):\n    print('attempt', c.aws_request_id)\n    raise ValueError('always')\n"})
	if _, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("flaky"), InvocationType: types.InvocationTypeEvent}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(functionLogs(t, s, "flaky"), "attempt ") < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("not three attempts:\n%s", functionLogs(t, s, "flaky"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // no fourth attempt
	logs := functionLogs(t, s, "flaky")
	if n := strings.Count(logs, "attempt "); n != 3 {
		t.Fatalf("%d attempts, want 3:\n%s", n, logs)
	}
	if !strings.Contains(logs, `INIT_START Runtime Version: python:3.11`) {
		t.Fatalf("no INIT_START with the interpreter version:\n%s", logs)
	}
}

// TestAliasRouting: an alias with a routing configuration sends invocations to both versions.
func TestAliasRouting(t *testing.T) {
	needSandboxes(t)
	s := servertest.Start(t, "")
	c := lambda.NewFromConfig(s.Config(t, nil))
	ctx := context.Background()
	createFunction(t, c, "routed", types.RuntimePython312, "app.handler", zipEntry{name: "app.py", body: "def handler(e, c):\n    return 1\n"})
	if _, err := c.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("routed")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("routed"),
		ZipFile: makeZip(t, zipEntry{name: "app.py", body: "def handler(e, c):\n    return 2\n"})}); err != nil {
		t.Fatal(err)
	}
	waitUpdated(t, c, "routed")
	if _, err := c.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("routed")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String("routed"), Name: aws.String("live"), FunctionVersion: aws.String("1"),
		RoutingConfig: &types.AliasRoutingConfiguration{AdditionalVersionWeights: map[string]float64{"2": 0.5}}}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for i := 0; i < 40 && len(seen) < 2; i++ {
		r := invoke(t, c, "routed:live", "{}")
		seen[r.executed] = r.payload
	}
	if seen["1"] != "1" || seen["2"] != "2" {
		t.Fatalf("routing sent invocations to %v, want versions 1 and 2", seen)
	}
}
