// Package servertest starts a real nubis server in-process for tests and benchmarks, and gives
// aws-sdk-go-v2 clients that are configured to call it with the account's credentials.
package servertest

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/nubis/nubis/internal/identity"
	"github.com/nubis/nubis/internal/server"
)

// Server is a running in-process nubis.
type Server struct {
	*server.Server
	DataDir string
	Key     identity.AccessKey
	stop    context.CancelFunc
	done    chan error
}

// Start runs a server on a free loopback port with a new data dir (or dataDir, if given, to test
// restarts), and stops it when the test ends. Logs go to the test log when NUBIS_TEST_LOG is set.
func Start(tb testing.TB, dataDir string) *Server {
	tb.Helper()
	return StartConfig(tb, server.Config{DataDir: dataDir})
}

// StartConfig is Start with more of the server's settings; Listen and Log are set by the harness.
func StartConfig(tb testing.TB, cfg server.Config) *Server {
	tb.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = tb.TempDir()
	}
	dataDir := cfg.DataDir
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("NUBIS_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cfg.Listen, cfg.Log = "127.0.0.1:0", log
	srv, err := server.New(ctx, cfg)
	if err != nil {
		cancel()
		tb.Fatalf("start nubis: %v", err)
	}
	key, err := srv.Identity().AdminKey(ctx)
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	s := &Server{Server: srv, DataDir: dataDir, Key: key, stop: cancel, done: make(chan error, 1)}
	go func() { s.done <- srv.Run(ctx) }()
	tb.Cleanup(func() { s.Stop(tb) })
	return s
}

// Stop stops the server gracefully and fails the test if it did not stop cleanly. It is safe to
// call more than once.
func (s *Server) Stop(tb testing.TB) {
	if s.stop == nil {
		return
	}
	s.stop()
	s.stop = nil
	select {
	case err := <-s.done:
		if err != nil {
			tb.Errorf("nubis stopped with an error: %v", err)
		}
	case <-time.After(30 * time.Second):
		tb.Errorf("nubis did not stop within 30 s")
	}
}

// Config returns an SDK configuration that calls this server with the given credentials (the
// server's admin key when creds is nil).
func (s *Server) Config(tb testing.TB, creds aws.CredentialsProvider) aws.Config {
	tb.Helper()
	if creds == nil {
		creds = credentials.NewStaticCredentialsProvider(s.Key.ID, s.Key.Secret, "")
	}
	// Built by hand rather than with config.LoadDefaultConfig, so that no AWS_* variable or
	// ~/.aws file of the machine running the tests changes what they do.
	return aws.Config{
		Region:           server.DefaultRegion,
		Credentials:      creds,
		BaseEndpoint:     aws.String(s.Endpoint()),
		RetryMaxAttempts: 1,
		HTTPClient:       HTTPClient(),
	}
}

// HTTPClient is the HTTP client for the SDK's clients in tests, with the work-around below.
func HTTPClient() *http.Client {
	return &http.Client{Transport: plainBodyTransport{}, Timeout: 30 * time.Second}
}

// plainBodyTransport works around a race in the SDK (smithy-go 1.28): after the response arrives
// the SDK closes the request body, whose WriteTo then returns io.EOF; when that happens before
// net/http's final check that the body was sent, net/http takes it for a write error and closes
// the connection while the response is still being read ("use of closed network connection").
// Large responses from a fast local server fail a few percent of the time. Hiding WriteTo from
// net/http avoids it; the request is otherwise sent exactly as the SDK built and signed it.
type plainBodyTransport struct{}

func (plainBodyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r = r.Clone(r.Context())
		r.Body = struct{ io.ReadCloser }{r.Body}
	}
	return http.DefaultTransport.RoundTrip(r)
}
