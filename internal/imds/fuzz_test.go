package imds

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// FuzzHandler throws arbitrary methods, paths and header values at the handler: it must never
// panic, always answer with one of the statuses IMDS uses and name itself EC2ws.
func FuzzHandler(f *testing.F) {
	seed := func(method, path, ttl, tok, xff string, required bool) {
		f.Add(method, path, ttl, tok, xff, required)
	}
	seed("GET", "/", "", "", "", false)
	seed("GET", "/latest/meta-data/", "", "", "", true)
	seed("HEAD", "/latest/meta-data/public-keys/0/openssh-key", "", "", "", false)
	seed("PUT", "/latest/api/token", "21600", "", "", false)
	seed("PUT", "/latest/api/token", "0", "", "", false)
	seed("PUT", "/latest/api/token", "60", "", "1.2.3.4", false)
	seed("GET", "/latest/api/token", "60", "", "", false)
	seed("GET", "/latest/dynamic/instance-identity/document", "", "AQAAAAAAAAAA", "", true)
	seed("GET", "/latest/meta-data//x/", "", "", "", false)
	seed("BREW", "*", "", "", "", false)
	seed("", "", "", "", "", false)
	seed("GET", "latest", "", "\x00", "", true)

	h, in, _ := newTest(f, fixture(), Options{InstanceMetadataTags: "enabled"})
	valid := map[int]bool{200: true, 400: true, 401: true, 403: true, 404: true, 405: true}

	f.Fuzz(func(t *testing.T, method, path, ttl, tok, xff string, required bool) {
		tokens := "optional"
		if required {
			tokens = "required"
		}
		in.set(func(in *instance) { in.opts.HttpTokens = tokens })
		// Built by hand: httptest.NewRequest panics on what the fuzzer makes, and the handler
		// must cope with whatever a server could hand it.
		r := &http.Request{Method: method, URL: &url.URL{Path: path}, Header: http.Header{}}
		if ttl != "" {
			r.Header.Set(HeaderTokenTTL, ttl)
		}
		if tok != "" {
			r.Header.Set(HeaderToken, tok)
		}
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		r = r.WithContext(t.Context())
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if !valid[w.Code] {
			t.Fatalf("%s %q: status %d", method, path, w.Code)
		}
		if w.Header().Get("Server") != "EC2ws" {
			t.Fatalf("%s %q: no Server header", method, path)
		}
		if w.Code == 200 && path == TokenPath {
			if _, err := h.(*handler).verifyToken(w.Body.String(), fixture().InstanceID); err != nil {
				t.Fatalf("issued token %q does not verify: %v", w.Body.String(), err)
			}
		}
	})
}

// FuzzVerifyToken checks that no input but an issued token verifies, and nothing panics.
func FuzzVerifyToken(f *testing.F) {
	h, _, _ := newTest(f, fixture(), Options{})
	good := token(f, h, "60")
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add("")
	f.Add("====")
	hh := h.(*handler)
	f.Fuzz(func(t *testing.T, tok string) {
		if _, err := hh.verifyToken(tok, fixture().InstanceID); err == nil && tok != good {
			t.Fatalf("%q verified but was never issued", tok)
		}
	})
}
