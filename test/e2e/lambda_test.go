package e2e

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nubis/nubis/internal/testenv"
)

func needRoot(t *testing.T) {
	t.Helper()
	testenv.Need(t, os.Geteuid() == 0, "running functions needs root")
	need(t, "runc")
}

// needDebianAWS requires Debian's aws CLI v2 at /usr/bin/aws.
func needDebianAWS(t *testing.T) {
	t.Helper()
	_, err := os.Stat("/usr/bin/aws")
	testenv.Need(t, err == nil, "Debian's aws CLI (/usr/bin/aws) is not installed")
}

// needBoto3 requires Debian's python3-boto3.
func needBoto3(t *testing.T) {
	t.Helper()
	err := exec.Command("/usr/bin/python3", "-c", "import boto3").Run()
	testenv.Need(t, err == nil, "Debian's python3-boto3 is not installed")
}

func writeZip(t *testing.T, path, name, body string) {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create(name)
	w.Write([]byte(body))
	zw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The walkthrough's handler: AWS's template changed to return the mean.
const walkthroughHandler = `import json

def mean(xs):
    return sum(xs) / len(xs)

def lambda_handler(event, context):
    print("computing the mean of", event["nums"])
    return {"statusCode": 200, "body": mean(event["nums"])}
`

// TestLambdaWalkthrough follows the walkthrough with Debian's aws CLI v2: create
// calculate_mean, invoke it with a payload file, read the log tail, change the code, deploy,
// invoke again, read the logs with aws logs tail.
func TestLambdaWalkthrough(t *testing.T) {
	needRoot(t)
	needDebianAWS(t)
	dataDir := t.TempDir()
	startServer(t, dataDir)
	c := cli{t: t, bin: "/usr/bin/aws", env: env(t, dataDir), home: t.TempDir()}
	dir := t.TempDir()
	writeZip(t, filepath.Join(dir, "function.zip"), "lambda_function.py", walkthroughHandler)
	os.WriteFile(filepath.Join(dir, "input.json"), []byte(`{"nums": [1, 2, 3, 4, 5]}`), 0o644)
	c.ok("lambda", "create-function", "--function-name", "calculate_mean", "--runtime", "python3.9",
		"--role", "arn:aws:iam::123456789012:role/lambda-basic-execution", "--handler", "lambda_function.lambda_handler",
		"--zip-file", "fileb://"+filepath.Join(dir, "function.zip"))
	c.ok("lambda", "wait", "function-active-v2", "--function-name", "calculate_mean")
	out := filepath.Join(dir, "output.json")
	meta := c.ok("lambda", "invoke", "--function-name", "calculate_mean", "--cli-binary-format", "raw-in-base64-out",
		"--payload", "file://"+filepath.Join(dir, "input.json"), "--log-type", "Tail", out)
	got, _ := os.ReadFile(out)
	if string(got) != `{"statusCode": 200, "body": 3.0}` {
		t.Fatalf("output.json = %s", got)
	}
	var m struct {
		StatusCode      int
		LogResult       string
		ExecutedVersion string
	}
	json.Unmarshal([]byte(meta), &m)
	log, _ := base64.StdEncoding.DecodeString(m.LogResult)
	for _, want := range []string{"START RequestId:", "computing the mean of [1, 2, 3, 4, 5]", "END RequestId:", "REPORT RequestId:", "Init Duration:"} {
		if !strings.Contains(string(log), want) {
			t.Fatalf("log tail has no %q:\n%s", want, log)
		}
	}
	if m.StatusCode != 200 || m.ExecutedVersion != "$LATEST" {
		t.Fatalf("invoke: %s", meta)
	}
	// Change the code, deploy, invoke again.
	writeZip(t, filepath.Join(dir, "function.zip"), "lambda_function.py",
		strings.Replace(walkthroughHandler, `"body": mean(event["nums"])`, `"body": mean(event["nums"]), "n": len(event["nums"])`, 1))
	c.ok("lambda", "update-function-code", "--function-name", "calculate_mean", "--zip-file", "fileb://"+filepath.Join(dir, "function.zip"))
	c.ok("lambda", "wait", "function-updated-v2", "--function-name", "calculate_mean")
	c.ok("lambda", "invoke", "--function-name", "calculate_mean", "--cli-binary-format", "raw-in-base64-out",
		"--payload", "file://"+filepath.Join(dir, "input.json"), out)
	got, _ = os.ReadFile(out)
	if string(got) != `{"statusCode": 200, "body": 3.0, "n": 5}` {
		t.Fatalf("after the update, output.json = %s", got)
	}
	// Both invocations' logs, as CloudWatch Logs serves them: aws logs tail reads the group.
	tail := c.ok("logs", "tail", "/aws/lambda/calculate_mean", "--since", "1h", "--format", "short")
	if n := strings.Count(tail, "computing the mean of [1, 2, 3, 4, 5]"); n != 2 || strings.Count(tail, "REPORT RequestId:") != 2 {
		t.Fatalf("aws logs tail: %d invocations logged:\n%s", n, tail)
	}
	var groups struct {
		LogGroups []struct{ LogGroupName string }
	}
	json.Unmarshal([]byte(c.ok("logs", "describe-log-groups", "--log-group-name-prefix", "/aws/lambda/")), &groups)
	if len(groups.LogGroups) != 1 || groups.LogGroups[0].LogGroupName != "/aws/lambda/calculate_mean" {
		t.Fatalf("describe-log-groups: %+v", groups)
	}
	_, errOut, code := c.run("lambda", "invoke", "--function-name", "nope", out)
	if code == 0 || !strings.Contains(errOut, "ResourceNotFoundException") {
		t.Fatalf("unknown function: exit %d %s", code, errOut)
	}
}

const boto3Lambda = `
import io, os, json, zipfile, boto3
ep = os.environ["AWS_ENDPOINT_URL"]
lam = boto3.client("lambda", endpoint_url=ep)
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    z.writestr("lambda_function.py", os.environ["HANDLER"])
lam.create_function(FunctionName="calculate_mean", Runtime="python3.9", Role="arn:aws:iam::123456789012:role/r",
                    Handler="lambda_function.lambda_handler", Code={"ZipFile": buf.getvalue()})
lam.get_waiter("function_active_v2").wait(FunctionName="calculate_mean")
r = lam.invoke(FunctionName="calculate_mean", Payload=json.dumps({"nums": [1, 2, 3, 4, 5]}))
body = json.loads(r["Payload"].read())
assert body == {"statusCode": 200, "body": 3.0}, body
print("ok")
`

func TestLambdaBoto3(t *testing.T) {
	needRoot(t)
	needBoto3(t)
	dataDir := t.TempDir()
	startServer(t, dataDir)
	cmd := exec.Command("/usr/bin/python3", "-c", boto3Lambda)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "HANDLER=" + walkthroughHandler}
	for k, v := range env(t, dataDir) {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("boto3: %v\n%s", err, out)
	}
}

