package lambdaurl

import (
	"net/http/httptest"
	"testing"
)

func TestTarget(t *testing.T) {
	for _, tc := range []struct {
		host, path string
		id, rest   string
		ok         bool
	}{
		{"abc123.lambda-url.us-east-1.localhost:4566", "/x/y?q=1", "abc123", "/x/y", true},
		{"ABC123.Lambda-Url.US-EAST-1.localhost", "/", "abc123", "/", true},
		{"abc123.lambda-url.eu-west-1.localhost:4566", "/", "", "", false}, // another region
		{"a.b.lambda-url.us-east-1.localhost", "/", "", "", false},
		{".lambda-url.us-east-1.localhost", "/", "", "", false},
		{"abc.execute-api.localhost:4566", "/", "", "", false},
		{"127.0.0.1:4566", "/_aws/lambda-url/abc123/p/q", "abc123", "/p/q", true},
		{"127.0.0.1:4566", "/_aws/lambda-url/abc123", "abc123", "/", true},
		{"127.0.0.1:4566", "/_aws/lambda-url/", "", "/", false},
		{"127.0.0.1:4566", "/2015-03-31/functions", "", "", false},
	} {
		r := httptest.NewRequest("GET", "http://x"+tc.path, nil)
		r.Host = tc.host
		id, rest, ok := Target(r, "us-east-1")
		if id != tc.id || ok != tc.ok || (ok && rest != tc.rest) {
			t.Errorf("%s %s: %q %q %v, want %q %q %v", tc.host, tc.path, id, rest, ok, tc.id, tc.rest, tc.ok)
		}
	}
}

func FuzzTarget(f *testing.F) {
	f.Add("abc.lambda-url.us-east-1.localhost:1", "/a")
	f.Add("127.0.0.1", "/_aws/lambda-url/x/y")
	f.Fuzz(func(t *testing.T, host, path string) {
		r := httptest.NewRequest("GET", "http://x/", nil)
		r.Host, r.URL.Path = host, path
		if id, _, ok := Target(r, "us-east-1"); ok && id == "" {
			t.Fatalf("%q %q: ok without an id", host, path)
		}
	})
}
