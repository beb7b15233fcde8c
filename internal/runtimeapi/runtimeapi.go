// Package runtimeapi serves the AWS Lambda Runtime API (2018-06-01) of one execution environment:
// the runtime inside the sandbox polls it for invocations and posts their results. nubis serves it
// from its own process on a listener opened inside the sandbox's network namespace, so the runtime
// reaches it at 127.0.0.1:9001 with no extra hop.
package runtimeapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MaxResponseBytes is Lambda's limit on a synchronous response payload.
const MaxResponseBytes = 6 << 20

// Invocation is one event handed to the runtime.
type Invocation struct {
	RequestID       string
	Payload         []byte
	Deadline        time.Time
	FunctionARN     string
	TraceID         string
	ClientContext   string
	CognitoIdentity string
}

// Result is what the runtime answered.
type Result struct {
	Payload []byte
	// ErrorType is set when the function failed: the Lambda-Runtime-Function-Error-Type header, or
	// the errorType of the body.
	ErrorType string
}

// Failed reports whether the invocation ended in a function error.
func (r Result) Failed() bool { return r.ErrorType != "" }

// ErrClosed is returned by Invoke after Close.
var ErrClosed = errors.New("runtimeapi: environment closed")

type call struct {
	inv  Invocation
	done chan Result
}

// Server is the Runtime API of one environment. It hands out one invocation at a time.
type Server struct {
	log     *slog.Logger
	http    *http.Server
	calls   chan *call
	ready   chan struct{}
	readyMu sync.Once
	initErr chan Result
	closed  chan struct{}
	close   sync.Once

	mu      sync.Mutex
	current *call
}

// New returns a Runtime API server with no invocation pending.
func New(log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{log: log, calls: make(chan *call), ready: make(chan struct{}),
		initErr: make(chan Result, 1), closed: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", s.next)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", s.response)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", s.invocationError)
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", s.initError)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "InvalidRequest", "Unknown Runtime API path "+r.Method+" "+r.URL.Path)
	})
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s
}

// Serve serves the API on l until Close.
func (s *Server) Serve(l net.Listener) error {
	err := s.http.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Ready is closed when the runtime first asks for an invocation: its initialisation is done.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// InitError delivers the error a runtime reports when its initialisation fails.
func (s *Server) InitError() <-chan Result { return s.initErr }

// Close stops the server; pending and later Invoke calls fail with ErrClosed.
func (s *Server) Close() {
	s.close.Do(func() {
		close(s.closed)
		s.http.Close()
	})
}

// Invoke hands inv to the runtime and waits for its result, for ctx to end, or for Close.
func (s *Server) Invoke(ctx context.Context, inv Invocation) (Result, error) {
	c := &call{inv: inv, done: make(chan Result, 1)}
	select {
	case s.calls <- c:
	case <-ctx.Done():
		return Result{}, ctx.Err()
	case <-s.closed:
		return Result{}, ErrClosed
	}
	select {
	case res := <-c.done:
		return res, nil
	case <-ctx.Done():
		return Result{}, ctx.Err()
	case <-s.closed:
		return Result{}, ErrClosed
	}
}

func (s *Server) next(w http.ResponseWriter, r *http.Request) {
	s.readyMu.Do(func() { close(s.ready) })
	var c *call
	select {
	case c = <-s.calls:
	case <-s.closed:
		return
	case <-r.Context().Done():
		return
	}
	if r.Context().Err() != nil {
		s.requeue(c) // the runtime gave up this poll; the next one gets the invocation
		return
	}
	s.mu.Lock()
	s.current = c
	s.mu.Unlock()
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Lambda-Runtime-Aws-Request-Id", c.inv.RequestID)
	h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(c.inv.Deadline.UnixMilli(), 10))
	h.Set("Lambda-Runtime-Invoked-Function-Arn", c.inv.FunctionARN)
	if c.inv.TraceID != "" {
		h.Set("Lambda-Runtime-Trace-Id", c.inv.TraceID)
	}
	if c.inv.ClientContext != "" {
		h.Set("Lambda-Runtime-Client-Context", c.inv.ClientContext)
	}
	if c.inv.CognitoIdentity != "" {
		h.Set("Lambda-Runtime-Cognito-Identity", c.inv.CognitoIdentity)
	}
	if _, err := w.Write(c.inv.Payload); err != nil {
		s.take(c.inv.RequestID)
		s.requeue(c)
	}
}

// requeue offers an invocation whose hand-out failed to the runtime's next poll.
func (s *Server) requeue(c *call) {
	go func() {
		select {
		case s.calls <- c:
		case <-s.closed:
		}
	}()
}

// take returns the pending call with the request id, and forgets it.
func (s *Server) take(id string) *call {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == nil || s.current.inv.RequestID != id {
		return nil
	}
	c := s.current
	s.current = nil
	return c
}

func (s *Server) response(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxResponseBytes+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidRequest", "could not read the response body")
		return
	}
	c := s.take(r.PathValue("id"))
	if c == nil {
		writeError(w, http.StatusBadRequest, "InvalidRequestID", "Invalid request ID")
		return
	}
	if len(body) > MaxResponseBytes {
		c.done <- Result{ErrorType: "Function.ResponseSizeTooLarge", Payload: errorPayload("Function.ResponseSizeTooLarge",
			"Response payload size exceeded maximum allowed payload size ("+strconv.Itoa(MaxResponseBytes)+" bytes).")}
		writeError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "response too large")
		return
	}
	c.done <- Result{Payload: body}
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, `{"status":"OK"}`)
}

// errorResult reads a runtime's error post: the type from the header, else from the body.
func errorResult(r *http.Request) Result {
	body, _ := io.ReadAll(io.LimitReader(r.Body, MaxResponseBytes))
	typ := r.Header.Get("Lambda-Runtime-Function-Error-Type")
	var parsed struct {
		ErrorType string `json:"errorType"`
	}
	if json.Unmarshal(body, &parsed) == nil && parsed.ErrorType != "" && typ == "" {
		typ = parsed.ErrorType
	}
	if typ == "" {
		typ = "Unhandled"
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		body = errorPayload(typ, "")
	}
	return Result{Payload: body, ErrorType: typ}
}

func (s *Server) invocationError(w http.ResponseWriter, r *http.Request) {
	res := errorResult(r)
	c := s.take(r.PathValue("id"))
	if c == nil {
		writeError(w, http.StatusBadRequest, "InvalidRequestID", "Invalid request ID")
		return
	}
	c.done <- res
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, `{"status":"OK"}`)
}

func (s *Server) initError(w http.ResponseWriter, r *http.Request) {
	res := errorResult(r)
	select {
	case s.initErr <- res:
	default:
	}
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, `{"status":"OK"}`)
}

func errorPayload(typ, msg string) []byte {
	b, _ := json.Marshal(map[string]string{"errorType": typ, "errorMessage": msg})
	return b
}

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(errorPayload(typ, msg))
}
