package httpapi

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// eventCase is a request as a client sends it to an API, and what the data plane knows of it.
type eventCase struct {
	name    string
	method  string
	url     string // path and query as sent, stage included
	headers [][2]string
	body    []byte
	stage   string
	routes  []string
	vars    map[string]string
}

var eventCases = []eventCase{
	{
		// The request behind AWS's documented examples: duplicate query parameters and headers,
		// cookies, a text body, path parameters and stage variables.
		name:   "documented",
		method: "POST",
		url:    "/my/path/value1?parameter1=value1&parameter1=value2&parameter2=value",
		headers: [][2]string{
			{"Header1", "value1"}, {"Header2", "value1"}, {"Header2", "value2"},
			{"Cookie", "cookie1=one; cookie2=two"}, {"User-Agent", "agent"}, {"Content-Type", "text/plain"},
		},
		body:   []byte("Hello from Lambda"),
		stage:  "$default",
		routes: []string{"POST /my/path/{parameter1}", "$default"},
		vars:   map[string]string{"stageVariable1": "value1", "stageVariable2": "value2"},
	},
	{
		// A GET with repeated query parameters and headers, two Cookie headers, and an
		// X-Forwarded-For of the client's own; no body, no path variables, no stage variables.
		name:   "get-multi",
		method: "GET",
		url:    "/items?tag=a&tag=b&q=hello%20world&empty=&plus=a+b",
		headers: [][2]string{
			{"Accept", "application/json"}, {"Accept", "text/plain"}, {"User-Agent", "curl/8.5.0"},
			{"Cookie", "session=abc; theme=dark"}, {"Cookie", "lang=en"},
			{"X-Forwarded-For", "198.51.100.7"}, {"Connection", "keep-alive"},
		},
		stage:  "$default",
		routes: []string{"GET /items", "$default"},
	},
	{
		// A JSON body to a named stage: the paths keep the stage, the route has a variable.
		name:    "post-json",
		method:  "POST",
		url:     "/prod/pets/7",
		headers: [][2]string{{"Content-Type", "application/json; charset=utf-8"}, {"User-Agent", "test-agent/1.0"}},
		body:    []byte(`{"name":"Rex","tags":["<good>","dog & cat"]}`),
		stage:   "prod",
		routes:  []string{"POST /pets/{id}", "GET /pets/{id}"},
		vars:    map[string]string{"table": "pets-prod"},
	},
	{
		// A binary body is base64-encoded.
		name:    "post-binary",
		method:  "POST",
		url:     "/upload",
		headers: [][2]string{{"Content-Type", "image/png"}},
		body:    []byte{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 0x0d, 0xff},
		stage:   "$default",
		routes:  []string{"ANY /{proxy+}"},
	},
	{
		// So is a form, though it is text.
		name:    "post-form",
		method:  "POST",
		url:     "/login",
		headers: [][2]string{{"Content-Type", "application/x-www-form-urlencoded"}},
		body:    []byte("user=alice&password=s3cr%21t"),
		stage:   "$default",
		routes:  []string{"POST /login"},
	},
	{
		// A greedy variable and a percent-encoded path: decoded except %25.
		name:   "greedy-encoded",
		method: "GET",
		url:    "/v1/files/my%20docs/report%2525.pdf",
		stage:  "v1",
		routes: []string{"GET /files/{proxy+}"},
		vars:   map[string]string{"bucket": "docs"},
	},
}

var eventTime = time.Date(2020, time.March, 12, 19, 3, 58, 390_000_000, time.UTC)

// request builds the http.Request and RequestInfo of a case as the data plane would: the route
// chosen by a Router from the path without the stage prefix.
func (c eventCase) request(t testing.TB) (*http.Request, RequestInfo) {
	req := httptest.NewRequest(c.method, "https://abc123.execute-api.us-east-1.amazonaws.com"+c.url, bytes.NewReader(c.body))
	req.RemoteAddr = "203.0.113.10:54321"
	for _, h := range c.headers {
		req.Header.Add(h[0], h[1])
	}
	r, err := NewRouter(c.routes)
	if err != nil {
		t.Fatal(err)
	}
	path := req.URL.EscapedPath()
	if c.stage != "$default" {
		path = strings.TrimPrefix(path, "/"+c.stage)
	}
	key, params, ok := r.Match(req.Method, path)
	if !ok {
		t.Fatalf("%s: no route for %s %s", c.name, req.Method, path)
	}
	return req, RequestInfo{
		AccountID:      "123456789012",
		APIID:          "abc123",
		DomainName:     "abc123.execute-api.us-east-1.amazonaws.com",
		Stage:          c.stage,
		RouteKey:       key,
		RequestID:      "JKJaXmPLvHcESHA=",
		SourceIP:       "203.0.113.10",
		Time:           eventTime,
		PathParameters: params,
		StageVariables: c.vars,
	}
}

