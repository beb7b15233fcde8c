package httpapi

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
)

func corsRequest(method string, headers ...string) *http.Request {
	req := httptest.NewRequest(method, "https://abc123.execute-api.us-east-1.amazonaws.com/pets", nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return req
}

func TestCORSPreflight(t *testing.T) {
	maxAge := 300
	example := &CORSConfig{
		AllowOrigins:  []string{"https://www.example.com"},
		AllowMethods:  []string{"GET", "POST", "DELETE"},
		AllowHeaders:  []string{"authorization", "content-type"},
		ExposeHeaders: []string{"date", "x-api-id"},
		MaxAge:        &maxAge,
	}
	allowed := http.Header{
		"Access-Control-Allow-Origin":  {"https://www.example.com"},
		"Access-Control-Allow-Methods": {"GET,POST,DELETE"},
		"Access-Control-Allow-Headers": {"authorization,content-type"},
		"Access-Control-Max-Age":       {"300"},
	}
	preflight := func(origin string) *http.Request {
		return corsRequest("OPTIONS", "Origin", origin, "Access-Control-Request-Method", "POST",
			"Access-Control-Request-Headers", "content-type")
	}
	noCache := -1
	cases := []struct {
		name    string
		cfg     *CORSConfig
		req     *http.Request
		handled bool
		header  http.Header
	}{
		{"no configuration", nil, preflight("https://www.example.com"), false, nil},
		{"not OPTIONS", example, corsRequest("POST", "Origin", "https://www.example.com", "Access-Control-Request-Method", "POST"), false, nil},
		{"no Origin", example, corsRequest("OPTIONS", "Access-Control-Request-Method", "POST"), false, nil},
		{"no request method", example, corsRequest("OPTIONS", "Origin", "https://www.example.com"), false, nil},
		{"allowed origin", example, preflight("https://www.example.com"), true, allowed},
		{"origin case", example, preflight("HTTPS://WWW.EXAMPLE.COM"), true, func() http.Header {
			h := allowed.Clone()
			h.Set("Access-Control-Allow-Origin", "HTTPS://WWW.EXAMPLE.COM")
			return h
		}()},
		{"other origin", example, preflight("https://evil.example.net"), true, http.Header{}},
		{"any origin", &CORSConfig{AllowOrigins: []string{"*"}, AllowMethods: []string{"*"}}, preflight("http://localhost:3000"), true,
			http.Header{"Access-Control-Allow-Origin": {"*"}, "Access-Control-Allow-Methods": {"*"}}},
		{"any origin with credentials", &CORSConfig{AllowOrigins: []string{"*"}, AllowCredentials: true}, preflight("http://localhost:3000"), true,
			http.Header{"Access-Control-Allow-Origin": {"http://localhost:3000"}, "Access-Control-Allow-Credentials": {"true"}}},
		{"scheme wildcard", &CORSConfig{AllowOrigins: []string{"https://*"}}, preflight("https://app.example.org"), true,
			http.Header{"Access-Control-Allow-Origin": {"https://app.example.org"}}},
		{"scheme wildcard other scheme", &CORSConfig{AllowOrigins: []string{"https://*"}}, preflight("http://app.example.org"), true, http.Header{}},
		{"no caching", &CORSConfig{AllowOrigins: []string{"https://a.example"}, MaxAge: &noCache}, preflight("https://a.example"), true,
			http.Header{"Access-Control-Allow-Origin": {"https://a.example"}, "Access-Control-Max-Age": {"-1"}}},
		{"empty configuration", &CORSConfig{}, preflight("https://a.example"), true, http.Header{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, handled := CORSPreflight(c.cfg, c.req)
			if handled != c.handled {
				t.Fatalf("handled = %v, want %v", handled, c.handled)
			}
			if !handled {
				return
			}
			if resp.Status != http.StatusNoContent || len(resp.Body) != 0 {
				t.Errorf("response %d %q, want 204 without a body", resp.Status, resp.Body)
			}
			if !reflect.DeepEqual(resp.Header, c.header) {
				t.Errorf("headers %v, want %v", resp.Header, c.header)
			}
		})
	}
}

func TestCORSHeaders(t *testing.T) {
	cfg := &CORSConfig{
		AllowOrigins:     []string{"https://www.example.com", "http://*"},
		AllowMethods:     []string{"GET"},
		AllowHeaders:     []string{"authorization"},
		ExposeHeaders:    []string{"date", "x-api-id"},
		AllowCredentials: true,
	}
	want := http.Header{
		"Access-Control-Allow-Origin":      {"https://www.example.com"},
		"Access-Control-Allow-Credentials": {"true"},
		"Access-Control-Expose-Headers":    {"date,x-api-id"},
	}
	if got := CORSHeaders(cfg, corsRequest("GET", "Origin", "https://www.example.com")); !reflect.DeepEqual(got, want) {
		t.Errorf("CORSHeaders = %v, want %v", got, want)
	}
	if got := CORSHeaders(cfg, corsRequest("GET", "Origin", "http://localhost:8080")); got.Get("Access-Control-Allow-Origin") != "http://localhost:8080" {
		t.Errorf("http://* origin: %v", got)
	}
	for _, req := range []*http.Request{
		corsRequest("GET"), // no Origin
		corsRequest("GET", "Origin", "https://other.example"),
		corsRequest("GET", "Origin", "http://"), // nothing after the wildcard's prefix
	} {
		if got := CORSHeaders(cfg, req); len(got) != 0 {
			t.Errorf("CORSHeaders(Origin %q) = %v, want none", req.Header.Get("Origin"), got)
		}
	}
	if got := CORSHeaders(nil, corsRequest("GET", "Origin", "https://www.example.com")); len(got) != 0 {
		t.Errorf("CORSHeaders(nil) = %v", got)
	}

	// ApplyCORS replaces the integration's CORS headers and keeps the others.
	h := http.Header{
		"Access-Control-Allow-Origin":  {"*"},
		"Access-Control-Allow-Methods": {"PUT"},
		"Content-Type":                 {"application/json"},
	}
	ApplyCORS(cfg, corsRequest("GET", "Origin", "https://www.example.com"), h)
	want.Set("Content-Type", "application/json")
	if !reflect.DeepEqual(h, want) {
		t.Errorf("ApplyCORS: %v, want %v", h, want)
	}
	h = http.Header{"Access-Control-Allow-Origin": {"*"}}
	ApplyCORS(cfg, corsRequest("GET", "Origin", "https://other.example"), h)
	if len(h) != 0 {
		t.Errorf("ApplyCORS for a disallowed origin left %v", h)
	}
	h = http.Header{"Access-Control-Allow-Origin": {"*"}}
	ApplyCORS(nil, corsRequest("GET", "Origin", "https://other.example"), h)
	if len(h) != 1 {
		t.Errorf("ApplyCORS without a configuration changed the headers: %v", h)
	}
}