// TestLambdaSurvivesSIGKILL kills the server while a warm environment runs, and checks that the
// restarted server keeps the functions, versions and aliases and leaves no sandbox, network
// namespace or process of the old environment behind.
func TestLambdaSurvivesSIGKILL(t *testing.T) {
	needRoot(t)
	needDebianAWS(t)
	dataDir := t.TempDir()
	srv := startServer(t, dataDir)
	c := cli{t: t, bin: "/usr/bin/aws", env: env(t, dataDir), home: t.TempDir()}
	dir := t.TempDir()
	writeZip(t, filepath.Join(dir, "f.zip"), "lambda_function.py", walkthroughHandler)
	c.ok("lambda", "create-function", "--function-name", "calculate_mean", "--runtime", "python3.12", "--role",
		"arn:aws:iam::123456789012:role/r", "--handler", "lambda_function.lambda_handler", "--zip-file", "fileb://"+filepath.Join(dir, "f.zip"), "--publish")
	c.ok("lambda", "wait", "function-active-v2", "--function-name", "calculate_mean")
	c.ok("lambda", "create-alias", "--function-name", "calculate_mean", "--name", "live", "--function-version", "1")
	out := filepath.Join(dir, "out.json")
	c.ok("lambda", "invoke", "--function-name", "calculate_mean:live", "--cli-binary-format", "raw-in-base64-out", "--payload", `{"nums": [2, 4]}`, out)
	runcRoot := filepath.Join(dataDir, "sandboxes", "runc")
	before, _ := exec.Command("runc", "--root", runcRoot, "list", "-q").Output()
	if len(strings.Fields(string(before))) != 1 {
		t.Fatalf("expected one warm sandbox, runc lists %q", before)
	}
	state, _ := exec.Command("runc", "--root", runcRoot, "state", strings.TrimSpace(string(before))).Output()
	var st struct{ Pid int }
	json.Unmarshal(state, &st)
	srv.stop(t, syscall.SIGKILL)

	startServer(t, dataDir)
	after, _ := exec.Command("runc", "--root", runcRoot, "list", "-q").Output()
	if strings.TrimSpace(string(after)) != "" {
		t.Fatalf("sandboxes left after restart: %q", after)
	}
	if st.Pid > 0 {
		if err := syscall.Kill(st.Pid, 0); err == nil {
			if b, _ := os.ReadFile("/proc/" + itoa(st.Pid) + "/stat"); !strings.Contains(string(b), ") Z ") {
				t.Fatalf("the old environment's process %d still runs", st.Pid)
			}
		}
	}
	oldID := strings.TrimSpace(string(before))
	for _, ctl := range []string{"memory", "pids", "cpu"} {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", ctl, "nubis", oldID)); err == nil {
			t.Fatalf("the old environment's %s cgroup is left", ctl)
		}
	}
	sum := sha256.Sum256([]byte(dataDir))
	if entries, _ := os.ReadDir("/run/nubis/netns-" + hex.EncodeToString(sum[:6])); len(entries) != 0 {
		t.Fatalf("network namespaces left: %v", entries)
	}
	c.env = env(t, dataDir)
	c.ok("lambda", "invoke", "--function-name", "calculate_mean:live", "--cli-binary-format", "raw-in-base64-out", "--payload", `{"nums": [2, 4]}`, out)
	if got, _ := os.ReadFile(out); string(got) != `{"statusCode": 200, "body": 3.0}` {
		t.Fatalf("after restart: %s", got)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestQueuedEventSurvivesSIGKILL: an Event invocation accepted before the server dies runs after
// the restart (at least once, as on AWS).
func TestQueuedEventSurvivesSIGKILL(t *testing.T) {
	needRoot(t)
	needDebianAWS(t)
	dataDir := t.TempDir()
	srv := startServer(t, dataDir)
	c := cli{t: t, bin: "/usr/bin/aws", env: env(t, dataDir), home: t.TempDir()}
	dir := t.TempDir()
	writeZip(t, filepath.Join(dir, "f.zip"), "app.py", "import time\ndef handler(e, c):\n    print('start', e['mark'])\n    time.sleep(2)\n    print('done', e['mark'])\n")
	c.ok("lambda", "create-function", "--function-name", "slowevent", "--runtime", "python3.12", "--role",
		"arn:aws:iam::123456789012:role/r", "--handler", "app.handler", "--timeout", "10", "--zip-file", "fileb://"+filepath.Join(dir, "f.zip"))
	c.ok("lambda", "wait", "function-active-v2", "--function-name", "slowevent")
	c.ok("lambda", "invoke", "--function-name", "slowevent", "--invocation-type", "Event", "--cli-binary-format", "raw-in-base64-out",
		"--payload", `{"mark": "m1"}`, filepath.Join(dir, "out.json"))
	logs := func() string {
		var all strings.Builder
		root := filepath.Join(dataDir, "logs")
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				b, _ := os.ReadFile(p)
				all.Write(b)
			}
			return nil
		})
		return all.String()
	}
	waitFor := func(what string) {
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(logs(), what) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the logs:\n%s", what, logs())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("start m1")
	srv.stop(t, syscall.SIGKILL) // while the event runs: it is not done, so it stays queued
	if strings.Contains(logs(), "done m1") {
		t.Fatal("the event finished before the kill; the test proves nothing")
	}
	startServer(t, dataDir)
	waitFor("done m1")
}

