package imds

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestTokenFlow: PUT a token, then read with it, including when tokens are required.
func TestTokenFlow(t *testing.T) {
	h, _, _ := newTest(t, fixture(), Options{HttpTokens: "required"})

	w := do(h, http.MethodPut, TokenPath, HeaderTokenTTL, "21600")
	checkCommon(t, w)
	if w.Code != http.StatusOK {
		t.Fatalf("PUT: status %d", w.Code)
	}
	if got := w.Header().Get(HeaderTokenTTL); got != "21600" {
		t.Errorf("PUT echoes TTL %q, want 21600", got)
	}
	if got := w.Header().Get("Content-Type"); got != "text/plain" {
		t.Errorf("PUT Content-Type %q", got)
	}
	tok := w.Body.String()
	if tok == "" || strings.ContainsAny(tok, " \n\r=+/") {
		t.Fatalf("token %q is not a bare base64url string", tok)
	}

	r := do(h, http.MethodGet, "/latest/meta-data/instance-id", HeaderToken, tok)
	if r.Code != http.StatusOK || r.Body.String() != "i-0123456789abcdef0" {
		t.Fatalf("GET with token: %d %q", r.Code, r.Body.String())
	}
	if got := r.Header().Get(HeaderTokenTTL); got != "21600" {
		t.Errorf("GET reports remaining TTL %q, want 21600", got)
	}
	// The header name is case-insensitive on the wire.
	r = do(h, http.MethodGet, "/latest/meta-data/instance-id", "x-aws-ec2-metadata-token", tok)
	if r.Code != http.StatusOK {
		t.Errorf("lower-case header: %d", r.Code)
	}
}

// TestTokenRequirement: required vs optional, with no, good and bad tokens.
func TestTokenRequirement(t *testing.T) {
	good := token(t, must(newTest(t, fixture(), Options{})), "60")
	tests := []struct {
		name   string
		tokens string
		header []string
		code   int
	}{
		{"optional no token (IMDSv1)", "", nil, 200},
		{"optional explicit no token", "optional", nil, 200},
		{"optional good token", "optional", []string{HeaderToken, good}, 200},
		{"optional bad token", "optional", []string{HeaderToken, "garbage"}, 401},
		{"optional empty token", "optional", []string{HeaderToken, ""}, 401},
		{"required no token", "required", nil, 401},
		{"required good token", "required", []string{HeaderToken, good}, 200},
		{"required bad token", "required", []string{HeaderToken, good + "x"}, 401},
		{"required two tokens", "required", []string{HeaderToken, good, HeaderToken, good}, 401},
		{"unknown setting fails closed", "bogus", nil, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _, _ := newTest(t, fixture(), Options{HttpTokens: tt.tokens})
			for _, p := range []string{"/", "/latest/meta-data/instance-id", "/latest/meta-data/nope"} {
				w := do(h, http.MethodGet, p, tt.header...)
				checkCommon(t, w)
				want := tt.code
				if want == 200 && p == "/latest/meta-data/nope" {
					want = 404
				}
				if w.Code != want {
					t.Errorf("%s: status %d, want %d", p, w.Code, want)
				}
				if w.Code == 401 && w.Body.String() != string(errorPage(401)) {
					t.Errorf("%s: 401 body %q", p, w.Body.String())
				}
			}
		})
	}
}

func must(h http.Handler, _ *instance, _ *clock) http.Handler { return h }

// TestTokenExpiry: a token works until its TTL has passed, and reports what is left.
func TestTokenExpiry(t *testing.T) {
	h, _, c := newTest(t, fixture(), Options{HttpTokens: "required"})
	tok := token(t, h, "10")
	get := func() *httptestResult {
		w := do(h, http.MethodGet, "/latest/meta-data/ami-id", HeaderToken, tok)
		return &httptestResult{w.Code, w.Header().Get(HeaderTokenTTL)}
	}
	if r := get(); r.code != 200 || r.ttl != "10" {
		t.Fatalf("fresh: %+v", r)
	}
	c.advance(9 * time.Second)
	if r := get(); r.code != 200 || r.ttl != "1" {
		t.Fatalf("after 9s: %+v", r)
	}
	c.advance(time.Second)
	if r := get(); r.code != 401 {
		t.Fatalf("after 10s: %+v, want 401", r)
	}
	c.advance(-20 * time.Second) // a clock set back makes the token live again, not longer
	if r := get(); r.code != 200 || r.ttl != "20" {
		t.Fatalf("clock set back: %+v", r)
	}
}

type httptestResult struct {
	code int
	ttl  string
}

// TestTokenOtherInstance: a token of one instance is refused by another's handler, even with
// the same secret; and by the same instance id under another secret.
func TestTokenOtherInstance(t *testing.T) {
	a, _, _ := newTest(t, fixture(), Options{})
	other := fixture()
	other.InstanceID = "i-0fedcba9876543210"
	b, _, _ := newTest(t, other, Options{})
	tok := token(t, a, "60")
	if w := do(a, "GET", "/latest/meta-data/instance-id", HeaderToken, tok); w.Code != 200 {
		t.Fatalf("own instance: %d", w.Code)
	}
	if w := do(b, "GET", "/latest/meta-data/instance-id", HeaderToken, tok); w.Code != 401 {
		t.Errorf("other instance: %d, want 401", w.Code)
	}
	in := &instance{md: fixture()}
	c := NewHandler(Config{Source: in.source, Secret: []byte("another secret"), Now: func() time.Time { return t0 }})
	if w := do(c, "GET", "/latest/meta-data/instance-id", HeaderToken, tok); w.Code != 401 {
		t.Errorf("other secret: %d, want 401", w.Code)
	}
	// A nil secret is random, so two such handlers do not accept each other's tokens.
	d1 := NewHandler(Config{Source: in.source})
	d2 := NewHandler(Config{Source: in.source})
	if w := do(d2, "GET", "/", HeaderToken, token(t, d1, "60")); w.Code != 401 {
		t.Errorf("random secrets: %d, want 401", w.Code)
	}
}

