package apigw

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/errdefs"
	"github.com/nubis/nubis/internal/store/sqlite"
)

func TestParseRouteKey(t *testing.T) {
	for key, want := range map[string][2]string{
		"$default":                {"", ""},
		"GET /":                   {"GET", "/"},
		"ANY /pets/{id}":          {"ANY", "/pets/{id}"},
		"POST /a/{b}/c/{proxy+}":  {"POST", "/a/{b}/c/{proxy+}"},
		"OPTIONS /v1.0/x-y_z~":    {"OPTIONS", "/v1.0/x-y_z~"},
		"HEAD /{proxy+}":          {"HEAD", "/{proxy+}"},
		"DELETE /users/{user_id}": {"DELETE", "/users/{user_id}"},
	} {
		m, p, err := ParseRouteKey(key)
		if err != nil || m != want[0] || p != want[1] {
			t.Errorf("ParseRouteKey(%q) = %q, %q, %v", key, m, p, err)
		}
	}
	for _, key := range []string{"", "$connect", "GET", "GET /a b", "get /", "GET  /", "GET /a/", "GET //", "GET /{a+}/b",
		"GET /{a}/{a}", "GET /a{b}", "GET /{}", "GET /{a b}", "GET /a?b", "GET /a#b", "ANY"} {
		if _, _, err := ParseRouteKey(key); err == nil {
			t.Errorf("ParseRouteKey(%q) accepted", key)
		}
	}
}

func TestFunctionARN(t *testing.T) {
	fn := "arn:aws:lambda:us-east-1:123456789012:function:mean"
	for uri, want := range map[string]string{
		fn:              fn,
		fn + ":live":    fn + ":live",
		fn + ":$LATEST": fn + ":$LATEST",
		fn + ":7":       fn + ":7",
		"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/" + fn + "/invocations":      fn,
		"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/" + fn + ":prod/invocations": fn + ":prod",
		"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/" + fn:                       "",
		"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:sqs:x/invocations":   "",
		"arn:aws:lambda:us-east-1:12345:function:mean":                                              "",
		"arn:aws:lambda:us-east-1:123456789012:function:mean:a:b":                                   "",
		"https://example.com": "",
		"arn:aws:lambda:us-east-1:123456789012:function:" + strings.Repeat("x", 65): "",
	} {
		if got := FunctionARN(uri); got != want {
			t.Errorf("FunctionARN(%q) = %q, want %q", uri, got, want)
		}
	}
}

// call serves one request with the service's API as account 111122223333.
func call(t *testing.T, api awsproto.Service, method, path, body string) map[string]any {
	t.Helper()
	hr := httptest.NewRequest(method, path, strings.NewReader(body))
	w := httptest.NewRecorder()
	api.ServeAWS(w, &awsproto.Request{ID: "test", HTTP: hr, Body: []byte(body), Caller: awsproto.Caller{AccountID: "111122223333"}})
	if w.Code >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, w.Code, w.Body)
	}
	var out map[string]any
	json.Unmarshal(w.Body.Bytes(), &out)
	return out
}

