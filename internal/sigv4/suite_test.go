package sigv4

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// The AWS Signature Version 4 test suite
// (https://docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html):
// the 2015 revision, which dates requests with X-Amz-Date, and a few cases
// of the 2011 revision, which date them with an HTTP Date header. Cases
// whose raw request cannot be sent as is (get-space, get-utf8: a space or
// UTF-8 in the request line) are left out, as are the two
// post-x-www-form-urlencoded cases, whose published signatures match neither
// their own canonical request nor their string to sign.

const (
	suiteAKID   = "AKIDEXAMPLE"
	suiteSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
	suiteToken  = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
)

type suiteCase struct {
	name string
	// req is the request without its Authorization header, lines separated
	// by "\n"; a body follows an empty line.
	req string
	// authz is the expected Authorization header value.
	authz string
	// creq, when set, is the expected canonical request.
	creq string
}

func suiteAuthz(scope, signedHeaders, sig string) string {
	return "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/" + scope + ", SignedHeaders=" + signedHeaders + ", Signature=" + sig
}

const (
	scope2015 = "20150830/us-east-1/service/aws4_request"
	scope2011 = "20110909/us-east-1/host/aws4_request"
	date2011  = "Date:Mon, 09 Sep 2011 23:36:00 GMT"
	emptySHA  = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

var suite2015 = []suiteCase{
	{
		name:  "get-vanilla",
		req:   "GET / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
		authz: suiteAuthz(scope2015, "host;x-amz-date", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
		creq:  "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" + emptySHA,
	},
	{
		name:  "get-vanilla-empty-query-key",
		req:   "GET /?Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
		authz: suiteAuthz(scope2015, "host;x-amz-date", "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"),
	},
	{
		name:  "get-vanilla-query-order-key",
		req:   "GET /?Param1=value2&Param1=Value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
		authz: suiteAuthz(scope2015, "host;x-amz-date", "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1"),
		creq:  "GET\n/\nParam1=Value1&Param1=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" + emptySHA,
	},
	{
		name:  "get-vanilla-query-order-key-case",
		req:   "GET /?Param2=value2&Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
		authz: suiteAuthz(scope2015, "host;x-amz-date", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
	},
	{
		name:  "get-vanilla-query-order-value",
		req:   "GET /?Param1=value2&Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
		authz: suiteAuthz(scope2015, "host;x-amz-date", "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694"),
	},
	{
		name: "get-vanilla-query-unreserved",
		req: "GET /?-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=" +
			"-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz HTTP/1.1\n" +
			"Host:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
		authz: suiteAuthz(scope2015, "host;x-amz-date", "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"),
	},
	{
		// The suite's request line holds raw UTF-8; on the wire it is escaped.
		name:  "get-vanilla-utf8-query",
		req:   "GET /?%E1%88%B4=bar HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
		authz: suiteAuthz(scope2015, "host;x-amz-date", "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"),
		creq:  "GET\n/\n%E1%88%B4=bar\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" + emptySHA,
	},
	{
		name:  "get-unreserved",
		req:   "GET /-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
		authz: suiteAuthz(scope2015, "host;x-amz-date", "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"),
	},
	{
		name:  "get-header-key-duplicate",
		req:   "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value2\nMy-Header1:value2\nMy-Header1:value1\nX-Amz-Date:20150830T123600Z",
		authz: suiteAuthz(scope2015, "host;my-header1;x-amz-date", "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"),
		creq:  "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value2,value2,value1\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n" + emptySHA,
	},
	{
		name:  "get-header-value-order",
		req:   "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value4\nMy-Header1:value1\nMy-Header1:value3\nMy-Header1:value2\nX-Amz-Date:20150830T123600Z",
		authz: suiteAuthz(scope2015, "host;my-header1;x-amz-date", "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"),
	},
	{
		name:  "get-header-value-trim",
		req:   "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1: value1\nMy-Header2: \"a   b   c\"\nX-Amz-Date:20150830T123600Z",
		authz: suiteAuthz(scope2015, "host;my-header1;my-header2;x-amz-date", "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"),
		creq:  "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\nx-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\n" + emptySHA,
	},
	{
		name:  "post-vanilla",
		req:   "POST / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
		authz: suiteAuthz(scope2015, "host;x-amz-date", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
	},
	{
		name:  "post-vanilla-query",
		req:   "POST /?Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
		authz: suiteAuthz(scope2015, "host;x-amz-date", "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"),
	},
	{
		name:  "post-header-key-sort",
		req:   "POST / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value1\nX-Amz-Date:20150830T123600Z",
		authz: suiteAuthz(scope2015, "host;my-header1;x-amz-date", "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"),
	},
	{
		name:  "post-header-value-case",
		req:   "POST / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:VALUE1\nX-Amz-Date:20150830T123600Z",
		authz: suiteAuthz(scope2015, "host;my-header1;x-amz-date", "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"),
	},
	{
		name:  "post-sts-header-before",
		req:   "POST / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\nX-Amz-Security-Token:" + suiteToken,
		authz: suiteAuthz(scope2015, "host;x-amz-date;x-amz-security-token", "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"),
	},
	{
		name:  "post-sts-header-after",
		req:   "POST / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\nX-Amz-Security-Token:" + suiteToken,
		authz: suiteAuthz(scope2015, "host;x-amz-date", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
	},
	// normalize-path
	{
		name:  "get-relative",
		req:   "GET /example/.. HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
		authz: suiteAuthz(scope2015, "host;x-amz-date", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
	},
	{
		name:  "get-relative-relative",
		req:   "GET /example1/example2/../.. HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
		authz: suiteAuthz(scope2015, "host;x-amz-date", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
	},
	{
		name:  "get-slash",
		req:   "GET // HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
		authz: suiteAuthz(scope2015, "host;x-amz-date", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
	},
	{
		name:  "get-slash-dot-slash",
		req:   "GET /./ HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
		authz: suiteAuthz(scope2015, "host;x-amz-date", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
	},
	{
		name:  "get-slash-pointless-dot",
		req:   "GET /./example HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
		authz: suiteAuthz(scope2015, "host;x-amz-date", "ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5"),
	},
	{
		name:  "get-slashes",
		req:   "GET //example// HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
		authz: suiteAuthz(scope2015, "host;x-amz-date", "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84"),
		creq:  "GET\n/example/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" + emptySHA,
	},
}

var suite2011 = []suiteCase{
	{
		name:  "get-vanilla",
		req:   "GET / HTTP/1.1\n" + date2011 + "\nHost:host.foo.com",
		authz: suiteAuthz(scope2011, "date;host", "b27ccfbfa7df52a200ff74193ca6e32d4b48b8856fab7ebf1c595d0670a7e470"),
		creq:  "GET\n/\n\ndate:Mon, 09 Sep 2011 23:36:00 GMT\nhost:host.foo.com\n\ndate;host\n" + emptySHA,
	},
	{
		name:  "get-slash",
		req:   "GET // HTTP/1.1\n" + date2011 + "\nHost:host.foo.com",
		authz: suiteAuthz(scope2011, "date;host", "b27ccfbfa7df52a200ff74193ca6e32d4b48b8856fab7ebf1c595d0670a7e470"),
	},
	{
		name:  "get-relative-relative",
		req:   "GET /foo/bar/../.. HTTP/1.1\n" + date2011 + "\nHost:host.foo.com",
		authz: suiteAuthz(scope2011, "date;host", "b27ccfbfa7df52a200ff74193ca6e32d4b48b8856fab7ebf1c595d0670a7e470"),
	},
	{
		name:  "get-slash-pointless-dot",
		req:   "GET /./foo HTTP/1.1\n" + date2011 + "\nHost:host.foo.com",
		authz: suiteAuthz(scope2011, "date;host", "910e4d6c9abafaf87898e1eb4c929135782ea25bb0279703146455745391e63a"),
	},
	{
		name:  "get-vanilla-query-order-value",
		req:   "GET /?foo=b&foo=a HTTP/1.1\n" + date2011 + "\nHost:host.foo.com",
		authz: suiteAuthz(scope2011, "date;host", "feb926e49e382bec75c9d7dcb2a1b6dc8aa50ca43c25d2bc51143768c0875acc"),
	},
	{
		name: "get-vanilla-query-unreserved",
		req: "GET /?-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=" +
			"-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz HTTP/1.1\n" + date2011 + "\nHost:host.foo.com",
		authz: suiteAuthz(scope2011, "date;host", "f1498ddb4d6dae767d97c466fb92f1b59a2c71ca29ac954692663f9db03426fb"),
	},
	{
		name:  "post-header-key-sort",
		req:   "POST / HTTP/1.1\nDATE:Mon, 09 Sep 2011 23:36:00 GMT\nHost:host.foo.com\nZOO:zoobar",
		authz: suiteAuthz(scope2011, "date;host;zoo", "b7a95a52518abbca0964a999a880429ab734f35ebbf1235bd79a5de87756dc4a"),
	},
	{
		name:  "post-header-value-case",
		req:   "POST / HTTP/1.1\nDATE:Mon, 09 Sep 2011 23:36:00 GMT\nHost:host.foo.com\nzoo:ZOOBAR",
		authz: suiteAuthz(scope2011, "date;host;zoo", "273313af9d0c265c531e11db70bbd653f3ba074c1009239e8559d3987039cad7"),
	},
}

// readSuiteRequest parses a suite request as a server would receive it.
func readSuiteRequest(t testing.TB, raw, authz string) (*http.Request, []byte) {
	t.Helper()
	head, body, _ := strings.Cut(raw, "\n\n")
	if authz != "" {
		head += "\nAuthorization: " + authz
	}
	wire := strings.ReplaceAll(head, "\n", "\r\n") + "\r\n\r\n" + body
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(wire)))
	if err != nil {
		t.Fatalf("reading request: %v", err)
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return r, b
}

// canonicalRequests returns the canonical requests Verify tries for r.
func canonicalRequests(t *testing.T, r *http.Request, body []byte) []string {
	t.Helper()
	s, err := parseSignature(r)
	if err != nil {
		t.Fatalf("parseSignature: %v", err)
	}
	payloads, _, err := payloadHashes(r, body, s.presigned)
	if err != nil {
		t.Fatalf("payloadHashes: %v", err)
	}
	headers, signed := canonicalHeaders(r, s.signedHeaders)
	c := canonical{method: r.Method, query: canonicalQuery(s.query, s.presigned), headers: headers, signedHeaders: signed}
	var out []string
	for _, p := range canonicalPaths(r.URL.EscapedPath()) {
		for _, h := range payloads {
			out = append(out, c.request(p, h))
		}
	}
	return out
}

func runSuite(t *testing.T, cases []suiteCase, region string, now time.Time) {
	v := &Verifier{
		Keys:   keyMap{suiteAKID: suiteSecret},
		Region: region,
		Now:    func() time.Time { return now },
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, body := readSuiteRequest(t, tc.req, tc.authz)
			if tc.creq != "" {
				if got := canonicalRequests(t, r, body); !slices.Contains(got, tc.creq) {
					t.Errorf("canonical requests\n%q\ndo not include\n%q", got, tc.creq)
				}
			}
			res, err := v.Verify(context.Background(), r, body)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !res.SignedAt.Equal(now) || res.Presigned || res.Scope.AccessKeyID != suiteAKID {
				t.Errorf("Result = %+v", res)
			}

			// The same request with the last signature digit changed fails.
			last := tc.authz[len(tc.authz)-1]
			bad := tc.authz[:len(tc.authz)-1] + map[bool]string{true: "0", false: "1"}[last != '0']
			r, body = readSuiteRequest(t, tc.req, bad)
			_, err = v.Verify(context.Background(), r, body)
			if k := kindOf(err); k != Mismatch {
				t.Errorf("tampered signature: got %v (%v), want Mismatch", k, err)
			}
		})
	}
}

func TestAWSSuite2015(t *testing.T) {
	runSuite(t, suite2015, "us-east-1", time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC))
}

func TestAWSSuite2011DateHeader(t *testing.T) {
	runSuite(t, suite2011, "us-east-1", time.Date(2011, 9, 9, 23, 36, 0, 0, time.UTC))
}

// kindOf returns the Kind of a verification error, 0 for nil, -1 for an
// error that is not an *Error.
func kindOf(err error) Kind {
	if err == nil {
		return 0
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return -1
}
