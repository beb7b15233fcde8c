package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/nubis/nubis/internal/server/servertest"
)

// echoHandler answers with what a function URL event told it.
const echoHandler = `import json
def handler(event, context):
    rc = event["requestContext"]
    return {"statusCode": 201, "headers": {"x-echo": "yes"}, "body": json.dumps({
        "path": event["rawPath"], "query": event.get("queryStringParameters"), "method": rc["http"]["method"],
        "routeKey": event["routeKey"], "stage": rc["stage"], "account": rc["accountId"], "body": event.get("body"),
        "domain": rc["domainName"], "iam": (rc.get("authorizer") or {}).get("iam")})}
`

// urlRequest sends a request to a function URL: by host (as curl and browsers do) or, with
// byPath, by the /_aws/lambda-url/ path.
func urlRequest(t *testing.T, s *servertest.Server, method, fnURL, path, body string, byPath bool, sign bool) httpResult {
	t.Helper()
	u, err := url.Parse(fnURL)
	if err != nil {
		t.Fatal(err)
	}
	id, _, _ := strings.Cut(u.Host, ".")
	target := s.Endpoint() + path
	if byPath {
		target = s.Endpoint() + "/_aws/lambda-url/" + id + path
	}
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if !byPath {
		req.Host = u.Host
	}
	if body != "" {
		req.Header.Set("Content-Type", "text/plain") // else the event's body is base64, as on AWS
	}
	if sign {
		sum := sha256.Sum256([]byte(body))
		if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: s.Key.ID, SecretAccessKey: s.Key.Secret}, req,
			hex.EncodeToString(sum[:]), "lambda", "us-east-1", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return httpResult{resp.StatusCode, resp.Header, string(b)}
}

