package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nubis/nubis/internal/testenv"
)

const requestsScript = `
import os, requests
r = requests.get(os.environ["URL"], params={"nums": "1.5,2.5,3"})
print(r.status_code, r.text)
`

// TestAPIGatewayWalkthrough follows the API Gateway issue's path with Debian's aws CLI v2, curl and
// Python requests: an HTTP API in front of calculate_mean answers 500 while the handler reads
// event["nums"], the mean once it reads the query string, and 404 after DeleteApi.
func TestAPIGatewayWalkthrough(t *testing.T) {
	needRoot(t)
	needDebianAWS(t)
	curl := need(t, "curl")
	testenv.Need(t, exec.Command("/usr/bin/python3", "-c", "import requests").Run() == nil, "Debian's python3-requests is not installed")
	dataDir := t.TempDir()
	startServer(t, dataDir)
	vars := env(t, dataDir)
	c := cli{t: t, bin: "/usr/bin/aws", env: vars, home: t.TempDir()}
	dir := t.TempDir()
	writeZip(t, filepath.Join(dir, "function.zip"), "lambda_function.py", walkthroughHandler)
	fnARN := strings.TrimSpace(c.ok("lambda", "create-function", "--function-name", "calculate_mean", "--runtime", "python3.9",
		"--role", "arn:aws:iam::123456789012:role/lambda-basic-execution", "--handler", "lambda_function.lambda_handler",
		"--zip-file", "fileb://"+filepath.Join(dir, "function.zip"), "--query", "FunctionArn", "--output", "text"))
	c.ok("lambda", "wait", "function-active-v2", "--function-name", "calculate_mean")
	var api struct{ ApiId, ApiEndpoint string }
	json.Unmarshal([]byte(c.ok("apigatewayv2", "create-api", "--name", "calculate_mean-API", "--protocol-type", "HTTP",
		"--target", fnARN, "--route-key", "ANY /calculate_mean")), &api)
	if api.ApiId == "" || !strings.HasPrefix(api.ApiEndpoint, "http://"+api.ApiId+".execute-api.localhost:") {
		t.Fatalf("create-api: %+v", api)
	}
	account := strings.Split(fnARN, ":")[4]
	c.ok("lambda", "add-permission", "--function-name", "calculate_mean", "--statement-id", "apigateway-invoke",
		"--action", "lambda:InvokeFunction", "--principal", "apigateway.amazonaws.com",
		"--source-arn", "arn:aws:execute-api:us-east-1:"+account+":"+api.ApiId+"/*/*/calculate_mean")
	url := api.ApiEndpoint + "/calculate_mean"
	get := func(u string) string {
		out, err := exec.Command(curl, "-s", "-w", " %{http_code}", u).Output()
		if err != nil {
			t.Fatalf("curl %s: %v", u, err)
		}
		return string(out)
	}
	if got := get(url); got != `{"message":"Internal Server Error"} 500` {
		t.Fatalf("before the fix: %q", got)
	}
	// The handler reads the query string (falling back to event["nums"] for direct invokes).
	writeZip(t, filepath.Join(dir, "function.zip"), "lambda_function.py", `def lambda_handler(event, context):
    qs = event.get("queryStringParameters") or {}
    nums = [float(x) for x in qs["nums"].split(",")] if "nums" in qs else event["nums"]
    return {"statusCode": 200, "body": sum(nums) / len(nums)}
`)
	c.ok("lambda", "update-function-code", "--function-name", "calculate_mean", "--zip-file", "fileb://"+filepath.Join(dir, "function.zip"))
	c.ok("lambda", "wait", "function-updated-v2", "--function-name", "calculate_mean")
	if got := get(url + "?nums=1,2,3"); got != "2.0 200" {
		t.Fatalf("curl with nums: %q", got)
	}
	// Python's resolver (glibc without nss-myhostname) does not know *.localhost, so requests
	// uses the path form of the endpoint, as any client that cannot reach the API's host does.
	pathURL := vars["AWS_ENDPOINT_URL"] + "/_aws/execute-api/" + api.ApiId + "/calculate_mean"
	py := exec.Command("/usr/bin/python3", "-c", requestsScript)
	py.Env = []string{"URL=" + pathURL, "PATH=" + os.Getenv("PATH"), "NO_PROXY=*"}
	out, err := py.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "200 2.3333333333333335" {
		t.Fatalf("python requests: %v %s", err, out)
	}
	c.ok("apigatewayv2", "delete-api", "--api-id", api.ApiId)
	if got := get(url + "?nums=1,2,3"); got != `{"message":"Not Found"} 404` {
		t.Fatalf("after delete-api: %q", got)
	}
}

// TestAddTrigger: `nubis add-trigger` gives a function the console's HTTP API trigger, and its URL
// answers at /default/<function>.
func TestAddTrigger(t *testing.T) {
	needRoot(t)
	needDebianAWS(t)
	curl := need(t, "curl")
	dataDir := t.TempDir()
	startServer(t, dataDir)
	c := cli{t: t, bin: "/usr/bin/aws", env: env(t, dataDir), home: t.TempDir()}
	dir := t.TempDir()
	writeZip(t, filepath.Join(dir, "f.zip"), "lambda_function.py", `def lambda_handler(event, context):
    return {"statusCode": 200, "body": event["requestContext"]["http"]["path"]}
`)
	c.ok("lambda", "create-function", "--function-name", "hello", "--runtime", "python3.12", "--role", "arn:aws:iam::123456789012:role/r",
		"--handler", "lambda_function.lambda_handler", "--zip-file", "fileb://"+filepath.Join(dir, "f.zip"))
	c.ok("lambda", "wait", "function-active-v2", "--function-name", "hello")
	out, err := exec.Command(nubisBin, "add-trigger", "--function", "hello", "--data-dir", dataDir).CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err != nil || len(lines) != 2 || !strings.HasSuffix(lines[1], "/default/hello") {
		t.Fatalf("add-trigger: %v\n%s", err, out)
	}
	got, err := exec.Command(curl, "-s", "-w", " %{http_code}", lines[1]).Output()
	if err != nil || string(got) != "/default/hello 200" {
		t.Fatalf("curl %s: %v %q", lines[1], err, got)
	}
	// A function that does not exist: a clear error, and no API left behind.
	out, err = exec.Command(nubisBin, "add-trigger", "--function", "nope", "--data-dir", dataDir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "ResourceNotFoundException") {
		t.Fatalf("add-trigger for a missing function: %v %s", err, out)
	}
	if apis := strings.TrimSpace(c.ok("apigatewayv2", "get-apis", "--query", "length(Items)", "--output", "text")); apis != "1" {
		t.Fatalf("%s APIs, want 1", apis)
	}
}