// TestTokenTampered: flipping any bit of a token makes it invalid.
func TestTokenTampered(t *testing.T) {
	h, _, _ := newTest(t, fixture(), Options{})
	raw, err := base64.RawURLEncoding.DecodeString(token(t, h, "60"))
	if err != nil {
		t.Fatal(err)
	}
	hh := h.(*handler)
	for i := range raw {
		for bit := range 8 {
			b := append([]byte(nil), raw...)
			b[i] ^= 1 << bit
			if _, err := hh.verifyToken(base64.RawURLEncoding.EncodeToString(b), fixture().InstanceID); err == nil {
				t.Fatalf("byte %d bit %d flipped: accepted", i, bit)
			}
		}
	}
	for _, tok := range []string{"", "a", strings.Repeat("A", 55), strings.Repeat("A", 56), "!!!!"} {
		_, err := hh.verifyToken(tok, fixture().InstanceID)
		if !errors.Is(err, errTokenMalformed) && !errors.Is(err, errTokenForged) {
			t.Errorf("verifyToken(%q) = %v", tok, err)
		}
	}
}

// TestTokenRequest: the PUT's own rules (TTL, proxies, methods).
func TestTokenRequest(t *testing.T) {
	tests := []struct {
		name   string
		method string
		header []string
		code   int
	}{
		{"ttl 1", "PUT", []string{HeaderTokenTTL, "1"}, 200},
		{"ttl max", "PUT", []string{HeaderTokenTTL, "21600"}, 200},
		{"ttl leading zero", "PUT", []string{HeaderTokenTTL, "060"}, 200},
		{"ttl 0", "PUT", []string{HeaderTokenTTL, "0"}, 400},
		{"ttl 21601", "PUT", []string{HeaderTokenTTL, "21601"}, 400},
		{"ttl abc", "PUT", []string{HeaderTokenTTL, "abc"}, 400},
		{"ttl negative", "PUT", []string{HeaderTokenTTL, "-5"}, 400},
		{"ttl plus", "PUT", []string{HeaderTokenTTL, "+5"}, 400},
		{"ttl empty", "PUT", []string{HeaderTokenTTL, ""}, 400},
		{"ttl float", "PUT", []string{HeaderTokenTTL, "1.5"}, 400},
		{"ttl huge", "PUT", []string{HeaderTokenTTL, "99999999999999999999"}, 400},
		{"ttl twice", "PUT", []string{HeaderTokenTTL, "60", HeaderTokenTTL, "60"}, 400},
		{"ttl missing", "PUT", nil, 400},
		{"x-forwarded-for", "PUT", []string{HeaderTokenTTL, "60", "X-Forwarded-For", "10.0.0.1"}, 403},
		{"x-forwarded-for empty", "PUT", []string{HeaderTokenTTL, "60", "X-Forwarded-For", ""}, 403},
		{"x-forwarded-for bad ttl", "PUT", []string{"X-Forwarded-For", "10.0.0.1"}, 403},
		{"GET", "GET", []string{HeaderTokenTTL, "60"}, 405},
		{"HEAD", "HEAD", []string{HeaderTokenTTL, "60"}, 405},
		{"POST", "POST", []string{HeaderTokenTTL, "60"}, 405},
		{"DELETE", "DELETE", nil, 405},
		{"OPTIONS", "OPTIONS", nil, 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Tokens required: the PUT needs no token of its own.
			h, _, _ := newTest(t, fixture(), Options{HttpTokens: "required"})
			w := do(h, tt.method, TokenPath, tt.header...)
			checkCommon(t, w)
			if w.Code != tt.code {
				t.Fatalf("status %d, want %d; body %q", w.Code, tt.code, w.Body.String())
			}
			switch tt.code {
			case 200:
				if _, err := h.(*handler).verifyToken(w.Body.String(), fixture().InstanceID); err != nil {
					t.Errorf("issued token does not verify: %v", err)
				}
			case 405:
				if got := w.Header().Get("Allow"); got != "PUT" {
					t.Errorf("Allow %q, want PUT", got)
				}
				if w.Body.Len() != 0 {
					t.Errorf("405 body %q, want empty", w.Body.String())
				}
			default:
				if w.Body.String() != string(errorPage(tt.code)) {
					t.Errorf("body %q", w.Body.String())
				}
			}
		})
	}
}

// TestParseTTL covers the TTL parser directly.
func TestParseTTL(t *testing.T) {
	tests := []struct {
		in   []string
		want int
	}{
		{[]string{"1"}, 1},
		{[]string{"21600"}, 21600},
		{[]string{"000001"}, 1},
		{[]string{"0000001"}, 0},
		{[]string{" 1"}, 0},
		{[]string{"1 "}, 0},
		{[]string{"0x10"}, 0},
		{nil, 0},
		{[]string{"1", "2"}, 0},
	}
	for _, tt := range tests {
		got, err := parseTTL(tt.in)
		if tt.want == 0 {
			if !errors.Is(err, errBadTTL) {
				t.Errorf("parseTTL(%q) = %d, %v; want errBadTTL", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseTTL(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}
