package runtimeapi

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func start(t *testing.T) (*Server, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(nil)
	go s.Serve(l)
	t.Cleanup(s.Close)
	return s, "http://" + l.Addr().String() + "/2018-06-01/runtime"
}

func post(t *testing.T, url, body string, h http.Header) int {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// runtime plays a runtime: it takes one invocation and answers with answer.
func runtime(t *testing.T, base string, answer func(id string, payload []byte, h http.Header)) {
	resp, err := http.Get(base + "/invocation/next")
	if err != nil {
		t.Error(err)
		return
	}
	payload, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	answer(resp.Header.Get("Lambda-Runtime-Aws-Request-Id"), payload, resp.Header)
}

func TestInvokeResponse(t *testing.T) {
	s, base := start(t)
	deadline := time.Now().Add(3 * time.Second).Truncate(time.Millisecond)
	go runtime(t, base, func(id string, payload []byte, h http.Header) {
		if string(payload) != `{"a":1}` || h.Get("Lambda-Runtime-Deadline-Ms") == "" || h.Get("Lambda-Runtime-Invoked-Function-Arn") != "arn:f" {
			t.Errorf("next: %s %v", payload, h)
		}
		if code := post(t, base+"/invocation/other/response", "x", nil); code != 400 {
			t.Errorf("response for an unknown id: %d", code)
		}
		if code := post(t, base+"/invocation/"+id+"/response", `{"ok":true}`, nil); code != 202 {
			t.Errorf("response: %d", code)
		}
	})
	res, err := s.Invoke(context.Background(), Invocation{RequestID: "r1", Payload: []byte(`{"a":1}`), Deadline: deadline, FunctionARN: "arn:f"})
	if err != nil || res.Failed() || string(res.Payload) != `{"ok":true}` {
		t.Fatalf("%+v %v", res, err)
	}
	select {
	case <-s.Ready():
	default:
		t.Fatal("not ready after the first /next")
	}
}

func TestInvokeErrorAndInitError(t *testing.T) {
	s, base := start(t)
	go runtime(t, base, func(id string, _ []byte, _ http.Header) {
		post(t, base+"/invocation/"+id+"/error", `{"errorMessage":"boom","errorType":"ValueError","stackTrace":[]}`,
			http.Header{"Lambda-Runtime-Function-Error-Type": {"Unhandled"}})
	})
	res, err := s.Invoke(context.Background(), Invocation{RequestID: "r2", Payload: []byte("{}")})
	if err != nil || res.ErrorType != "Unhandled" || !strings.Contains(string(res.Payload), "boom") {
		t.Fatalf("%+v %v", res, err)
	}
	post(t, base+"/init/error", `{"errorMessage":"no module","errorType":"Runtime.ImportModuleError"}`, nil)
	select {
	case r := <-s.InitError():
		if r.ErrorType != "Runtime.ImportModuleError" {
			t.Fatalf("%+v", r)
		}
	case <-time.After(time.Second):
		t.Fatal("no init error")
	}
}

func TestInvokeCancelAndClose(t *testing.T) {
	s, _ := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Invoke(ctx, Invocation{RequestID: "r3"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("no runtime polling: %v", err)
	}
	s.Close()
	if _, err := s.Invoke(context.Background(), Invocation{RequestID: "r4"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}
