package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/nubis/nubis/internal/server/servertest"
)

// authCall is one request of each service, in the shape its protocol uses.
type authCall struct {
	service string
	raw     servertest.Raw
}

var authCalls = []authCall{
	{"ec2", servertest.Raw{Body: "Action=CreateKeyPair&Version=2016-11-15&KeyName=sneaky"}},
	{"sts", servertest.Raw{Service: "sts", Body: "Action=GetCallerIdentity&Version=2011-06-15"}},
	{"lambda", servertest.Raw{Service: "lambda", Method: "GET", Path: "/2015-03-31/functions/"}},
	{"apigateway", servertest.Raw{Service: "apigateway", Method: "GET", Path: "/v2/apis"}},
	{"logs", servertest.Raw{Service: "logs", Body: "{}", ContentType: "application/x-amz-json-1.1",
		Header: http.Header{"X-Amz-Target": {"Logs_20140328.DescribeLogGroups"}}}},
}

type want struct {
	code   string
	status int
}

// errorCode reads the AWS error code from a response of any protocol.
func errorCode(r servertest.Response) string {
	if c := r.Header.Get("X-Amzn-Errortype"); c != "" {
		return c
	}
	if m := regexp.MustCompile(`<Code>([^<]*)</Code>`).FindStringSubmatch(r.Body); m != nil {
		return m[1]
	}
	return ""
}

func TestAuthenticationRefusals(t *testing.T) {
	s := servertest.Start(t, "")
	c := ec2Client(t, s)
	tamper := func(r servertest.Raw) servertest.Raw { return r }
	tests := []struct {
		name   string
		modify func(servertest.Raw) servertest.Raw
		want   map[string]want
	}{
		{"missing signature", func(r servertest.Raw) servertest.Raw { r.Unsigned = true; return r }, map[string]want{
			"ec2": {"AuthFailure", 401}, "sts": {"MissingAuthenticationToken", 403},
			"lambda": {"MissingAuthenticationTokenException", 403}, "apigateway": {"MissingAuthenticationTokenException", 403},
			"logs": {"MissingAuthenticationTokenException", 400}}},
		{"malformed authorization", func(r servertest.Raw) servertest.Raw {
			r.Unsigned = true
			r.Header = cloneHeader(r.Header)
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=, Signature=zz")
			r.Header.Set("X-Amz-Date", time.Now().UTC().Format("20060102T150405Z"))
			return r
		}, map[string]want{
			"ec2": {"IncompleteSignature", 400}, "sts": {"IncompleteSignature", 400},
			"lambda": {"IncompleteSignatureException", 403}, "apigateway": {"IncompleteSignatureException", 403},
			"logs": {"IncompleteSignatureException", 400}}},
		{"wrong secret", func(r servertest.Raw) servertest.Raw {
			r.KeyID, r.Secret = s.Key.ID, strings.Repeat("x", 40)
			return r
		}, map[string]want{
			"ec2": {"AuthFailure", 401}, "sts": {"SignatureDoesNotMatch", 403},
			"lambda": {"InvalidSignatureException", 403}, "apigateway": {"InvalidSignatureException", 403},
			"logs": {"InvalidSignatureException", 400}}},
		{"unknown access key", func(r servertest.Raw) servertest.Raw {
			r.KeyID, r.Secret = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
			return r
		}, map[string]want{
			"ec2": {"AuthFailure", 401}, "sts": {"InvalidClientTokenId", 403},
			"lambda": {"UnrecognizedClientException", 403}, "apigateway": {"UnrecognizedClientException", 403},
			"logs": {"UnrecognizedClientException", 400}}},
		{"other region", func(r servertest.Raw) servertest.Raw { r.Region = "eu-west-1"; return r }, map[string]want{
			"ec2": {"AuthFailure", 401}, "sts": {"SignatureDoesNotMatch", 403},
			"lambda": {"InvalidSignatureException", 403}, "apigateway": {"InvalidSignatureException", 403},
			"logs": {"InvalidSignatureException", 400}}},
		{"signed 20 minutes ago", func(r servertest.Raw) servertest.Raw { r.SignedAt = time.Now().Add(-20 * time.Minute); return r }, map[string]want{
			"ec2": {"RequestExpired", 400}, "sts": {"SignatureDoesNotMatch", 403},
			"lambda": {"InvalidSignatureException", 403}, "apigateway": {"InvalidSignatureException", 403},
			"logs": {"InvalidSignatureException", 400}}},
		{"signed 20 minutes ahead", func(r servertest.Raw) servertest.Raw { r.SignedAt = time.Now().Add(20 * time.Minute); return r }, map[string]want{
			"ec2": {"RequestExpired", 400}, "sts": {"SignatureDoesNotMatch", 403},
			"lambda": {"InvalidSignatureException", 403}, "apigateway": {"InvalidSignatureException", 403},
			"logs": {"InvalidSignatureException", 400}}},
		{"body changed after signing", func(r servertest.Raw) servertest.Raw {
			sum := sha256.Sum256([]byte("something else"))
			r.PayloadHash = hex.EncodeToString(sum[:])
			return r
		}, map[string]want{
			"ec2": {"AuthFailure", 401}, "sts": {"SignatureDoesNotMatch", 403},
			"lambda": {"InvalidSignatureException", 403}, "apigateway": {"InvalidSignatureException", 403},
			"logs": {"InvalidSignatureException", 400}}},
		{"content hash header does not match", func(r servertest.Raw) servertest.Raw {
			sum := sha256.Sum256([]byte("something else"))
			r.PayloadHash = hex.EncodeToString(sum[:])
			r.Header = cloneHeader(r.Header)
			r.Header.Set("X-Amz-Content-Sha256", r.PayloadHash)
			return r
		}, map[string]want{
			"ec2": {"AuthFailure", 401}, "sts": {"SignatureDoesNotMatch", 403},
			"lambda": {"InvalidSignatureException", 403}, "apigateway": {"InvalidSignatureException", 403},
			"logs": {"InvalidSignatureException", 400}}},
		{"presigned and expired", func(r servertest.Raw) servertest.Raw {
			r.Presign, r.Expires, r.SignedAt = true, 5*time.Minute, time.Now().Add(-6*time.Minute)
			return r
		}, map[string]want{
			"ec2": {"RequestExpired", 400}, "sts": {"SignatureDoesNotMatch", 403},
			"lambda": {"InvalidSignatureException", 403}, "apigateway": {"InvalidSignatureException", 403},
			"logs": {"InvalidSignatureException", 400}}},
	}
	_ = tamper
	for _, tc := range tests {
		for _, call := range authCalls {
			t.Run(tc.name+"/"+call.service, func(t *testing.T) {
				r := s.Do(t, tc.modify(call.raw))
				w := tc.want[call.service]
				if got := errorCode(r); got != w.code || r.Status != w.status {
					t.Fatalf("got %d %s, want %d %s; body: %s", r.Status, got, w.status, w.code, r.Body)
				}
				if r.Header.Get("X-Amzn-Requestid") == "" {
					t.Fatal("no request id header")
				}
			})
		}
	}
	// None of the refused CreateKeyPair calls created anything.
	if names := keyNames(t, c); len(names) != 0 {
		t.Fatalf("refused requests created key pairs %v", names)
	}
}

