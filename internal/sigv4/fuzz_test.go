package sigv4

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

var authorizationSeeds = []string{
	"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
	"AWS4-HMAC-SHA256 Credential=AKID/20261125/us-east-1/lambda/aws4_request,SignedHeaders=content-type;host;x-amz-date,Signature=00",
	"AWS4-HMAC-SHA256   Credential=AKID/20261125/us-east-1/lambda/aws4_request ,  SignedHeaders=host , Signature=ab, Extra=1",
	"AWS4-HMAC-SHA256 Credential=AKID /20261125/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=ab",
	"AWS4-HMAC-SHA256 Credential=a=b=c, SignedHeaders=host, Signature==",
	"AWS4-HMAC-SHA256",
	"AWS4-HMAC-SHA256 ",
	"AWS4-ECDSA-P256-SHA256 Credential=AKID/20261125/lambda/aws4_request, SignedHeaders=host;x-amz-region-set, Signature=3045",
	"AWS AKIDEXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=",
	"Bearer eyJhbGciOiJIUzI1NiJ9.e30.x",
	"",
	",,,",
	"AWS4-HMAC-SHA256 Credential=/////, SignedHeaders=;;, Signature=",
	"AWS4-HMAC-SHA256 Credential=AKID/20261125/us-east-1/lambda/aws4_request, SignedHeaders=Host;:authority, Signature=\u00a0",
}

// FuzzParseAuthorization checks that parsing an Authorization header never
// panics, fails only with the kinds it documents, and that what it accepts
// survives formatting and parsing again unchanged.
func FuzzParseAuthorization(f *testing.F) {
	for _, s := range authorizationSeeds {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, value string, haveDate bool) {
		a, err := parseAuthorization(value, haveDate)
		if err != nil {
			if err.Kind != Incomplete && err.Kind != UnsupportedAlgorithm || err.Message == "" {
				t.Fatalf("parseAuthorization(%q) = %v %q", value, err.Kind, err.Message)
			}
			return
		}
		if !haveDate {
			t.Fatalf("parseAuthorization(%q) accepted a request without a date", value)
		}
		if a.Algorithm != algorithm || a.Credential == "" || a.SignedHeaders == "" || a.Signature == "" {
			t.Fatalf("parseAuthorization(%q) = %+v with a part missing", value, a)
		}
		again, err := parseAuthorization(a.String(), true)
		if err != nil || again != a {
			t.Fatalf("round trip of %q: %+v, %v; want %+v", value, again, err, a)
		}

		if s, err := parseCredential(a.Credential); err == nil {
			if s.String() != a.Credential {
				t.Fatalf("credential %q parsed to %+v, formats as %q", a.Credential, s, s.String())
			}
		} else if err.Kind != Incomplete {
			t.Fatalf("parseCredential(%q) = %v", a.Credential, err)
		}
		if names, err := parseSignedHeaders(a.SignedHeaders); err == nil {
			if strings.Join(names, ";") != a.SignedHeaders {
				t.Fatalf("signed headers %q parsed to %q", a.SignedHeaders, names)
			}
		} else if err.Kind != Incomplete {
			t.Fatalf("parseSignedHeaders(%q) = %v", a.SignedHeaders, err)
		}
	})
}

// FuzzParseScope checks ParseScope on arbitrary headers and query strings:
// no panics, only *Error failures, and scopes whose parts are non-empty and
// slash-free.
func FuzzParseScope(f *testing.F) {
	for _, s := range authorizationSeeds {
		f.Add(s, "", "20150830T123600Z")
	}
	f.Add("", "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20261125%2Fus-east-1%2Fs3%2Faws4_request"+
		"&X-Amz-Date=20261125T120000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=00", "")
	f.Add("", "X-Amz-Signature=&&=&%zz=+&X-Amz-Expires=604801", "")
	f.Add("AWS4-HMAC-SHA256 Credential=AKID/20110909/us-east-1/host/aws4_request, SignedHeaders=date;host, Signature=00",
		"", "Mon, 09 Sep 2011 23:36:00 GMT")
	f.Fuzz(func(t *testing.T, authz, rawQuery, date string) {
		r := &http.Request{
			Method: "GET",
			URL:    &url.URL{Path: "/", RawQuery: rawQuery},
			Header: http.Header{},
			Host:   "nubis.test",
		}
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		if date != "" {
			r.Header.Set("X-Amz-Date", date)
		}
		s, err := ParseScope(r)
		if err != nil {
			if k := kindOf(err); k < MissingAuth || k > UnsupportedAlgorithm {
				t.Fatalf("ParseScope failed with %v (%v)", k, err)
			}
			return
		}
		for _, part := range []string{s.AccessKeyID, s.Date, s.Region, s.Service} {
			if part == "" || strings.Contains(part, "/") {
				t.Fatalf("ParseScope = %+v", s)
			}
		}
	})
}
