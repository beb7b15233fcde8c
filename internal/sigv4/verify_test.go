package sigv4

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const (
	testAKID    = "AKIDNUBISTEST"
	testSecret  = "nubis/Secret+Key/EXAMPLE"
	testRegion  = "us-east-1"
	testService = "lambda"

	invokePath = "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af/invocations"
)

// signedAt is when test requests are signed.
var signedAt = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// keyMap is a KeyLookup over a fixed set of keys.
type keyMap map[string]string

func (k keyMap) SecretKey(_ context.Context, id string) (string, error) {
	if s, ok := k[id]; ok {
		return s, nil
	}
	return "", fmt.Errorf("access key %s: %w", id, ErrUnknownKey)
}

func testVerifier(now time.Time) *Verifier {
	return &Verifier{
		Keys:   keyMap{testAKID: testSecret},
		Region: testRegion,
		Now:    func() time.Time { return now },
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// verifyServer is an HTTP server that verifies every request it receives,
// so that requests reach Verify exactly as a client put them on the wire.
type verifyServer struct {
	*httptest.Server
	outcomes chan outcome
}

type outcome struct {
	res *Result
	err error
}

func startServer(t *testing.T, v *Verifier) *verifyServer {
	t.Helper()
	s := &verifyServer{outcomes: make(chan outcome, 1)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			s.outcomes <- outcome{err: err}
			return
		}
		res, err := v.Verify(r.Context(), r, body)
		s.outcomes <- outcome{res, err}
	}))
	t.Cleanup(s.Close)
	return s
}

// send sends req and returns what the server's Verify returned.
func (s *verifyServer) send(t *testing.T, req *http.Request) (*Result, error) {
	t.Helper()
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatalf("sending request: %v", err)
	}
	resp.Body.Close()
	o := <-s.outcomes
	return o.res, o.err
}

// sdkCreds returns SDK credentials for the test key.
func sdkCreds(akid, secret string) aws.Credentials {
	if akid == "" {
		akid = testAKID
	}
	if secret == "" {
		secret = testSecret
	}
	return aws.Credentials{AccessKeyID: akid, SecretAccessKey: secret}
}

// setBody replaces a request's body.
func setBody(req *http.Request, body string) {
	req.Body = io.NopCloser(strings.NewReader(body))
	req.ContentLength = int64(len(body))
}