// TestLambdaLayerCLI: a Node.js layer published with the aws CLI (a package under
// nodejs/node_modules), used by a function that requires it by name.
func TestLambdaLayerCLI(t *testing.T) {
	needRoot(t)
	needDebianAWS(t)
	dataDir := t.TempDir()
	startServer(t, dataDir)
	c := cli{t: t, bin: "/usr/bin/aws", env: env(t, dataDir), home: t.TempDir()}
	dir := t.TempDir()
	writeZip(t, filepath.Join(dir, "layer.zip"), "nodejs/node_modules/greet/index.js", "exports.greet = (n) => `hello, ${n}`;\n")
	var layer struct{ LayerVersionArn string }
	json.Unmarshal([]byte(c.ok("lambda", "publish-layer-version", "--layer-name", "greet", "--zip-file", "fileb://"+filepath.Join(dir, "layer.zip"),
		"--compatible-runtimes", "nodejs20.x")), &layer)
	if !strings.HasSuffix(layer.LayerVersionArn, ":layer:greet:1") {
		t.Fatalf("publish-layer-version: %+v", layer)
	}
	writeZip(t, filepath.Join(dir, "f.zip"), "index.js", "const { greet } = require('greet');\nexports.handler = async (e) => greet(e.name);\n")
	c.ok("lambda", "create-function", "--function-name", "greeter", "--runtime", "nodejs20.x", "--role", "arn:aws:iam::123456789012:role/r",
		"--handler", "index.handler", "--zip-file", "fileb://"+filepath.Join(dir, "f.zip"), "--layers", layer.LayerVersionArn)
	c.ok("lambda", "wait", "function-active-v2", "--function-name", "greeter")
	out := filepath.Join(dir, "out.json")
	c.ok("lambda", "invoke", "--function-name", "greeter", "--cli-binary-format", "raw-in-base64-out", "--payload", `{"name": "nubis"}`, out)
	if got, _ := os.ReadFile(out); string(got) != `"hello, nubis"` {
		t.Fatalf("invoke: %s", got)
	}
	if list := c.ok("lambda", "list-layers"); !strings.Contains(list, `"LayerName": "greet"`) {
		t.Fatalf("list-layers: %s", list)
	}
	if settings := c.ok("lambda", "get-account-settings"); !strings.Contains(settings, `"FunctionCount": 1`) {
		t.Fatalf("get-account-settings: %s", settings)
	}
}