func cloneHeader(h http.Header) http.Header {
	if h == nil {
		return http.Header{}
	}
	return h.Clone()
}

func TestAuthenticationAccepts(t *testing.T) {
	s := servertest.Start(t, "")
	for name, raw := range map[string]servertest.Raw{
		"unsigned payload": {Body: "Action=DescribeKeyPairs&Version=2016-11-15", PayloadHash: "UNSIGNED-PAYLOAD",
			Header: http.Header{"X-Amz-Content-Sha256": {"UNSIGNED-PAYLOAD"}}},
		"content hash header": {Body: "Action=DescribeKeyPairs&Version=2016-11-15",
			Header:      http.Header{"X-Amz-Content-Sha256": {"b8eac6d6e1f1fbb7ac4a78f6ef1fcf2cb46c35ac36ccd6b6cd0d7e1b6a35c0b7"}},
			PayloadHash: "b8eac6d6e1f1fbb7ac4a78f6ef1fcf2cb46c35ac36ccd6b6cd0d7e1b6a35c0b7"},
		"presigned GET":         {Method: "GET", Query: "Action=DescribeKeyPairs&Version=2016-11-15", Presign: true},
		"GET query":             {Method: "GET", Query: "Action=DescribeKeyPairs&Version=2016-11-15"},
		"signed 10 minutes ago": {Body: "Action=DescribeKeyPairs&Version=2016-11-15", SignedAt: time.Now().Add(-10 * time.Minute)},
	} {
		t.Run(name, func(t *testing.T) {
			if name == "content hash header" {
				sum := sha256.Sum256([]byte(raw.Body))
				raw.PayloadHash = hex.EncodeToString(sum[:])
				raw.Header.Set("X-Amz-Content-Sha256", raw.PayloadHash)
			}
			r := s.Do(t, raw)
			if r.Status != 200 || !strings.Contains(r.Body, "<DescribeKeyPairsResponse") {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
		})
	}
}

func TestSTSGetCallerIdentity(t *testing.T) {
	s := servertest.Start(t, "")
	out, err := sts.NewFromConfig(s.Config(t, nil)).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	acct := s.Identity().Account().ID
	if !regexp.MustCompile(`^[0-9]{12}$`).MatchString(acct) {
		t.Fatalf("account id %q", acct)
	}
	if *out.Account != acct || *out.Arn != fmt.Sprintf("arn:aws:iam::%s:root", acct) || *out.UserId != acct {
		t.Fatalf("GetCallerIdentity = %s %s %s", *out.Account, *out.Arn, *out.UserId)
	}
	if !regexp.MustCompile(`^AKIA[A-Z2-7]{16}$`).MatchString(s.Key.ID) || len(s.Key.Secret) != 40 {
		t.Fatalf("admin key %q / secret of %d chars", s.Key.ID, len(s.Key.Secret))
	}
	// An SDK client with a key nubis does not know gets the STS error for it.
	bad := sts.NewFromConfig(s.Config(t, credentials.NewStaticCredentialsProvider("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "")))
	_, err = bad.GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	wantAPIError(t, err, "InvalidClientTokenId", 403)
	badEC2 := ec2.NewFromConfig(s.Config(t, credentials.NewStaticCredentialsProvider(s.Key.ID, strings.Repeat("y", 40), "")))
	_, err = badEC2.CreateKeyPair(context.Background(), &ec2.CreateKeyPairInput{KeyName: aws.String("nope")})
	wantAPIError(t, err, "AuthFailure", 401)
}