func TestVerifySDKSigned(t *testing.T) {
	jsonBody := `{"name":"nubis","n":42}`
	tests := []struct {
		name    string
		method  string
		target  string // path and query, as sent
		body    string
		header  http.Header
		payload string // hash signed; "" means the SHA-256 of body
		creds   aws.Credentials
		region  string              // "" means testRegion
		now     time.Time           // zero means signedAt
		mutate  func(*http.Request) // applied after signing
		want    Kind                // 0: accepted
	}{
		{name: "GET", method: "GET", target: "/2015-03-31/functions/"},
		{name: "GET escaped path", method: "GET", target: "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af/configuration"},
		{
			name: "POST escaped path", method: "POST", target: invokePath, body: jsonBody,
			header: http.Header{"Content-Type": {"application/json"}, "X-Amz-Invocation-Type": {"RequestResponse"}},
		},
		{name: "POST empty body", method: "POST", target: invokePath},
		{name: "query with repeated keys and spaces", method: "GET", target: "/2015-03-31/functions?b=2&a=x%20y&a=1&c=hello+world&empty=&flag&Marker=a%2Fb%3D"},
		{name: "path with space, utf-8 and reserved characters", method: "GET", target: "/tags/a%20b/%E2%82%AC/x+y/%21%2A%27"},
		{name: "path with empty and dot segments", method: "GET", target: "/a//b/./c/"},
		{
			name: "headers with extra spaces and repeated values", method: "POST", target: invokePath, body: jsonBody,
			header: http.Header{"X-Custom": {"  a   b    c  "}, "X-Multi": {"one", "two   three"}, "Content-Type": {"application/json"}},
		},
		{
			name: "UNSIGNED-PAYLOAD", method: "POST", target: invokePath, body: jsonBody,
			header: http.Header{"X-Amz-Content-Sha256": {"UNSIGNED-PAYLOAD"}}, payload: "UNSIGNED-PAYLOAD",
		},
		{
			name: "x-amz-content-sha256", method: "POST", target: invokePath, body: jsonBody,
			header: http.Header{"X-Amz-Content-Sha256": {sha256Hex(jsonBody)}},
		},
		{
			name: "session token", method: "GET", target: "/2015-03-31/functions/",
			creds: aws.Credentials{AccessKeyID: testAKID, SecretAccessKey: testSecret, SessionToken: "token/+="},
		},
		{name: "14 minutes old", method: "GET", target: "/", now: signedAt.Add(14 * time.Minute)},
		{name: "14 minutes ahead", method: "GET", target: "/", now: signedAt.Add(-14 * time.Minute)},
		{
			name: "unsigned header added", method: "POST", target: invokePath, body: jsonBody,
			mutate: func(r *http.Request) { r.Header.Set("X-Unsigned", "anything") },
		},
		{
			name: "query re-encoded and reordered on the wire", method: "GET", target: "/f?b=2&a=x%20y&a=1",
			mutate: func(r *http.Request) { r.URL.RawQuery = "b=2&a=1&a=x+y" },
		},

		{
			name: "tampered method", method: "POST", target: invokePath, body: jsonBody,
			mutate: func(r *http.Request) { r.Method = "PUT" }, want: Mismatch,
		},
		{
			name: "tampered path", method: "POST", target: invokePath, body: jsonBody,
			mutate: func(r *http.Request) {
				u, _ := url.Parse(strings.Replace(r.URL.String(), "function%3Af", "function%3Ag", 1))
				r.URL = u
			},
			want: Mismatch,
		},
		{
			name: "tampered path escaping", method: "GET", target: "/a%2Fb",
			mutate: func(r *http.Request) { r.URL.Path, r.URL.RawPath = "/a/b", "" }, want: Mismatch,
		},
		{
			name: "tampered query value", method: "GET", target: "/f?a=1&b=2",
			mutate: func(r *http.Request) { r.URL.RawQuery = "a=1&b=3" }, want: Mismatch,
		},
		{
			name: "query parameter added", method: "GET", target: "/f?a=1",
			mutate: func(r *http.Request) { r.URL.RawQuery += "&a=2" }, want: Mismatch,
		},
		{
			name: "tampered header", method: "POST", target: invokePath, body: jsonBody,
			header: http.Header{"X-Amz-Invocation-Type": {"RequestResponse"}},
			mutate: func(r *http.Request) { r.Header.Set("X-Amz-Invocation-Type", "Event") }, want: Mismatch,
		},
		{
			name: "tampered host", method: "GET", target: "/",
			mutate: func(r *http.Request) { r.Host = "nubis.example:4566" }, want: Mismatch,
		},
		{
			name: "tampered date", method: "GET", target: "/",
			mutate: func(r *http.Request) { r.Header.Set("X-Amz-Date", "20261125T120001Z") }, want: Mismatch,
		},
		{
			name: "tampered body", method: "POST", target: invokePath, body: jsonBody,
			mutate: func(r *http.Request) { setBody(r, strings.Replace(jsonBody, "42", "43", 1)) }, want: Mismatch,
		},
		{
			name: "tampered signature", method: "GET", target: "/",
			mutate: func(r *http.Request) {
				a := r.Header.Get("Authorization")
				r.Header.Set("Authorization", a[:len(a)-8]+"00000000")
			},
			want: Mismatch,
		},
		{
			name: "body does not match x-amz-content-sha256", method: "POST", target: invokePath, body: jsonBody,
			header: http.Header{"X-Amz-Content-Sha256": {sha256Hex(jsonBody)}},
			mutate: func(r *http.Request) { setBody(r, strings.Replace(jsonBody, "42", "43", 1)) }, want: BadContentHash,
		},
		{
			name: "x-amz-content-sha256 neither hash nor UNSIGNED-PAYLOAD", method: "POST", target: invokePath, body: jsonBody,
			header:  http.Header{"X-Amz-Content-Sha256": {"STREAMING-AWS4-HMAC-SHA256-PAYLOAD"}},
			payload: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", want: BadContentHash,
		},
		{name: "wrong secret", method: "GET", target: "/", creds: sdkCreds("", "not-the-secret"), want: Mismatch},
		{name: "unknown key", method: "GET", target: "/", creds: sdkCreds("AKIDUNKNOWN", ""), want: UnknownKey},
		{name: "wrong region", method: "GET", target: "/", region: "us-west-2", want: WrongRegion},
		{name: "16 minutes old", method: "GET", target: "/", now: signedAt.Add(16 * time.Minute), want: Expired},
		{name: "16 minutes ahead", method: "GET", target: "/", now: signedAt.Add(-16 * time.Minute), want: Expired},
		{
			name: "date header removed", method: "GET", target: "/",
			mutate: func(r *http.Request) { r.Header.Del("X-Amz-Date") }, want: Incomplete,
		},
		{
			name: "date moved to another day", method: "GET", target: "/",
			mutate: func(r *http.Request) { r.Header.Set("X-Amz-Date", "20261126T120000Z") }, want: Incomplete,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.now
			if now.IsZero() {
				now = signedAt
			}
			srv := startServer(t, testVerifier(now))

			req, err := http.NewRequest(tc.method, srv.URL+tc.target, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.body != "" {
				setBody(req, tc.body)
			}
			for k, vs := range tc.header {
				req.Header[k] = vs
			}
			payload := tc.payload
			if payload == "" {
				payload = sha256Hex(tc.body)
			}
			creds := tc.creds
			if creds.AccessKeyID == "" {
				creds = sdkCreds("", "")
			}
			region := tc.region
			if region == "" {
				region = testRegion
			}
			if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, payload, testService, region, signedAt); err != nil {
				t.Fatal(err)
			}
			if tc.mutate != nil {
				tc.mutate(req)
			}

			res, err := srv.send(t, req)
			if got := kindOf(err); got != tc.want {
				t.Fatalf("Verify: kind %v (%v), want %v", got, err, tc.want)
			}
			if tc.want != 0 {
				return
			}
			want := Scope{AccessKeyID: creds.AccessKeyID, Date: "20261125", Region: testRegion, Service: testService}
			if res.Scope != want || !res.SignedAt.Equal(signedAt) || res.Presigned {
				t.Errorf("Result = %+v, want scope %+v signed at %v", res, want, signedAt)
			}
		})
	}
}

