package imds

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// t0 is the fake clock's start.
var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// fixture is a fully populated instance.
func fixture() Metadata {
	return Metadata{
		AccountID:        "123456789012",
		Region:           "us-east-1",
		AvailabilityZone: "us-east-1a",
		InstanceID:       "i-0123456789abcdef0",
		InstanceType:     "t3.micro",
		ImageID:          "ami-0abcdef1234567890",
		ReservationID:    "r-0123456789abcdef0",
		Architecture:     "x86_64",
		LocalIPv4:        "172.31.5.9",
		PublicIPv4:       "203.0.113.10",
		LocalHostname:    "ip-172-31-5-9.ec2.internal",
		PublicHostname:   "ec2-203-0-113-10.compute-1.amazonaws.com",
		MAC:              "0a:1b:2c:3d:4e:5f",
		VPCID:            "vpc-0123456789abcdef0",
		SubnetID:         "subnet-0123456789abcdef0",
		VPCCIDR:          "172.31.0.0/16",
		SubnetCIDR:       "172.31.0.0/20",
		SecurityGroups:   []string{"default", "web"},
		SecurityGroupIDs: []string{"sg-0123456789abcdef0", "sg-0fedcba9876543210"},
		KeyName:          "my-key",
		PublicKey:        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx1Y2t5IG51bWJlcnMgYXJlIG5vdCBrZXlz my-key",
		BlockDevices:     map[string]string{"ami": "/dev/xvda", "root": "/dev/xvda"},
		UserData:         []byte("#!/bin/sh\necho hello\n"),
		// Not UTC and not whole seconds: pendingTime must be both.
		LaunchTime: time.Date(2026, 1, 1, 1, 2, 3, 456789, time.FixedZone("CET", 3600)),
		Tags:       map[string]string{"Name": "web-1", "env": "prod", "empty": "", "has space": "x", "a/b": "y", "_index": "z"},
	}
}

// instance is a Source whose answer a test can change between requests.
type instance struct {
	mu   sync.Mutex
	md   Metadata
	opts Options
	err  error
}

func (in *instance) source(context.Context) (Metadata, Options, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.md, in.opts, in.err
}

func (in *instance) set(f func(*instance)) {
	in.mu.Lock()
	defer in.mu.Unlock()
	f(in)
}

// clock is a fake Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// newTest returns a handler serving md with opts, its source and its clock. All test handlers
// share testSecret, so tokens are refused only for the reasons under test.
func newTest(t testing.TB, md Metadata, opts Options) (http.Handler, *instance, *clock) {
	t.Helper()
	in := &instance{md: md, opts: opts}
	c := &clock{t: t0}
	h := NewHandler(Config{Source: in.source, Secret: testSecret, Now: c.now})
	return h, in, c
}

// do sends one request; headers are name, value pairs.
func do(h http.Handler, method, target string, headers ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "http://169.254.169.254"+target, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// token gets a session token with the given TTL, failing the test when it cannot.
func token(t testing.TB, h http.Handler, ttl string) string {
	t.Helper()
	w := do(h, http.MethodPut, TokenPath, HeaderTokenTTL, ttl)
	if w.Code != http.StatusOK {
		t.Fatalf("PUT %s: status %d, body %q", TokenPath, w.Code, w.Body.String())
	}
	return w.Body.String()
}

// checkCommon checks what every response carries.
func checkCommon(t testing.TB, w *httptest.ResponseRecorder) {
	t.Helper()
	if got := w.Header().Get("Server"); got != "EC2ws" {
		t.Errorf("Server = %q, want EC2ws", got)
	}
	if got := w.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
}
