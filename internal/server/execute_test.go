package server_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	apitypes "github.com/aws/aws-sdk-go-v2/service/apigatewayv2/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/nubis/nubis/internal/server/servertest"
)

// The handler: reads ?nums=1,2,3, falls back to event["nums"] for direct invokes.
const queryMeanHandler = `def lambda_handler(event, context):
    qs = event.get("queryStringParameters") or {}
    if "nums" in qs:
        nums = [float(x) for x in qs["nums"].split(",")]
    else:
        nums = event["nums"]
    return {"statusCode": 200, "body": str(sum(nums) / len(nums))}
`

type httpResult struct {
	status int
	header http.Header
	body   string
}

// get sends a request to an API's endpoint by host, as curl and browsers do.
func apiRequest(t *testing.T, s *servertest.Server, method, apiID, path string, header http.Header, body string) httpResult {
	t.Helper()
	u, _ := url.Parse(s.Endpoint())
	req, err := http.NewRequest(method, s.Endpoint()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = apiID + ".execute-api.localhost:" + u.Port()
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return httpResult{resp.StatusCode, resp.Header, string(b)}
}

// setupAPI creates calculate_mean, an HTTP API in front of it (quick create) and the permission
// API Gateway needs.
func setupAPI(t *testing.T, s *servertest.Server, handler string, permit bool, mutate func(*apigatewayv2.CreateApiInput)) (string, *apigatewayv2.Client) {
	t.Helper()
	ctx := context.Background()
	lc := lambda.NewFromConfig(s.Config(t, nil))
	createFunction(t, lc, "calculate_mean", types.RuntimePython312, "lambda_function.lambda_handler", zipEntry{name: "lambda_function.py", body: handler})
	fnARN := "arn:aws:lambda:us-east-1:" + s.Identity().Account().ID + ":function:calculate_mean"
	ac := apigatewayv2.NewFromConfig(s.Config(t, nil))
	in := &apigatewayv2.CreateApiInput{Name: aws.String("calculate_mean-API"), ProtocolType: apitypes.ProtocolTypeHttp, Target: aws.String(fnARN)}
	if mutate != nil {
		mutate(in)
	}
	api, err := ac.CreateApi(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if permit {
		_, err = lc.AddPermission(ctx, &lambda.AddPermissionInput{FunctionName: aws.String("calculate_mean"), StatementId: aws.String("apigw"),
			Action: aws.String("lambda:InvokeFunction"), Principal: aws.String("apigateway.amazonaws.com"),
			SourceArn: aws.String("arn:aws:execute-api:us-east-1:" + s.Identity().Account().ID + ":" + *api.ApiId + "/*")})
		if err != nil {
			t.Fatal(err)
		}
	}
	return *api.ApiId, ac
}

func TestExecuteAPIWalkthrough(t *testing.T) {
	needSandboxes(t)
	s := servertest.Start(t, "")
	apiID, ac := setupAPI(t, s, meanHandler, true, nil)
	// The template handler reads event["nums"]: through the API it raises KeyError.
	r := apiRequest(t, s, "GET", apiID, "/", nil, "")
	if r.status != 500 || r.body != `{"message":"Internal Server Error"}` || r.header.Get("Apigw-Requestid") == "" {
		t.Fatalf("without parameters: %+v", r)
	}
	lc := lambda.NewFromConfig(s.Config(t, nil))
	if _, err := lc.UpdateFunctionCode(context.Background(), &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("calculate_mean"),
		ZipFile: makeZip(t, zipEntry{name: "lambda_function.py", body: queryMeanHandler})}); err != nil {
		t.Fatal(err)
	}
	waitUpdated(t, lc, "calculate_mean")
	r = apiRequest(t, s, "GET", apiID, "/?nums=1,2,3", nil, "")
	if r.status != 200 || r.body != "2.0" {
		t.Fatalf("with nums: %+v", r)
	}
	// The path form for clients that cannot set a host.
	resp, err := http.Get(s.Endpoint() + "/_aws/execute-api/" + apiID + "/?nums=1.5,2.5,3")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "2.3333333333333335" {
		t.Fatalf("path form: %d %s", resp.StatusCode, b)
	}
	if _, err := ac.DeleteApi(context.Background(), &apigatewayv2.DeleteApiInput{ApiId: aws.String(apiID)}); err != nil {
		t.Fatal(err)
	}
	r = apiRequest(t, s, "GET", apiID, "/?nums=1,2,3", nil, "")
	if r.status != 404 || r.body != `{"message":"Not Found"}` {
		t.Fatalf("after DeleteApi: %+v", r)
	}
}

func TestExecuteAPIRoutesPermissionsAndErrors(t *testing.T) {
	needSandboxes(t)
	s := servertest.Start(t, "")
	apiID, ac := setupAPI(t, s, queryMeanHandler, false, func(in *apigatewayv2.CreateApiInput) {
		in.RouteKey = aws.String("GET /calculate_mean")
		in.CorsConfiguration = &apitypes.Cors{AllowOrigins: []string{"https://example.com"}, AllowMethods: []string{"GET"}}
	})
	// Without a permission API Gateway may not invoke the function: 500, as on AWS.
	if r := apiRequest(t, s, "GET", apiID, "/calculate_mean?nums=1", nil, ""); r.status != 500 {
		t.Fatalf("without permission: %+v", r)
	}
	lc := lambda.NewFromConfig(s.Config(t, nil))
	if _, err := lc.AddPermission(context.Background(), &lambda.AddPermissionInput{FunctionName: aws.String("calculate_mean"),
		StatementId: aws.String("apigw"), Action: aws.String("lambda:InvokeFunction"), Principal: aws.String("apigateway.amazonaws.com"),
		SourceArn: aws.String("arn:aws:execute-api:us-east-1:" + s.Identity().Account().ID + ":" + apiID + "/*/*/calculate_mean")}); err != nil {
		t.Fatal(err)
	}
	if r := apiRequest(t, s, "GET", apiID, "/calculate_mean?nums=4,6", nil, ""); r.status != 200 || r.body != "5.0" {
		t.Fatalf("with permission: %+v", r)
	}
	if r := apiRequest(t, s, "POST", apiID, "/calculate_mean", nil, ""); r.status != 404 || r.body != `{"message":"Not Found"}` {
		t.Fatalf("no route: %+v", r)
	}
	// CORS: the preflight is answered by API Gateway itself; actual responses carry the headers.
	pre := apiRequest(t, s, "OPTIONS", apiID, "/calculate_mean", http.Header{"Origin": {"https://example.com"}, "Access-Control-Request-Method": {"GET"}}, "")
	if pre.status != 204 || pre.header.Get("Access-Control-Allow-Origin") != "https://example.com" {
		t.Fatalf("preflight: %+v", pre)
	}
	got := apiRequest(t, s, "GET", apiID, "/calculate_mean?nums=1", http.Header{"Origin": {"https://example.com"}}, "")
	if got.header.Get("Access-Control-Allow-Origin") != "https://example.com" {
		t.Fatalf("CORS on the response: %+v", got)
	}
	// Throttling from the stage's default route settings.
	if _, err := ac.UpdateStage(context.Background(), &apigatewayv2.UpdateStageInput{ApiId: aws.String(apiID), StageName: aws.String("$default"),
		DefaultRouteSettings: &apitypes.RouteSettings{ThrottlingBurstLimit: aws.Int32(2), ThrottlingRateLimit: aws.Float64(1)}}); err != nil {
		t.Fatal(err)
	}
	codes := map[int]int{}
	for i := 0; i < 6; i++ {
		r := apiRequest(t, s, "GET", apiID, "/calculate_mean?nums=1", nil, "")
		codes[r.status]++
		if r.status == 429 && r.body != `{"message":"Too Many Requests"}` {
			t.Fatalf("throttled: %+v", r)
		}
	}
	if codes[429] < 3 || codes[200] < 2 {
		t.Fatalf("throttling with burst 2 at 1/s: %v", codes)
	}
}

func TestExecuteAPIIAMAuthorization(t *testing.T) {
	needSandboxes(t)
	s := servertest.Start(t, "")
	apiID, ac := setupAPI(t, s, queryMeanHandler, true, nil)
	ctx := context.Background()
	routes, err := ac.GetRoutes(ctx, &apigatewayv2.GetRoutesInput{ApiId: aws.String(apiID)})
	if err != nil || len(routes.Items) != 1 {
		t.Fatalf("routes: %v %v", routes, err)
	}
	integ := *routes.Items[0].Target
	if _, err := ac.CreateRoute(ctx, &apigatewayv2.CreateRouteInput{ApiId: aws.String(apiID), RouteKey: aws.String("GET /private"),
		Target: aws.String(integ), AuthorizationType: apitypes.AuthorizationTypeAwsIam}); err != nil {
		t.Fatal(err)
	}
	if r := apiRequest(t, s, "GET", apiID, "/private?nums=1", nil, ""); r.status != 403 || r.body != `{"message":"Forbidden"}` {
		t.Fatalf("unsigned to AWS_IAM route: %+v", r)
	}
	u, _ := url.Parse(s.Endpoint())
	req, _ := http.NewRequest("GET", s.Endpoint()+"/private?nums=3", nil)
	req.Host = apiID + ".execute-api.localhost:" + u.Port()
	sum := sha256.Sum256(nil)
	if err := v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: s.Key.ID, SecretAccessKey: s.Key.Secret}, req,
		hex.EncodeToString(sum[:]), "execute-api", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "3.0" {
		t.Fatalf("signed request to AWS_IAM route: %d %s", resp.StatusCode, b)
	}
}