func TestLookup(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "nubis.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := New(Config{Store: st, Region: "us-east-1", Endpoint: func() string { return "http://127.0.0.1:4566" }})
	api := s.API()
	fn := "arn:aws:lambda:us-east-1:111122223333:function:mean"
	a := call(t, api, "POST", "/v2/apis", `{"name":"m","protocolType":"HTTP","target":"`+fn+`:live","routeKey":"GET /mean",
		"corsConfiguration":{"allowOrigins":["https://example.com"]}}`)
	id := a["apiId"].(string)
	if a["apiEndpoint"] != "http://"+id+".execute-api.localhost:4566" {
		t.Fatalf("apiEndpoint %v", a["apiEndpoint"])
	}
	base := "/v2/apis/" + id
	it := call(t, api, "POST", base+"/integrations", `{"integrationType":"AWS_PROXY","payloadFormatVersion":"1.0",
		"integrationUri":"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/`+fn+`/invocations","timeoutInMillis":1000}`)
	call(t, api, "POST", base+"/routes", `{"routeKey":"POST /v1/{proxy+}","authorizationType":"AWS_IAM","target":"integrations/`+it["integrationId"].(string)+`"}`)
	call(t, api, "POST", base+"/stages", `{"stageName":"dev","stageVariables":{"a":"b"},
		"defaultRouteSettings":{"throttlingBurstLimit":5,"throttlingRateLimit":1.5},"routeSettings":{"GET /mean":{"throttlingBurstLimit":1}}}`)
	call(t, api, "POST", base+"/deployments", `{"stageName":"dev"}`)
	call(t, api, "POST", base+"/routes", `{"routeKey":"GET /later"}`)

	snap, err := s.Lookup(ctx, "111122223333", id)
	if err != nil {
		t.Fatal(err)
	}
	if snap.API.ID != id || snap.API.ProtocolType != "HTTP" || snap.API.Cors == nil || snap.API.Cors.AllowOrigins[0] != "https://example.com" ||
		len(snap.Routes) != 3 || len(snap.Integrations) != 2 || len(snap.Stages) != 2 {
		t.Fatalf("snapshot %+v", snap)
	}
	ints := map[string]Integration{}
	for _, i := range snap.Integrations {
		ints[i.ID] = i
	}
	for _, r := range snap.Routes {
		switch r.Key {
		case "GET /mean":
			if i := ints[r.IntegrationID]; i.FunctionARN != fn+":live" || i.PayloadFormatVersion != "2.0" || i.TimeoutInMillis != 30000 || r.AuthorizationType != "NONE" {
				t.Errorf("quick route %+v → %+v", r, i)
			}
		case "POST /v1/{proxy+}":
			if i := ints[r.IntegrationID]; i.FunctionARN != fn || i.PayloadFormatVersion != "1.0" || i.TimeoutInMillis != 1000 || r.AuthorizationType != "AWS_IAM" {
				t.Errorf("route %+v → %+v", r, i)
			}
		case "GET /later":
			if r.IntegrationID != "" {
				t.Errorf("route without target %+v", r)
			}
		default:
			t.Errorf("route %+v", r)
		}
	}
	for _, st := range snap.Stages {
		switch st.Name {
		case "$default": // autoDeploy: deployed after the last change
			if !st.AutoDeploy || st.Deployment == nil || st.Deployment.ID != st.DeploymentID || len(st.Deployment.Routes) != 3 ||
				len(st.Deployment.Integrations) != 2 || st.Deployment.Cors == nil {
				t.Errorf("$default stage %+v", st)
			}
		case "dev": // deployed before GET /later was made
			if st.AutoDeploy || st.Deployment == nil || len(st.Deployment.Routes) != 2 || st.StageVariables["a"] != "b" ||
				*st.DefaultRouteSettings.ThrottlingBurstLimit != 5 || *st.DefaultRouteSettings.ThrottlingRateLimit != 1.5 ||
				*st.RouteSettings["GET /mean"].ThrottlingBurstLimit != 1 {
				t.Errorf("dev stage %+v", st)
			}
		default:
			t.Errorf("stage %+v", st)
		}
	}
	if _, err := s.Lookup(ctx, "999999999999", id); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Lookup of another account's API: %v", err)
	}
	call(t, api, "DELETE", base, "")
	if _, err := s.Lookup(ctx, "111122223333", id); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Lookup of a deleted API: %v", err)
	}
}

// TestLookupCache: Lookup keeps a snapshot while nothing is written, and a write (of any API) is
// seen by the next Lookup.
func TestLookupCache(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "nubis.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := New(Config{Store: st, Region: "us-east-1", Endpoint: func() string { return "http://127.0.0.1:4566" }})
	api := s.API()
	fn := "arn:aws:lambda:us-east-1:111122223333:function:mean"
	id := call(t, api, "POST", "/v2/apis", `{"name":"m","protocolType":"HTTP","target":"`+fn+`","routeKey":"GET /mean"}`)["apiId"].(string)
	first, err := s.Lookup(ctx, "111122223333", id)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := s.Lookup(ctx, "111122223333", id); again != first {
		t.Fatal("a second Lookup with no write in between read the store again")
	}
	call(t, api, "POST", "/v2/apis/"+id+"/routes", `{"routeKey":"GET /other"}`)
	after, err := s.Lookup(ctx, "111122223333", id)
	if err != nil || after == first || len(after.Routes) != len(first.Routes)+1 {
		t.Fatalf("after a new route: %v, %d routes (before %d)", err, len(after.Routes), len(first.Routes))
	}
	call(t, api, "DELETE", "/v2/apis/"+id, ``)
	if _, err := s.Lookup(ctx, "111122223333", id); err == nil {
		t.Fatal("Lookup of a deleted API")
	}
}
