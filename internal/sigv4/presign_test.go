package sigv4

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

func TestPresign(t *testing.T) {
	srv := startServer(t, testVerifier(signedAt.Add(time.Minute)))
	scope := Scope{AccessKeyID: testAKID, Region: testRegion, Service: "s3"}
	for _, target := range []string{
		"/code/fn.zip",
		invokePath + "?Qualifier=%24LATEST&x=a+b&x=c",
		"/a%20b/%E2%82%AC",
		"",
	} {
		u, _ := url.Parse(srv.URL + target)
		signed, err := Presign(u, "GET", scope, testSecret, signedAt, 10*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if u.RawQuery != "" && !strings.Contains(signed.RawQuery, "x=a%20b") {
			t.Errorf("%s: existing query lost: %s", target, signed.RawQuery)
		}
		// A plain client, like curl, fetches it.
		res, err := srv.send(t, mustRequest(t, "GET", signed.String(), ""))
		if err != nil {
			t.Fatalf("%s: Verify(%s) = %v", target, signed, err)
		}
		if !res.Presigned || res.Scope.Date != "20261125" || res.Scope.Service != "s3" {
			t.Errorf("%s: Result = %+v", target, res)
		}
		// Another method, or a changed path, fails.
		if _, err := srv.send(t, mustRequest(t, "DELETE", signed.String(), "")); kindOf(err) != Mismatch {
			t.Errorf("%s: DELETE: got %v, want Mismatch", target, err)
		}
		other := *signed
		other.Path, other.RawPath = other.Path+"x", ""
		if _, err := srv.send(t, mustRequest(t, "GET", other.String(), "")); kindOf(err) != Mismatch {
			t.Errorf("%s: other path: got %v, want Mismatch", target, err)
		}
	}

	// A PUT with a body: the URL is signed with UNSIGNED-PAYLOAD.
	u, _ := url.Parse(srv.URL + "/upload")
	signed, err := Presign(u, "PUT", scope, testSecret, signedAt, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.send(t, mustRequest(t, "PUT", signed.String(), "payload")); err != nil {
		t.Errorf("PUT: %v", err)
	}

	// Expired, and signed with another secret.
	signed, _ = Presign(u, "GET", scope, testSecret, signedAt.Add(-2*time.Minute), 30*time.Second)
	if _, err := srv.send(t, mustRequest(t, "GET", signed.String(), "")); kindOf(err) != Expired {
		t.Errorf("expired: got %v, want Expired", err)
	}
	signed, _ = Presign(u, "GET", scope, "other secret", signedAt, time.Minute)
	if _, err := srv.send(t, mustRequest(t, "GET", signed.String(), "")); kindOf(err) != Mismatch {
		t.Errorf("other secret: got %v, want Mismatch", err)
	}
}

func mustRequest(t *testing.T, method, rawURL, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		setBody(req, body)
	}
	return req
}

// TestPresignMatchesSDK checks Presign against the SDK's presigner given the
// same inputs.
func TestPresignMatchesSDK(t *testing.T) {
	for _, raw := range []string{
		"http://127.0.0.1:4566/code/fn.zip",
		"https://lambda.nubis.test" + invokePath + "?Qualifier=%24LATEST&x=a%20b&x=c",
		"http://localhost:4566/a%20b/%E2%82%AC/x+y",
	} {
		u, _ := url.Parse(raw)
		scope := Scope{AccessKeyID: testAKID, Region: testRegion, Service: testService}
		ours, err := Presign(u, "GET", scope, testSecret, signedAt, 15*time.Minute)
		if err != nil {
			t.Fatal(err)
		}

		req := mustRequest(t, "GET", raw, "")
		q := req.URL.Query()
		q.Set("X-Amz-Expires", "900")
		req.URL.RawQuery = q.Encode()
		sdkURL, _, err := v4.NewSigner().PresignHTTP(context.Background(), sdkCreds("", ""), req, "UNSIGNED-PAYLOAD", testService, testRegion, signedAt)
		if err != nil {
			t.Fatal(err)
		}
		theirs, _ := url.Parse(sdkURL)
		if got, want := ours.Query().Get("X-Amz-Signature"), theirs.Query().Get("X-Amz-Signature"); got != want || got == "" {
			t.Errorf("%s: signature %s, SDK %s\nours:   %s\ntheirs: %s", raw, got, want, ours, theirs)
		}
	}
}

func TestPresignHostAndValidation(t *testing.T) {
	scope := Scope{AccessKeyID: testAKID, Region: testRegion, Service: testService}
	for raw, host := range map[string]string{
		"http://nubis.test:80/x":   "nubis.test",
		"https://nubis.test:443/x": "nubis.test",
		"http://nubis.test:443/x":  "nubis.test:443",
		"http://[::1]:80/x":        "[::1]",
		"http://[::1]:4566/x":      "[::1]:4566",
	} {
		u, _ := url.Parse(raw)
		signed, err := Presign(u, "GET", scope, testSecret, signedAt, time.Minute)
		if err != nil || signed.Host != host {
			t.Errorf("Presign(%s) host = %v, %v; want %s", raw, signed, err, host)
		}
	}
	u, _ := url.Parse("http://nubis.test/x")
	bad := []struct {
		name    string
		u       *url.URL
		scope   Scope
		expires time.Duration
	}{
		{"no host", &url.URL{Path: "/x"}, scope, time.Minute},
		{"zero expiry", u, scope, 0},
		{"expiry over a week", u, scope, 7*24*time.Hour + time.Second},
		{"scope date not the signing day", u, Scope{testAKID, "20261124", testRegion, testService}, time.Minute},
		{"empty service", u, Scope{AccessKeyID: testAKID, Region: testRegion}, time.Minute},
		{"slash in key id", u, Scope{AccessKeyID: "a/b", Region: testRegion, Service: testService}, time.Minute},
	}
	for _, tc := range bad {
		if _, err := Presign(tc.u, "GET", tc.scope, testSecret, signedAt, tc.expires); err == nil {
			t.Errorf("%s: Presign succeeded", tc.name)
		}
	}
}
