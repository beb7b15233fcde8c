package server_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/nubis/nubis/internal/server/servertest"
)

func TestHealth(t *testing.T) {
	s := servertest.Start(t, "")
	resp, err := http.Get(s.Endpoint() + "/_nubis/health")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(b), `{"status":"ok","version":"`) {
		t.Fatalf("health: %d %s", resp.StatusCode, b)
	}
	resp, _ = http.Post(s.Endpoint()+"/_nubis/health", "text/plain", nil)
	if resp.StatusCode != 405 {
		t.Fatalf("POST health: %d", resp.StatusCode)
	}
}

func TestUnknownActionsAndParameters(t *testing.T) {
	s := servertest.Start(t, "")
	for _, tc := range []struct {
		raw  servertest.Raw
		code string
	}{
		{servertest.Raw{Body: "Action=Frobnicate&Version=2016-11-15"}, "<Code>InvalidAction</Code>"},
		{servertest.Raw{Body: "Version=2016-11-15"}, "<Code>MissingAction</Code>"},
		{servertest.Raw{Body: "Action=DescribeKeyPairs&Version=2016-11-15&Colour=red"}, "<Code>UnknownParameter</Code>"},
		{servertest.Raw{Body: "Action=DescribeKeyPairs&Version=2016-11-15&IncludePublicKey=maybe"}, "<Code>InvalidParameterValue</Code>"},
		{servertest.Raw{Service: "sts", Body: "Action=AssumeRoleWithMagic&Version=2011-06-15"}, "<Code>InvalidAction</Code>"},
		{servertest.Raw{Service: "sts", Body: "Action=GetCallerIdentity&Version=2011-06-15&Extra=1"}, "<Code>ValidationError</Code>"},
	} {
		r := s.Do(t, tc.raw)
		if r.Status != 400 || !strings.Contains(r.Body, tc.code) {
			t.Errorf("%s: %d %s, want 400 %s", tc.raw.Body, r.Status, r.Body, tc.code)
		}
	}
}

func TestUnknownService(t *testing.T) {
	s := servertest.Start(t, "")
	r := s.Do(t, servertest.Raw{Service: "s3", Method: "GET", Path: "/"})
	if r.Status != 400 || r.Header.Get("X-Amzn-Errortype") != "UnknownService" ||
		!strings.Contains(r.Body, `does not serve the service &#34;s3&#34;`) || !strings.Contains(r.Body, "ec2, ec2-instance-connect, lambda, logs, sts") {
		t.Fatalf("unknown service: %d %v %s", r.Status, r.Header, r.Body)
	}
}

// The services whose operations come with later issues already speak their protocols: the SDKs
// get each protocol's own unknown-operation error.
func TestProtocolsOfLaterServices(t *testing.T) {
	s := servertest.Start(t, "")
	cfg := s.Config(t, nil)
	ctx := context.Background()
	_, err := lambda.NewFromConfig(cfg).ListCodeSigningConfigs(ctx, &lambda.ListCodeSigningConfigsInput{})
	wantAPIError(t, err, "UnknownOperationException", 404)
	_, err = cloudwatchlogs.NewFromConfig(cfg).DescribeQueries(ctx, &cloudwatchlogs.DescribeQueriesInput{})
	wantAPIError(t, err, "UnknownOperationException", 400)
	_, err = apigatewayv2.NewFromConfig(cfg).GetDomainNames(ctx, &apigatewayv2.GetDomainNamesInput{})
	wantAPIError(t, err, "UnknownOperationException", 404)
}