func TestVerifyUnknownKeyWrapsLookupError(t *testing.T) {
	srv := startServer(t, testVerifier(signedAt))
	req, _ := http.NewRequest("GET", srv.URL+"/", nil)
	if err := v4.NewSigner().SignHTTP(context.Background(), sdkCreds("AKIDOTHER", ""), req, sha256Hex(""), testService, testRegion, signedAt); err != nil {
		t.Fatal(err)
	}
	_, err := srv.send(t, req)
	if !errors.Is(err, ErrUnknownKey) {
		t.Errorf("errors.Is(%v, ErrUnknownKey) = false", err)
	}
	if err == nil || err.Error() != msgUnknownKey {
		t.Errorf("message = %v, want %q", err, msgUnknownKey)
	}
}

func TestVerifyLookupFailure(t *testing.T) {
	boom := errors.New("database is down")
	v := &Verifier{Keys: failingKeys{boom}, Region: testRegion, Now: func() time.Time { return signedAt }}
	r := sdkServerRequest(t, "GET", "http://nubis.test/", "", false)
	_, err := v.Verify(context.Background(), r, nil)
	if !errors.Is(err, boom) || kindOf(err) != -1 {
		t.Errorf("Verify = %v, want the lookup error, not an *Error", err)
	}
}

type failingKeys struct{ err error }

func (f failingKeys) SecretKey(context.Context, string) (string, error) { return "", f.err }

