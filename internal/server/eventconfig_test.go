package server_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/nubis/nubis/internal/server"
	"github.com/nubis/nubis/internal/server/servertest"
)

// TestEventInvokeConfigAPI: the asynchronous settings' control plane and its errors.
func TestEventInvokeConfigAPI(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, "")
	c := lambda.NewFromConfig(s.Config(t, nil))
	createMean(t, c, "worker")
	_, err := c.GetFunctionEventInvokeConfig(ctx, &lambda.GetFunctionEventInvokeConfigInput{FunctionName: aws.String("worker")})
	wantAPIError(t, err, "ResourceNotFoundException", 404)
	_, err = c.UpdateFunctionEventInvokeConfig(ctx, &lambda.UpdateFunctionEventInvokeConfigInput{FunctionName: aws.String("worker"), MaximumRetryAttempts: aws.Int32(1)})
	wantAPIError(t, err, "ResourceNotFoundException", 404)
	account := s.Identity().Account().ID
	dlq := "arn:aws:lambda:us-east-1:" + account + ":function:dlq"
	put, err := c.PutFunctionEventInvokeConfig(ctx, &lambda.PutFunctionEventInvokeConfigInput{FunctionName: aws.String("worker"),
		MaximumRetryAttempts: aws.Int32(0), DestinationConfig: &types.DestinationConfig{OnFailure: &types.OnFailure{Destination: aws.String(dlq)}}})
	if err != nil || aws.ToInt32(put.MaximumRetryAttempts) != 0 || aws.ToString(put.DestinationConfig.OnFailure.Destination) != dlq {
		t.Fatalf("put: %+v %v", put, err)
	}
	up, err := c.UpdateFunctionEventInvokeConfig(ctx, &lambda.UpdateFunctionEventInvokeConfigInput{FunctionName: aws.String("worker"),
		MaximumEventAgeInSeconds: aws.Int32(120)})
	if err != nil || aws.ToInt32(up.MaximumEventAgeInSeconds) != 120 || aws.ToString(up.DestinationConfig.OnFailure.Destination) != dlq {
		t.Fatalf("update keeps what it does not set: %+v %v", up, err)
	}
	list, err := c.ListFunctionEventInvokeConfigs(ctx, &lambda.ListFunctionEventInvokeConfigsInput{FunctionName: aws.String("worker")})
	if err != nil || len(list.FunctionEventInvokeConfigs) != 1 {
		t.Fatalf("list: %+v %v", list, err)
	}
	for _, tc := range []struct {
		in   lambda.PutFunctionEventInvokeConfigInput
		code string
	}{
		{lambda.PutFunctionEventInvokeConfigInput{MaximumRetryAttempts: aws.Int32(3)}, "ValidationException"},
		{lambda.PutFunctionEventInvokeConfigInput{MaximumEventAgeInSeconds: aws.Int32(30)}, "ValidationException"},
		{lambda.PutFunctionEventInvokeConfigInput{DestinationConfig: &types.DestinationConfig{OnSuccess: &types.OnSuccess{
			Destination: aws.String("arn:aws:sqs:us-east-1:" + account + ":queue")}}}, "InvalidParameterValueException"},
	} {
		tc.in.FunctionName = aws.String("worker")
		_, err := c.PutFunctionEventInvokeConfig(ctx, &tc.in)
		wantAPIError(t, err, tc.code, 400)
	}
	if _, err := c.DeleteFunctionEventInvokeConfig(ctx, &lambda.DeleteFunctionEventInvokeConfigInput{FunctionName: aws.String("worker")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetFunctionEventInvokeConfig(ctx, &lambda.GetFunctionEventInvokeConfigInput{FunctionName: aws.String("worker")})
	wantAPIError(t, err, "ResourceNotFoundException", 404)

	settings, err := c.GetAccountSettings(ctx, &lambda.GetAccountSettingsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if settings.AccountUsage.FunctionCount != 1 || settings.AccountUsage.TotalCodeSize == 0 ||
		settings.AccountLimit.CodeSizeZipped != 50<<20 || settings.AccountLimit.ConcurrentExecutions != 1000 {
		t.Fatalf("account settings: %+v %+v %v", settings.AccountLimit, settings.AccountUsage, err)
	}
}

// TestAsyncDestinations: a failed event is not retried when MaximumRetryAttempts is 0 and its
// record goes to the OnFailure function; a successful one's to OnSuccess; records are Lambda's.
func TestAsyncDestinations(t *testing.T) {
	needSandboxes(t)
	ctx := context.Background()
	s := servertest.StartConfig(t, server.Config{EventRetryDelays: []time.Duration{50 * time.Millisecond, 50 * time.Millisecond}})
	c := lambda.NewFromConfig(s.Config(t, nil))
	createFunction(t, c, "worker", types.RuntimePython312, "app.handler", zipEntry{name: "app.py",
		body: "def handler(e, c):\n    print('attempt', e['n'])\n    if e.get('fail'):\n        raise ValueError('no')\n    return {'done': e['n']}\n"})
	for _, name := range []string{"on-failure", "on-success"} {
		createFunction(t, c, name, types.RuntimePython312, "app.handler", zipEntry{name: "app.py",
			body: "import json\ndef handler(e, c):\n    print('RECORD ' + json.dumps(e))\n"})
	}
	account := s.Identity().Account().ID
	if _, err := c.PutFunctionEventInvokeConfig(ctx, &lambda.PutFunctionEventInvokeConfigInput{FunctionName: aws.String("worker"),
		MaximumRetryAttempts: aws.Int32(0), DestinationConfig: &types.DestinationConfig{
			OnFailure: &types.OnFailure{Destination: aws.String("arn:aws:lambda:us-east-1:" + account + ":function:on-failure")},
			OnSuccess: &types.OnSuccess{Destination: aws.String("arn:aws:lambda:us-east-1:" + account + ":function:on-success")}}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{`{"n": 1, "fail": true}`, `{"n": 2}`} {
		if _, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("worker"), InvocationType: types.InvocationTypeEvent, Payload: []byte(p)}); err != nil {
			t.Fatal(err)
		}
	}
	record := func(fn string) map[string]any {
		t.Helper()
		var logs string
		waitFor(t, 30*time.Second, func() bool { logs = functionLogs(t, s, fn); return strings.Contains(logs, "RECORD ") })
		line := logs[strings.Index(logs, "RECORD ")+len("RECORD "):]
		line = line[:strings.IndexByte(line, '\n')]
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("%s's record: %v %s", fn, err, line)
		}
		return rec
	}
	fail := record("on-failure")
	rc := fail["requestContext"].(map[string]any)
	if rc["condition"] != "RetriesExhausted" || rc["approximateInvokeCount"] != 1.0 || fail["requestPayload"].(map[string]any)["n"] != 1.0 ||
		fail["responseContext"].(map[string]any)["functionError"] != "Unhandled" || !strings.HasSuffix(rc["functionArn"].(string), ":function:worker:$LATEST") {
		t.Fatalf("failure record: %+v", fail)
	}
	ok := record("on-success")
	if ok["requestContext"].(map[string]any)["condition"] != "Success" || ok["responsePayload"].(map[string]any)["done"] != 2.0 {
		t.Fatalf("success record: %+v", ok)
	}
	time.Sleep(500 * time.Millisecond) // no retry of the failed event
	if n := strings.Count(functionLogs(t, s, "worker"), "attempt 1"); n != 1 {
		t.Fatalf("the failed event ran %d times, want 1 (MaximumRetryAttempts 0)", n)
	}

	// A function that is its own destination: the chain stops after 16 records, as Lambda stops
	// recursive loops.
	createFunction(t, c, "loopy", types.RuntimePython312, "app.handler", zipEntry{name: "app.py",
		body: "def handler(e, c):\n    print('HOP')\n    return {}\n"})
	if _, err := c.PutFunctionEventInvokeConfig(ctx, &lambda.PutFunctionEventInvokeConfigInput{FunctionName: aws.String("loopy"),
		DestinationConfig: &types.DestinationConfig{OnSuccess: &types.OnSuccess{Destination: aws.String("arn:aws:lambda:us-east-1:" + account + ":function:loopy")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("loopy"), InvocationType: types.InvocationTypeEvent}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, func() bool { return strings.Count(functionLogs(t, s, "loopy"), "HOP") >= 17 })
	time.Sleep(time.Second)
	if n := strings.Count(functionLogs(t, s, "loopy"), "HOP"); n != 17 {
		t.Fatalf("a loop of destinations ran %d times, want 17 (the event and 16 records)", n)
	}
}
