package sigv4

import (
	"bytes"
	"strconv"
	"testing"
)

func TestCanonicalHelpers(t *testing.T) {
	for in, want := range map[string]string{
		"/":                                  "/",
		"/a%3Ab/c d/é~":                      "/a%253Ab/c%20d/%C3%A9~",
		"/-._~AZaz09":                        "/-._~AZaz09",
		"/2015-03-31/functions/arn%3Aaws%3A": "/2015-03-31/functions/arn%253Aaws%253A",
	} {
		if got := uriEncode(in, true); got != want {
			t.Errorf("uriEncode(%q) = %q, want %q", in, got, want)
		}
	}
	if got := uriEncode("a/b c+d", false); got != "a%2Fb%20c%2Bd" {
		t.Errorf("uriEncode query = %q", got)
	}
	for in, want := range map[string]string{
		"/":               "/",
		"//":              "/",
		"/a//b/":          "/a/b/",
		"/a/./b/../c":     "/a/c",
		"/a/..":           "/",
		"/../a":           "/a",
		"/a/b/":           "/a/b/",
		"/example1/../..": "/",
	} {
		if got := normalizePath(in); got != want {
			t.Errorf("normalizePath(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"  a   b  ": "a b",
		"a":         "a",
		"a  b c":    "a b c",
		"":          "",
		"   ":       "",
	} {
		if got := trimAll(in); got != want {
			t.Errorf("trimAll(%q) = %q, want %q", in, got, want)
		}
	}
	// Sorted after encoding: "a%2Fb" < "a-b" although "a-b" < "a/b".
	q := canonicalQuery(parseQuery("k=a-b&k=a/b&j=&i&X-Amz-Signature=s"), true)
	if want := "i=&j=&k=a%2Fb&k=a-b"; q != want {
		t.Errorf("canonicalQuery = %q, want %q", q, want)
	}
}

func TestKeyCacheBounded(t *testing.T) {
	c := keyCache{max: 4}
	s := Scope{Date: "20261125", Region: testRegion, Service: testService}
	first := c.get("secret-0", s)
	for i := range 10 {
		key := c.get("secret-"+strconv.Itoa(i), s)
		if want := deriveKey("secret-"+strconv.Itoa(i), s); !bytes.Equal(key, want) {
			t.Fatalf("cached key differs from derived key")
		}
	}
	if len(c.keys) > 4 {
		t.Errorf("cache holds %d keys, want at most 4", len(c.keys))
	}
	if !bytes.Equal(c.get("secret-0", s), first) {
		t.Errorf("key changed after eviction")
	}
}