func TestExecuteAPIMalformedRequests(t *testing.T) {
	s := servertest.Start(t, "")
	addr := strings.TrimPrefix(s.Endpoint(), "http://")
	for _, raw := range []string{
		"GET /%zz HTTP/1.1\r\nHost: abc.execute-api.localhost\r\n\r\n",
		"GET /a/../../b HTTP/1.1\r\nHost: abc.execute-api.localhost\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: abc.execute-api.localhost\r\nContent-Length: nope\r\n\r\n",
		"GET /_aws/execute-api/ HTTP/1.1\r\nHost: x\r\n\r\n",
		"BREW / HTTP/1.1\r\nHost: abc.execute-api.localhost\r\n\r\n",
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(conn, raw)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		conn.Close()
		if err != nil {
			t.Fatalf("%q: no HTTP response: %v", raw, err)
		}
		if resp.StatusCode != 400 && resp.StatusCode != 404 && resp.StatusCode != 403 {
			t.Errorf("%q: %d, want a 4xx", raw, resp.StatusCode)
		}
	}
	// The server is still up.
	if r := apiRequest(t, s, "GET", "nosuchapi", "/", nil, ""); r.status != 404 {
		t.Fatalf("%+v", r)
	}
}

// TestExecuteAPIIntegrationTimeout: an integration that does not answer within its timeout gives
// 503 {"message":"Service Unavailable"}.
func TestExecuteAPIIntegrationTimeout(t *testing.T) {
	needSandboxes(t)
	s := servertest.Start(t, "")
	apiID, ac := setupAPI(t, s, "import time\ndef lambda_handler(e, c):\n    time.sleep(2)\n    return 'late'\n", true, nil)
	ints, err := ac.GetIntegrations(context.Background(), &apigatewayv2.GetIntegrationsInput{ApiId: aws.String(apiID)})
	if err != nil || len(ints.Items) != 1 {
		t.Fatalf("%v %v", ints, err)
	}
	if _, err := ac.UpdateIntegration(context.Background(), &apigatewayv2.UpdateIntegrationInput{ApiId: aws.String(apiID),
		IntegrationId: ints.Items[0].IntegrationId, TimeoutInMillis: aws.Int32(500)}); err != nil {
		t.Fatal(err)
	}
	lc := lambda.NewFromConfig(s.Config(t, nil))
	if _, err := lc.UpdateFunctionConfiguration(context.Background(), &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("calculate_mean"), Timeout: aws.Int32(5)}); err != nil {
		t.Fatal(err)
	}
	waitUpdated(t, lc, "calculate_mean")
	if r := apiRequest(t, s, "GET", apiID, "/", nil, ""); r.status != 503 || r.body != `{"message":"Service Unavailable"}` {
		t.Fatalf("integration timeout: %+v", r)
	}
	// The function is still running; stopping the server stops its environment too, leaving no
	// sandbox or cgroup behind.
	ids, _ := exec.Command("runc", "--root", s.DataDir+"/sandboxes/runc", "list", "-q").Output()
	id := strings.TrimSpace(string(ids))
	if id == "" {
		t.Fatal("no environment is running the function")
	}
	s.Stop(t)
	if _, err := os.Stat("/sys/fs/cgroup/memory/nubis/" + id); err == nil {
		t.Fatalf("the cgroup of environment %s outlived the server", id)
	}
	if out, _ := exec.Command("runc", "--root", s.DataDir+"/sandboxes/runc", "list", "-q").Output(); strings.TrimSpace(string(out)) != "" {
		t.Fatalf("sandboxes outlived the server: %s", out)
	}
}