func TestVerifySDKPresigned(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		target  string
		body    string
		expires string // X-Amz-Expires; "" leaves it out
		payload string // "" means the SHA-256 of body
		creds   aws.Credentials
		now     time.Time
		mutate  func(*http.Request)
		want    Kind
	}{
		{name: "GET", method: "GET", target: "/2015-03-31/functions/", expires: "900"},
		{name: "GET UNSIGNED-PAYLOAD", method: "GET", target: "/", expires: "900", payload: "UNSIGNED-PAYLOAD"},
		{name: "PUT body UNSIGNED-PAYLOAD", method: "PUT", target: "/upload", body: "zip bytes", expires: "900", payload: "UNSIGNED-PAYLOAD"},
		{name: "PUT body hashed", method: "PUT", target: "/upload", body: "zip bytes", expires: "900"},
		{name: "escaped path and query", method: "GET", target: invokePath + "?Qualifier=%24LATEST&x=a%20b&x=c", expires: "3600"},
		{name: "last second", method: "GET", target: "/", expires: "60", now: signedAt.Add(60 * time.Second)},
		{name: "maximum expiry", method: "GET", target: "/", expires: "604800", now: signedAt.Add(7 * 24 * time.Hour)},
		{name: "session token", method: "GET", target: "/", expires: "60", creds: aws.Credentials{AccessKeyID: testAKID, SecretAccessKey: testSecret, SessionToken: "tok"}},

		{name: "expired", method: "GET", target: "/", expires: "60", now: signedAt.Add(61 * time.Second), want: Expired},
		{name: "signed in the future", method: "GET", target: "/", expires: "3600", now: signedAt.Add(-16 * time.Minute), want: Expired},
		{name: "wrong secret", method: "GET", target: "/", expires: "60", creds: sdkCreds("", "wrong"), want: Mismatch},
		{name: "unknown key", method: "GET", target: "/", expires: "60", creds: sdkCreds("AKIDUNKNOWN", ""), want: UnknownKey},
		{
			name: "tampered query", method: "GET", target: "/f?a=1", expires: "60",
			mutate: func(r *http.Request) { r.URL.RawQuery = strings.Replace(r.URL.RawQuery, "a=1", "a=2", 1) }, want: Mismatch,
		},
		{
			name: "tampered expiry", method: "GET", target: "/", expires: "60", now: signedAt.Add(61 * time.Second),
			mutate: func(r *http.Request) {
				r.URL.RawQuery = strings.Replace(r.URL.RawQuery, "X-Amz-Expires=60", "X-Amz-Expires=120", 1)
			},
			want: Mismatch,
		},
		{
			name: "tampered method", method: "GET", target: "/", expires: "60",
			mutate: func(r *http.Request) { r.Method = "DELETE" }, want: Mismatch,
		},
		{
			name: "tampered signature", method: "GET", target: "/", expires: "60",
			mutate: func(r *http.Request) {
				q := r.URL.RawQuery
				i := strings.Index(q, "X-Amz-Signature=") + len("X-Amz-Signature=")
				r.URL.RawQuery = q[:i] + "00" + q[i+2:]
			},
			want: Mismatch,
		},
		{name: "missing X-Amz-Expires", method: "GET", target: "/", want: Incomplete},
		{name: "X-Amz-Expires over a week", method: "GET", target: "/", expires: "604801", want: Incomplete},
		{name: "X-Amz-Expires zero", method: "GET", target: "/", expires: "0", want: Incomplete},
		{name: "X-Amz-Expires not a number", method: "GET", target: "/", expires: "soon", want: Incomplete},
		{
			name: "also an Authorization header", method: "GET", target: "/", expires: "60",
			mutate: func(r *http.Request) {
				r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDNUBISTEST/20261125/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=00")
			},
			want: Incomplete,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.now
			if now.IsZero() {
				now = signedAt
			}
			srv := startServer(t, testVerifier(now))

			u, err := url.Parse(srv.URL + tc.target)
			if err != nil {
				t.Fatal(err)
			}
			if tc.expires != "" {
				u.RawQuery = strings.TrimPrefix(u.RawQuery+"&X-Amz-Expires="+tc.expires, "&")
			}
			presignReq, err := http.NewRequest(tc.method, u.String(), nil)
			if err != nil {
				t.Fatal(err)
			}
			payload := tc.payload
			if payload == "" {
				payload = sha256Hex(tc.body)
			}
			creds := tc.creds
			if creds.AccessKeyID == "" {
				creds = sdkCreds("", "")
			}
			signedURL, signedHeaders, err := v4.NewSigner().PresignHTTP(context.Background(), creds, presignReq, payload, testService, testRegion, signedAt)
			if err != nil {
				t.Fatal(err)
			}

			req, err := http.NewRequest(tc.method, signedURL, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, vs := range signedHeaders {
				if k != "Host" {
					req.Header[k] = vs
				}
			}
			if tc.body != "" {
				setBody(req, tc.body)
			}
			if tc.mutate != nil {
				tc.mutate(req)
			}
			res, err := srv.send(t, req)
			if got := kindOf(err); got != tc.want {
				t.Fatalf("Verify: kind %v (%v), want %v", got, err, tc.want)
			}
			if tc.want == 0 && (!res.Presigned || !res.SignedAt.Equal(signedAt) || res.Scope.AccessKeyID != creds.AccessKeyID) {
				t.Errorf("Result = %+v", res)
			}
		})
	}
}