// TestFunctionURLs: a URL for a function and one for an alias; NONE needs the function's
// permission, AWS_IAM a signature; the event is Lambda's payload 2.0; CORS; the URL goes with its
// function, and errors are Lambda's.
func TestFunctionURLs(t *testing.T) {
	needSandboxes(t)
	ctx := context.Background()
	s := servertest.Start(t, "")
	c := lambda.NewFromConfig(s.Config(t, nil))
	createFunction(t, c, "echo", types.RuntimePython312, "app.handler", zipEntry{name: "app.py", body: echoHandler})
	created, err := c.CreateFunctionUrlConfig(ctx, &lambda.CreateFunctionUrlConfigInput{FunctionName: aws.String("echo"),
		AuthType: types.FunctionUrlAuthTypeNone, Cors: &types.Cors{AllowOrigins: []string{"https://app.example"}, AllowMethods: []string{"GET", "POST"}}})
	if err != nil {
		t.Fatal(err)
	}
	fnURL := aws.ToString(created.FunctionUrl)
	if !strings.HasPrefix(fnURL, "http://") || !strings.Contains(fnURL, ".lambda-url.us-east-1.localhost:") ||
		!strings.HasSuffix(aws.ToString(created.FunctionArn), ":function:echo") {
		t.Fatalf("created: %s %s", fnURL, aws.ToString(created.FunctionArn))
	}
	_, err = c.CreateFunctionUrlConfig(ctx, &lambda.CreateFunctionUrlConfigInput{FunctionName: aws.String("echo"), AuthType: types.FunctionUrlAuthTypeNone})
	wantAPIError(t, err, "ResourceConflictException", 409)

	// NONE without the permissions (both lambda:InvokeFunctionUrl and lambda:InvokeFunction, as
	// AWS requires since October 2025): 403.
	if r := urlRequest(t, s, "GET", fnURL, "/a", "", false, false); r.status != 403 || r.body != `{"Message":"Forbidden"}` {
		t.Fatalf("without permission: %+v", r)
	}
	if _, err := c.AddPermission(ctx, &lambda.AddPermissionInput{FunctionName: aws.String("echo"), StatementId: aws.String("url"),
		Action: aws.String("lambda:InvokeFunctionUrl"), Principal: aws.String("*"), FunctionUrlAuthType: types.FunctionUrlAuthTypeNone}); err != nil {
		t.Fatal(err)
	}
	if r := urlRequest(t, s, "GET", fnURL, "/a", "", false, false); r.status != 403 {
		t.Fatalf("with lambda:InvokeFunctionUrl only: %+v", r)
	}
	if _, err := c.AddPermission(ctx, &lambda.AddPermissionInput{FunctionName: aws.String("echo"), StatementId: aws.String("invoke"),
		Action: aws.String("lambda:InvokeFunction"), Principal: aws.String("*"), InvokedViaFunctionUrl: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	for _, byPath := range []bool{false, true} {
		r := urlRequest(t, s, "POST", fnURL, "/items/7?x=1&y=2", "hello", byPath, false)
		var got map[string]any
		json.Unmarshal([]byte(r.body), &got)
		if r.status != 201 || r.header.Get("X-Echo") != "yes" || got["path"] != "/items/7" || got["method"] != "POST" ||
			got["routeKey"] != "$default" || got["stage"] != "$default" || got["account"] != "anonymous" || got["body"] != "hello" ||
			got["query"].(map[string]any)["y"] != "2" || !strings.HasSuffix(got["domain"].(string), ".lambda-url.us-east-1.localhost") {
			t.Fatalf("by path %v: %+v", byPath, r)
		}
	}
	// CORS: a preflight from an allowed origin, and the header on a simple request.
	pre, _ := http.NewRequest("OPTIONS", s.Endpoint()+"/_aws/lambda-url/"+strings.Split(strings.TrimPrefix(fnURL, "http://"), ".")[0]+"/", nil)
	pre.Header.Set("Origin", "https://app.example")
	pre.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(pre)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}

	// AWS_IAM: unsigned requests are refused, signed ones run with the account in the event.
	if _, err := c.UpdateFunctionUrlConfig(ctx, &lambda.UpdateFunctionUrlConfigInput{FunctionName: aws.String("echo"),
		AuthType: types.FunctionUrlAuthTypeAwsIam}); err != nil {
		t.Fatal(err)
	}
	if r := urlRequest(t, s, "GET", fnURL, "/", "", true, false); r.status != 403 {
		t.Fatalf("unsigned to AWS_IAM: %+v", r)
	}
	if r := urlRequest(t, s, "GET", fnURL, "/", "", true, true); r.status != 201 || !strings.Contains(r.body, `"account": "`+s.Identity().Account().ID+`"`) ||
		!strings.Contains(r.body, `"userArn": "arn:aws:iam::`+s.Identity().Account().ID+`:root"`) || !strings.Contains(r.body, `"accessKey": "`+s.Key.ID+`"`) {
		t.Fatalf("signed to AWS_IAM: %+v", r)
	}
	// Signed for another service: refused.
	u, _ := url.Parse(fnURL)
	req, _ := http.NewRequest("GET", s.Endpoint()+"/", nil)
	req.Host = u.Host
	sum := sha256.Sum256(nil)
	v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: s.Key.ID, SecretAccessKey: s.Key.Secret}, req, hex.EncodeToString(sum[:]), "execute-api", "us-east-1", time.Now())
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 403 {
		t.Fatalf("signed for execute-api: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	got, err := c.GetFunctionUrlConfig(ctx, &lambda.GetFunctionUrlConfigInput{FunctionName: aws.String("echo")})
	if err != nil || got.AuthType != types.FunctionUrlAuthTypeAwsIam || aws.ToString(got.FunctionUrl) != fnURL || got.Cors == nil {
		t.Fatalf("get: %+v %v", got, err)
	}

	// An alias's URL; a version number cannot have one; the list has both.
	if _, err := c.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("echo")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String("echo"), Name: aws.String("live"), FunctionVersion: aws.String("1")}); err != nil {
		t.Fatal(err)
	}
	live, err := c.CreateFunctionUrlConfig(ctx, &lambda.CreateFunctionUrlConfigInput{FunctionName: aws.String("echo"), Qualifier: aws.String("live"),
		AuthType: types.FunctionUrlAuthTypeAwsIam})
	if err != nil || !strings.HasSuffix(aws.ToString(live.FunctionArn), ":echo:live") {
		t.Fatalf("alias URL: %+v %v", live, err)
	}
	_, err = c.CreateFunctionUrlConfig(ctx, &lambda.CreateFunctionUrlConfigInput{FunctionName: aws.String("echo"), Qualifier: aws.String("1"),
		AuthType: types.FunctionUrlAuthTypeNone})
	wantAPIError(t, err, "ValidationException", 400)
	_, err = c.CreateFunctionUrlConfig(ctx, &lambda.CreateFunctionUrlConfigInput{FunctionName: aws.String("echo"), Qualifier: aws.String("nope"),
		AuthType: types.FunctionUrlAuthTypeNone})
	wantAPIError(t, err, "ResourceNotFoundException", 404)
	_, err = c.GetFunctionUrlConfig(ctx, &lambda.GetFunctionUrlConfigInput{FunctionName: aws.String("echo:live"), Qualifier: aws.String("other")})
	wantAPIError(t, err, "InvalidParameterValueException", 400)
	list, err := c.ListFunctionUrlConfigs(ctx, &lambda.ListFunctionUrlConfigsInput{FunctionName: aws.String("echo")})
	if err != nil || len(list.FunctionUrlConfigs) != 2 {
		t.Fatalf("list: %+v %v", list, err)
	}
	if r := urlRequest(t, s, "GET", aws.ToString(live.FunctionUrl), "/", "", true, true); r.status != 201 {
		t.Fatalf("the alias's URL: %+v", r)
	}
	// Deleting the alias deletes its URL; deleting the function, the function's.
	if _, err := c.DeleteAlias(ctx, &lambda.DeleteAliasInput{FunctionName: aws.String("echo"), Name: aws.String("live")}); err != nil {
		t.Fatal(err)
	}
	if r := urlRequest(t, s, "GET", aws.ToString(live.FunctionUrl), "/", "", true, true); r.status != 404 {
		t.Fatalf("the deleted alias's URL: %+v", r)
	}
	if _, err := c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("echo")}); err != nil {
		t.Fatal(err)
	}
	if r := urlRequest(t, s, "GET", fnURL, "/", "", true, true); r.status != 404 {
		t.Fatalf("the deleted function's URL: %+v", r)
	}
	_, err = c.GetFunctionUrlConfig(ctx, &lambda.GetFunctionUrlConfigInput{FunctionName: aws.String("echo")})
	wantAPIError(t, err, "ResourceNotFoundException", 404)
}