// TestEventGolden compares the events of representative requests with the golden files in
// testdata/ (rewrite them with -update, then read the diff).
func TestEventGolden(t *testing.T) {
	for _, c := range eventCases {
		for _, version := range []string{Version1, Version2} {
			t.Run(c.name+"/"+version, func(t *testing.T) {
				req, info := c.request(t)
				got, err := Event(version, req, c.body, info)
				if err != nil {
					t.Fatal(err)
				}
				if !json.Valid(got) {
					t.Fatalf("invalid JSON: %s", got)
				}
				var indented bytes.Buffer
				if err := json.Indent(&indented, got, "", "  "); err != nil {
					t.Fatal(err)
				}
				indented.WriteByte('\n')
				golden := filepath.Join("testdata", fmt.Sprintf("event-%s-%s.json", c.name, version))
				if *update {
					if err := os.WriteFile(golden, indented.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(indented.Bytes(), want) {
					t.Errorf("event differs from %s:\ngot:\n%s", golden, indented.Bytes())
				}
			})
		}
	}
}

// TestEventShape checks the event of the documented request field by field against the
// structure of AWS's documented example of each payload format (testdata/aws-shape-*.json):
// the same fields at every level, each with the same JSON type. The example's mTLS
// (authentication, clientCert) and authorizer blocks belong to features a plain route does not
// have, so the shapes leave them out; cognitoAmr, which real 1.0 events carry, is added.
func TestEventShape(t *testing.T) {
	c := eventCases[0]
	for _, version := range []string{Version1, Version2} {
		req, info := c.request(t)
		got, err := Event(version, req, c.body, info)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join("testdata", "aws-shape-"+version+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var g, w any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(want, &w); err != nil {
			t.Fatal(err)
		}
		for _, d := range shapeDiff("", w, g) {
			t.Errorf("%s: %s", version, d)
		}
	}
}

// shapeDiff lists where got's structure differs from want's. Objects compare key by key;
// arrays by their first element; the free-form maps (headers, parameters, variables) only by
// their type, an object or null.
func shapeDiff(path string, want, got any) []string {
	if freeForm(path) {
		_, wm := want.(map[string]any)
		_, gm := got.(map[string]any)
		if (want != nil && !wm) || (got != nil && !gm) {
			return []string{fmt.Sprintf("%s: got %T, want %T", path, got, want)}
		}
		return nil
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: got %T, want an object", path, got)}
		}
		var diffs []string
		keys := map[string]bool{}
		for k := range w {
			keys[k] = true
		}
		for k := range g {
			keys[k] = true
		}
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			wv, inW := w[k]
			gv, inG := g[k]
			switch {
			case !inG:
				diffs = append(diffs, fmt.Sprintf("%s.%s: missing", path, k))
			case !inW:
				diffs = append(diffs, fmt.Sprintf("%s.%s: not in AWS's example", path, k))
			default:
				diffs = append(diffs, shapeDiff(path+"."+k, wv, gv)...)
			}
		}
		return diffs
	case []any:
		g, ok := got.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s: got %T, want an array", path, got)}
		}
		if len(w) > 0 && len(g) > 0 {
			return shapeDiff(path+"[0]", w[0], g[0])
		}
		return nil
	default:
		if fmt.Sprintf("%T", want) != fmt.Sprintf("%T", got) {
			return []string{fmt.Sprintf("%s: got %T (%v), want %T", path, got, got, want)}
		}
		return nil
	}
}

func freeForm(path string) bool {
	switch path {
	case ".headers", ".multiValueHeaders", ".queryStringParameters", ".multiValueQueryStringParameters",
		".pathParameters", ".stageVariables":
		return true
	}
	return false
}

func TestEventDetails(t *testing.T) {
	req := httptest.NewRequest("GET", "http://abc123.execute-api.localhost:4566/x", nil)
	info := RequestInfo{DomainName: "abc123.execute-api.localhost", RouteKey: "$default", Stage: "$default", Time: eventTime}
	if _, err := Event("3.0", req, nil, info); err == nil {
		t.Error("Event accepted version 3.0")
	}
	b, err := Event(Version2, req, nil, info)
	if err != nil {
		t.Fatal(err)
	}
	var ev struct {
		Headers        map[string]string
		RequestContext struct{ DomainPrefix string }
	}
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.RequestContext.DomainPrefix != "abc123" {
		t.Errorf("domainPrefix = %q, want abc123", ev.RequestContext.DomainPrefix)
	}
	if ev.Headers["x-forwarded-proto"] != "http" || ev.Headers["x-forwarded-port"] != "4566" {
		t.Errorf("x-forwarded-proto/port = %q/%q, want http/4566", ev.Headers["x-forwarded-proto"], ev.Headers["x-forwarded-port"])
	}
	if _, ok := ev.Headers["x-forwarded-for"]; ok {
		t.Error("x-forwarded-for set without a source address")
	}
	// RawPath, when given, is the path of the event.
	info.RawPath = "/dev/a%20b"
	b, _ = Event(Version1, req, nil, info)
	if !bytes.Contains(b, []byte(`"path":"/dev/a b"`)) {
		t.Errorf("RawPath not used: %s", b)
	}
}

func TestIsTextContentType(t *testing.T) {
	text := []string{
		"text/plain", "text/html; charset=utf-8", "TEXT/CSV", "application/json",
		"Application/JSON; charset=UTF-8", "application/xml", "application/javascript", "text/",
	}
	binary := []string{
		"", "application/octet-stream", "image/png", "application/x-www-form-urlencoded",
		"multipart/form-data; boundary=x", "application/vnd.api+json", "application/pdf", "json",
		";;", "text",
	}
	for _, ct := range text {
		if !IsTextContentType(ct) {
			t.Errorf("IsTextContentType(%q) = false, want true", ct)
		}
	}
	for _, ct := range binary {
		if IsTextContentType(ct) {
			t.Errorf("IsTextContentType(%q) = true, want false", ct)
		}
	}
}
