package awsproto

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/nubis/nubis/internal/sigv4"
)

var update = flag.Bool("update", false, "rewrite the golden files")

type item struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

type ec2Result struct {
	Name  string     `xml:"keyName"`
	Empty List[item] `xml:"emptySet"`
	Tags  List[item] `xml:"tagSet"`
}

func testRequest(method, target, body string, h http.Header) *Request {
	hr := httptest.NewRequest(method, target, strings.NewReader(body))
	for k, v := range h {
		hr.Header[k] = v
	}
	if body != "" && h.Get("Content-Type") == "" {
		hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return &Request{ID: "11111111-2222-3333-4444-555555555555", HTTP: hr, Body: []byte(body)}
}

// render returns a response as the client sees it: status, the headers that matter, body.
func render(rec *httptest.ResponseRecorder) string {
	var hs []string
	for k, v := range rec.Header() {
		if k != "Content-Length" {
			hs = append(hs, k+": "+strings.Join(v, ","))
		}
	}
	sort.Strings(hs)
	return fmt.Sprintf("%d\n%s\n\n%s\n", rec.Code, strings.Join(hs, "\n"), rec.Body.String())
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file:\n got:\n%s\nwant:\n%s", name, got, want)
	}
}

func TestWireFormats(t *testing.T) {
	ec2 := &QueryService{Name: "ec2", Version: "2016-11-15", Namespace: "http://ec2.amazonaws.com/doc/2016-11-15/",
		Flavor: FlavorEC2, Actions: map[string]QueryHandler{
			"Describe": func(context.Context, *Request, Params) (any, error) {
				return ec2Result{Name: "k<&>", Tags: List[item]{{"a", "1"}, {"b", ""}}}, nil
			},
			"Fail": func(context.Context, *Request, Params) (any, error) {
				return nil, Errorf(400, "InvalidKeyPair.NotFound", "The key pair '%s' does not exist", "x")
			},
			"Crash": func(context.Context, *Request, Params) (any, error) { return nil, errors.New("disk on fire") },
		}}
	sts := &QueryService{Name: "sts", Version: "2011-06-15", Namespace: "https://sts.amazonaws.com/doc/2011-06-15/",
		Flavor: FlavorQuery, Actions: map[string]QueryHandler{
			"GetCallerIdentity": func(context.Context, *Request, Params) (any, error) {
				return struct {
					Account string `xml:"Account"`
				}{"123456789012"}, nil
			},
		}}
	lambda := NewRESTJSONService("lambda", true, nil, "/2015-03-31/")
	lambda.Handle("GET /2015-03-31/functions/{name}", "GetFunction", func(_ context.Context, r *Request) (int, any, error) {
		if r.HTTP.PathValue("name") == "missing" {
			return 0, nil, Errorf(404, "ResourceNotFoundException", "Function not found: %s", r.HTTP.PathValue("name"))
		}
		return 200, map[string]string{"FunctionName": r.HTTP.PathValue("name")}, nil
	})
	logs := &JSONService{Name: "logs", TargetPrefix: "Logs_20140328", Actions: map[string]JSONHandler{
		"DescribeLogGroups": func(context.Context, *Request) (any, error) {
			return map[string][]string{"logGroups": {}}, nil
		},
	}}
	target := func(op string) http.Header {
		return http.Header{"X-Amz-Target": {"Logs_20140328." + op}, "Content-Type": {"application/x-amz-json-1.1"}}
	}
	tests := []struct {
		name string
		svc  Service
		req  *Request
		err  error // if set, WriteError(err) instead of ServeAWS
	}{
		{"ec2_success", ec2, testRequest("POST", "/", "Action=Describe&Version=2016-11-15", nil), nil},
		{"ec2_error", ec2, testRequest("POST", "/", "Action=Fail&Version=2016-11-15", nil), nil},
		{"ec2_internal_error", ec2, testRequest("POST", "/", "Action=Crash&Version=2016-11-15", nil), nil},
		{"ec2_invalid_action", ec2, testRequest("POST", "/", "Action=Frobnicate&Version=2016-11-15", nil), nil},
		{"ec2_auth_failure", ec2, testRequest("POST", "/", "", nil), &sigv4.Error{Kind: sigv4.UnknownKey, Message: "The security token included in the request is invalid."}},
		{"sts_success", sts, testRequest("POST", "/", "Action=GetCallerIdentity&Version=2011-06-15", nil), nil},
		{"sts_invalid_action", sts, testRequest("POST", "/", "Action=Frobnicate&Version=2011-06-15", nil), nil},
		{"sts_signature_mismatch", sts, testRequest("POST", "/", "", nil), &sigv4.Error{Kind: sigv4.Mismatch, Message: "The request signature we calculated does not match the signature you provided."}},
		{"lambda_success", lambda, testRequest("GET", "/2015-03-31/functions/f1", "", nil), nil},
		{"lambda_not_found", lambda, testRequest("GET", "/2015-03-31/functions/missing", "", nil), nil},
		{"lambda_unknown_operation", lambda, testRequest("DELETE", "/2015-03-31/nothing", "", nil), nil},
		{"lambda_unrecognized_client", lambda, testRequest("GET", "/2015-03-31/functions/f1", "", nil), &sigv4.Error{Kind: sigv4.UnknownKey, Message: "The security token included in the request is invalid."}},
		{"logs_success", logs, testRequest("POST", "/", "{}", target("DescribeLogGroups")), nil},
		{"logs_unknown_operation", logs, testRequest("POST", "/", "{}", target("Nope")), nil},
		{"logs_invalid_signature", logs, testRequest("POST", "/", "{}", target("DescribeLogGroups")), &sigv4.Error{Kind: sigv4.Expired, Message: "Signature expired."}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			if tc.err != nil {
				tc.svc.WriteError(rec, tc.req, tc.err)
			} else {
				tc.svc.ServeAWS(rec, tc.req)
			}
			golden(t, tc.name, render(rec))
		})
	}
}