// TestFunctionURLCLI: a function URL made with the aws CLI, opened to everyone with add-permission
// --function-url-auth-type NONE, and called with curl by its own URL.
func TestFunctionURLCLI(t *testing.T) {
	needRoot(t)
	needDebianAWS(t)
	curl := need(t, "curl")
	dataDir := t.TempDir()
	startServer(t, dataDir)
	c := cli{t: t, bin: "/usr/bin/aws", env: env(t, dataDir), home: t.TempDir()}
	dir := t.TempDir()
	writeZip(t, filepath.Join(dir, "f.zip"), "lambda_function.py",
		"def lambda_handler(event, context):\n    nums = [float(x) for x in event['queryStringParameters']['nums'].split(',')]\n    return {'mean': sum(nums) / len(nums)}\n")
	c.ok("lambda", "create-function", "--function-name", "calculate_mean", "--runtime", "python3.12", "--role", "arn:aws:iam::123456789012:role/r",
		"--handler", "lambda_function.lambda_handler", "--zip-file", "fileb://"+filepath.Join(dir, "f.zip"))
	c.ok("lambda", "wait", "function-active-v2", "--function-name", "calculate_mean")
	var cfg struct{ FunctionUrl string }
	json.Unmarshal([]byte(c.ok("lambda", "create-function-url-config", "--function-name", "calculate_mean", "--auth-type", "NONE")), &cfg)
	if cfg.FunctionUrl == "" {
		t.Fatal("no FunctionUrl")
	}
	get := func() string {
		out, err := exec.Command(curl, "-s", "-w", " %{http_code}", cfg.FunctionUrl+"?nums=1,2,3,4").Output()
		if err != nil {
			t.Fatalf("curl %s: %v", cfg.FunctionUrl, err)
		}
		return string(out)
	}
	if got := get(); got != `{"Message":"Forbidden"} 403` {
		t.Fatalf("before add-permission: %q", got)
	}
	// Both permissions, as AWS requires of function URLs since October 2025.
	c.ok("lambda", "add-permission", "--function-name", "calculate_mean", "--statement-id", "FunctionURLAllowPublicAccess",
		"--action", "lambda:InvokeFunctionUrl", "--principal", "*", "--function-url-auth-type", "NONE")
	if got := get(); got != `{"Message":"Forbidden"} 403` {
		t.Fatalf("with lambda:InvokeFunctionUrl only: %q", got)
	}
	c.ok("lambda", "add-permission", "--function-name", "calculate_mean", "--statement-id", "FunctionURLInvokeAllowPublicAccess",
		"--action", "lambda:InvokeFunction", "--principal", "*")
	if got := get(); got != `{"mean": 2.5} 200` {
		t.Fatalf("after add-permission: %q", got)
	}
}
