package guestinit

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestInstanceConnectKeys(t *testing.T) {
	keys := map[string]string{"ec2-user": "ssh-ed25519 AAAA one\nssh-ed25519 BBBB two"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" {
			w.Write([]byte("tok"))
			return
		}
		if r.Header.Get("X-aws-ec2-metadata-token") != "tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		const prefix = "/latest/meta-data/managed-ssh-keys/active-keys/"
		if k, ok := keys[r.URL.Path[len(prefix):len(r.URL.Path)-1]]; ok {
			w.Write([]byte(k))
			return
		}
		w.WriteHeader(http.StatusNotFound)
	}))
	defer srv.Close()
	var out bytes.Buffer
	if err := instanceConnectKeys(context.Background(), srv.URL, "ec2-user", &out); err != nil || out.String() != keys["ec2-user"]+"\n" {
		t.Fatalf("ec2-user: %q %v", out.String(), err)
	}
	out.Reset()
	if err := instanceConnectKeys(context.Background(), srv.URL, "alice", &out); err != nil || out.Len() != 0 {
		t.Fatalf("a user without keys: %q %v", out.String(), err)
	}
	if err := instanceConnectKeys(context.Background(), srv.URL, "../x", &out); err == nil {
		t.Fatal("a bad user name was asked for")
	}
}