// sdkServerRequest signs a request with the SDK and returns it as a server
// reads it off the wire.
func sdkServerRequest(t testing.TB, method, rawURL, body string, presign bool) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		setBody(req, body)
		req.Header.Set("Content-Type", "application/json")
	}
	signer := v4.NewSigner()
	if presign {
		q := req.URL.Query()
		q.Set("X-Amz-Expires", "900")
		req.URL.RawQuery = q.Encode()
		signed, _, err := signer.PresignHTTP(context.Background(), sdkCreds("", ""), req, sha256Hex(body), testService, testRegion, signedAt)
		if err != nil {
			t.Fatal(err)
		}
		if req.URL, err = url.Parse(signed); err != nil {
			t.Fatal(err)
		}
	} else if err := signer.SignHTTP(context.Background(), sdkCreds("", ""), req, sha256Hex(body), testService, testRegion, signedAt); err != nil {
		t.Fatal(err)
	}
	if body != "" {
		setBody(req, body)
	}
	wire, err := httputil.DumpRequestOut(req, true)
	if err != nil {
		t.Fatal(err)
	}
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(wire)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestVerifyMalformed(t *testing.T) {
	const (
		cred   = "AKIDNUBISTEST/20261125/us-east-1/lambda/aws4_request"
		sig    = "0000000000000000000000000000000000000000000000000000000000000000"
		good   = "AWS4-HMAC-SHA256 Credential=" + cred + ", SignedHeaders=host;x-amz-date, Signature=" + sig
		amzNow = "20261125T120000Z"
	)
	presigned := func(replace ...string) string {
		q := "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + url.QueryEscape(cred) +
			"&X-Amz-Date=" + amzNow + "&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=" + sig
		return "/?" + strings.NewReplacer(replace...).Replace(q)
	}
	tests := []struct {
		name    string
		target  string
		authz   string
		date    string // X-Amz-Date header; "-" for none
		want    Kind
		message string // exact message, when set
	}{
		{name: "nothing", target: "/", date: "-", want: MissingAuth, message: "Missing Authentication Token"},
		{
			name: "no signature", authz: "AWS4-HMAC-SHA256 Credential=" + cred + ", SignedHeaders=host;x-amz-date", want: Incomplete,
			message: "Authorization header requires 'Signature' parameter. Authorization=AWS4-HMAC-SHA256 Credential=" + cred + ", SignedHeaders=host;x-amz-date",
		},
		{
			name: "algorithm only, no date", authz: "AWS4-HMAC-SHA256", date: "-", want: Incomplete,
			message: "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. " +
				"Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of either " +
				"a 'X-Amz-Date' or a 'Date' header. Authorization=AWS4-HMAC-SHA256",
		},
		{name: "no date", authz: good, date: "-", want: Incomplete},
		{
			name: "bearer token", authz: "Bearer abc.def", want: Incomplete,
			message: "'abc.def' not a valid key=value pair (missing equal-sign) in Authorization header: 'Bearer abc.def'.",
		},
		{name: "space in credential", authz: "AWS4-HMAC-SHA256 Credential=AKID /20261125/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=" + sig, want: Incomplete},
		{name: "SigV4a", authz: strings.Replace(good, "AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256", 1), want: UnsupportedAlgorithm},
		{name: "SigV2", authz: "AWS AKIDNUBISTEST:c2lnbmF0dXJl", want: Incomplete},
		{name: "credential with 4 parts", authz: strings.Replace(good, "/lambda", "", 1), want: Incomplete},
		{
			name: "credential with bad terminator", authz: strings.Replace(good, "aws4_request", "aws5_request", 1), want: Incomplete,
			message: "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws5_request'.",
		},
		{name: "credential with empty region", authz: strings.Replace(good, "/us-east-1/", "//", 1), want: Incomplete},
		{name: "host not signed", authz: strings.Replace(good, "host;x-amz-date", "x-amz-date", 1), want: Incomplete, message: msgHostNotSigned},
		{name: "empty signed header name", authz: strings.Replace(good, "host;x-amz-date", "host;;x-amz-date", 1), want: Incomplete},
		{name: "date not ISO 8601 basic", authz: good, date: "2026-11-25T12:00:00Z", want: Incomplete},
		{
			name: "scope date not the request's day", authz: good, date: "20261124T235959Z", want: Incomplete,
			message: "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: " +
				"'20261125' != '20261124', from '20261124T235959Z'.",
		},
		{name: "signature not hex", authz: strings.Replace(good, sig, "zz", 1), want: Mismatch, message: msgMismatch},
		{name: "wrong region", authz: strings.Replace(good, "us-east-1", "eu-west-1", 1), want: WrongRegion, message: msgWrongRegion},

		{name: "presigned without signature", target: presigned("&X-Amz-Signature="+sig, ""), date: "-", want: Incomplete},
		{name: "presigned without credential", target: presigned("X-Amz-Credential=", "X-Amz-Foo="), date: "-", want: Incomplete},
		{name: "presigned SigV4a", target: presigned("Algorithm=AWS4-HMAC-SHA256", "Algorithm=AWS4-ECDSA-P256-SHA256"), date: "-", want: UnsupportedAlgorithm},
		{name: "presigned negative expiry", target: presigned("Expires=60", "Expires=-1"), date: "-", want: Incomplete},
		{name: "presigned bad date", target: presigned(amzNow, "tomorrow"), date: "-", want: Incomplete},
		{name: "presigned wrong region", target: presigned("us-east-1", "eu-west-1"), date: "-", want: WrongRegion},
		{name: "presigned bad signature", target: presigned(), date: "-", want: Mismatch},
	}
	v := testVerifier(signedAt)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target := tc.target
			if target == "" {
				target = "/"
			}
			r := httptest.NewRequest("GET", target, nil)
			if tc.authz != "" {
				r.Header.Set("Authorization", tc.authz)
			}
			switch tc.date {
			case "-":
			case "":
				r.Header.Set("X-Amz-Date", amzNow)
			default:
				r.Header.Set("X-Amz-Date", tc.date)
			}
			_, err := v.Verify(context.Background(), r, nil)
			if got := kindOf(err); got != tc.want {
				t.Fatalf("Verify: kind %v (%v), want %v", got, err, tc.want)
			}
			if tc.message != "" && err.Error() != tc.message {
				t.Errorf("message\n%q, want\n%q", err.Error(), tc.message)
			}
			_, perr := ParseScope(r)
			if parseKind := kindOf(perr); tc.want <= UnsupportedAlgorithm && parseKind != tc.want {
				t.Errorf("ParseScope: kind %v (%v), want %v", parseKind, perr, tc.want)
			}
		})
	}
}

func TestVerifyExpiredMessages(t *testing.T) {
	r := sdkServerRequest(t, "GET", "http://nubis.test/", "", false)
	tests := []struct {
		now  time.Time
		skew time.Duration
		want string
	}{
		{
			now:  signedAt.Add(time.Hour),
			want: "Signature expired: 20261125T120000Z is now earlier than 20261125T124500Z (20261125T130000Z - 15 min.)",
		},
		{
			now:  signedAt.Add(-time.Hour),
			want: "Signature not yet current: 20261125T120000Z is still later than 20261125T111500Z (20261125T110000Z + 15 min.)",
		},
		{
			now: signedAt.Add(6 * time.Minute), skew: 5 * time.Minute,
			want: "Signature expired: 20261125T120000Z is now earlier than 20261125T120100Z (20261125T120600Z - 5 min.)",
		},
	}
	for _, tc := range tests {
		v := testVerifier(tc.now)
		v.MaxSkew = tc.skew
		_, err := v.Verify(context.Background(), r, nil)
		if kindOf(err) != Expired || err.Error() != tc.want {
			t.Errorf("now %v: Verify = %v (%v), want Expired %q", tc.now, kindOf(err), err, tc.want)
		}
	}

	p := sdkServerRequest(t, "GET", "http://nubis.test/", "", true)
	_, err := testVerifier(signedAt.Add(901*time.Second)).Verify(context.Background(), p, nil)
	if kindOf(err) != Expired || err.Error() != msgRequestExpired {
		t.Errorf("presigned: Verify = %v, want Expired %q", err, msgRequestExpired)
	}
}

// TestVerifyClientSideRequest verifies a request that never went over the
// wire, as handler tests build them: Host and Content-Length are fields,
// not headers.
func TestVerifyClientSideRequest(t *testing.T) {
	const body = `{"direct":true}`
	r := httptest.NewRequest("POST", "http://nubis.test:4566"+invokePath, strings.NewReader(body))
	if err := v4.NewSigner().SignHTTP(context.Background(), sdkCreds("", ""), r, sha256Hex(body), testService, testRegion, signedAt); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Header.Get("Authorization"), "content-length;") || r.Header.Get("Content-Length") != "" {
		t.Fatalf("expected content-length signed from the ContentLength field: %v", r.Header)
	}
	if _, err := testVerifier(signedAt).Verify(context.Background(), r, []byte(body)); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyDoesNotReadBody(t *testing.T) {
	r := sdkServerRequest(t, "POST", "http://nubis.test"+invokePath, `{"a":1}`, false)
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bodyTrap{t})
	if _, err := testVerifier(signedAt).Verify(context.Background(), r, body); err != nil {
		t.Fatal(err)
	}
}

type bodyTrap struct{ t *testing.T }

func (b bodyTrap) Read([]byte) (int, error) {
	b.t.Error("Verify read r.Body")
	return 0, io.EOF
}

func TestVerifyConcurrent(t *testing.T) {
	const body = `{"concurrent":true}`
	header := sdkServerRequest(t, "POST", "http://nubis.test"+invokePath, body, false)
	presigned := sdkServerRequest(t, "GET", "http://nubis.test/f?x=1", "", true)
	v := testVerifier(signedAt)
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				r, b := header, []byte(body)
				if i%2 == 1 {
					r, b = presigned, nil
				}
				if _, err := v.Verify(context.Background(), r, b); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestParseScope(t *testing.T) {
	want := Scope{AccessKeyID: testAKID, Date: "20261125", Region: testRegion, Service: testService}
	for _, presign := range []bool{false, true} {
		r := sdkServerRequest(t, "GET", "http://nubis.test/2015-03-31/functions/", "", presign)
		got, err := ParseScope(r)
		if err != nil || got != want {
			t.Errorf("presigned=%v: ParseScope = %+v, %v; want %+v", presign, got, err, want)
		}
	}
	// ParseScope checks shape only: region and signature are Verify's.
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Amz-Date", "20261125T120000Z")
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20261125/eu-north-1/sts/aws4_request, SignedHeaders=host, Signature=bad")
	got, err := ParseScope(r)
	if err != nil || got != (Scope{"AKID", "20261125", "eu-north-1", "sts"}) {
		t.Errorf("ParseScope = %+v, %v", got, err)
	}
	if s := got.String(); s != "AKID/20261125/eu-north-1/sts/aws4_request" {
		t.Errorf("Scope.String() = %q", s)
	}
}

func BenchmarkVerify(b *testing.B) {
	body := `{"FunctionName":"f","Payload":"` + strings.Repeat("x", 1024) + `"}`
	cases := []struct {
		name string
		r    *http.Request
		body []byte
	}{
		{"header", sdkServerRequest(b, "POST", "http://nubis.test"+invokePath, body, false), []byte(body)},
		{"presigned", sdkServerRequest(b, "GET", "http://nubis.test/code/fn.zip", "", true), nil},
	}
	v := testVerifier(signedAt)
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(context.Background(), c.r, c.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
