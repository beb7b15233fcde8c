// Package server builds nubis from its parts (store, identity, services), serves the AWS API and the
// health endpoint over HTTP, and runs until it is told to stop.
package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nubis/nubis/internal/apigw"
	"github.com/nubis/nubis/internal/apigw/execute"
	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/ec2"
	"github.com/nubis/nubis/internal/identity"
	"github.com/nubis/nubis/internal/image"
	"github.com/nubis/nubis/internal/lambda"
	"github.com/nubis/nubis/internal/lambdaurl"
	"github.com/nubis/nubis/internal/logs"
	"github.com/nubis/nubis/internal/machine"
	"github.com/nubis/nubis/internal/machine/container"
	"github.com/nubis/nubis/internal/sandbox"
	"github.com/nubis/nubis/internal/sandbox/runc"
	"github.com/nubis/nubis/internal/sigv4"
	"github.com/nubis/nubis/internal/store"
	"github.com/nubis/nubis/internal/store/sqlite"
	"github.com/nubis/nubis/internal/sts"
	"github.com/nubis/nubis/internal/volume"
)

// Config is how a server is set up.
type Config struct {
	// Listen is the TCP address of the API ("127.0.0.1:4566"; port 0 picks a free port).
	Listen string
	// DataDir holds the store and the lock.
	DataDir string
	// Region is the one AWS region this server is.
	Region string
	// Log is the logger; components get children of it.
	Log *slog.Logger
	// ImageCache holds images built from Debian packages (default /var/cache/nubis/images).
	ImageCache string
	// KeepWarm is how long an idle Lambda execution environment is kept (default 10 minutes).
	KeepWarm time.Duration
	// EventRetryDelays are the waits before the retries of a failed Event invocation (default
	// 1 and 2 minutes, as on AWS).
	EventRetryDelays []time.Duration
	// LambdaConcurrency is the account's Lambda concurrency limit (default 1,000).
	LambdaConcurrency int
	// Runtime is the OCI runtime binary that runs sandboxes (default runc).
	Runtime string
	// ShutdownTimeout bounds how long a stop waits for in-flight requests (default 30 s).
	ShutdownTimeout time.Duration
	// MaxInstances is the account's limit on EC2 instances that are not terminated (default 32).
	MaxInstances int
	// Zones are the region's Availability Zones (default <region>a, b and c).
	Zones []string
	// TerminatedTTL is how long terminated instances stay visible (default one hour).
	TerminatedTTL time.Duration
	// InstanceConnectTTL is how long a key EC2 Instance Connect pushed is valid (default 60 s, as
	// on AWS; tests shorten it).
	InstanceConnectTTL time.Duration
	// InitBinary is the init of instances (default: this executable, which links it).
	InitBinary string
}

// DefaultListen is the default API address: LocalStack's port, which AWS tooling users know.
const DefaultListen = "127.0.0.1:4566"

// DefaultRegion is the region a server is unless told otherwise.
const DefaultRegion = "us-east-1"

// DefaultDataDir is /var/lib/nubis for root, else $XDG_DATA_HOME/nubis (~/.local/share/nubis).
func DefaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/nubis"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "nubis")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "share", "nubis")
}

// Server is a running nubis.
type Server struct {
	cfg      Config
	log      *slog.Logger
	lock     *dataDirLock
	store    store.Store
	ident    *identity.Identity
	verifier *sigv4.Verifier
	services map[string]awsproto.Service
	lambda   *lambda.Service
	ec2      *ec2.Service
	execute  *execute.Handler
	// lambdaURLs serves function URLs.
	lambdaURLs *lambdaurl.Handler
	logs       *logs.Store
	logsSvc    *logs.Service
	listener   net.Listener
	http       *http.Server
}

// OpenStore opens the store of a data dir, creating the dir (mode 0700) if needed.
func OpenStore(ctx context.Context, dataDir string, log *slog.Logger) (store.Store, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	return sqlite.Open(ctx, filepath.Join(dataDir, "nubis.db"), log)
}

// New sets a server up: it takes the data dir's lock, opens the store (applying migrations),
// loads or creates the account, and listens. It does not serve until Run.
func New(ctx context.Context, cfg Config) (_ *Server, err error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	if abs, err := filepath.Abs(cfg.DataDir); err == nil {
		cfg.DataDir = abs
	}
	s := &Server{cfg: cfg, log: cfg.Log.With("component", "server")}
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if s.lock, err = lockDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	undo = append(undo, s.lock.release)
	if s.store, err = OpenStore(ctx, cfg.DataDir, cfg.Log.With("component", "store")); err != nil {
		return nil, err
	}
	undo = append(undo, func() { s.store.Close() })
	if s.ident, err = identity.Open(ctx, s.store); err != nil {
		return nil, err
	}
	s.verifier = &sigv4.Verifier{Keys: s.ident, Region: cfg.Region}
	if s.listener, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	undo = append(undo, func() { s.listener.Close() })
	s.logs = &logs.Store{Dir: filepath.Join(cfg.DataDir, "logs")}
	s.logsSvc = logs.New(s.logs, cfg.Log.With("component", "logs"))
	lcfg := lambda.Config{Store: s.store, DataDir: cfg.DataDir, Region: cfg.Region, Logs: s.logs, FunctionURL: s.functionURL,
		Presign: s.presign, Log: cfg.Log.With("component", "lambda"), KeepWarm: cfg.KeepWarm,
		AccountConcurrency: cfg.LambdaConcurrency, EventRetryDelays: cfg.EventRetryDelays}
	if drv, why := sandboxDriver(ctx, cfg); drv != nil {
		lcfg.Sandboxes = drv
		lcfg.Images = &image.Builder{CacheDir: cfg.ImageCache, Log: cfg.Log.With("component", "image")}
	} else {
		s.log.Warn("functions cannot run on this host: "+why, "component", "lambda")
	}
	s.lambda = lambda.New(lcfg)
	if err := s.lambda.Start(ctx); err != nil {
		return nil, err
	}
	undo = append(undo, s.lambda.Close)
	apis := apigw.New(apigw.Config{Store: s.store, Region: cfg.Region, Endpoint: s.Endpoint,
		Log: cfg.Log.With("component", "apigateway")})
	s.execute = execute.New(execute.Config{APIs: apis, Functions: s.lambda, Region: cfg.Region,
		Account: s.ident.Account().ID, Verify: s.verifyExecuteAPI, Log: cfg.Log.With("component", "execute-api")})
	s.lambdaURLs = lambdaurl.New(lambdaurl.Config{Functions: s.lambda, Region: cfg.Region, Verify: s.verifyURLCaller,
		Log: cfg.Log.With("component", "lambda-url")})
	s.ec2 = ec2.New(s.store, cfg.Region, cfg.Log.With("component", "ec2"))
	if len(cfg.Zones) > 0 {
		if err := s.ec2.SetZones(cfg.Zones); err != nil {
			return nil, err
		}
	}
	vols := &volume.Store{Dir: filepath.Join(cfg.DataDir, "instances", "volumes"), Log: cfg.Log.With("component", "volumes")}
	if drv, why := machineDriver(ctx, cfg, vols); drv != nil {
		s.ec2.EnableInstances(ec2.InstancesConfig{Machines: drv, MaxInstances: cfg.MaxInstances, TerminatedTTL: cfg.TerminatedTTL,
			ImageDir: filepath.Join(cfg.DataDir, "instances", "images"),
			Volumes:  vols,
			Images:   &image.Builder{CacheDir: cfg.ImageCache, Log: cfg.Log.With("component", "image")}})
	} else {
		s.ec2.DisableInstances(why)
		s.log.Warn("instances cannot run on this host: "+why, "component", "ec2")
	}
	s.ec2.SetInstanceConnectTTL(cfg.InstanceConnectTTL)
	if err := s.ec2.Start(ctx); err != nil {
		return nil, err
	}
	undo = append(undo, s.ec2.Close)
	s.services = map[string]awsproto.Service{}
	for _, svc := range []awsproto.Service{
		s.ec2.API(),
		sts.API(cfg.Log.With("component", "sts")),
		s.ec2.InstanceConnectAPI(cfg.Log.With("component", "ec2-instance-connect")),
		s.lambda.API(),
		apis.API(),
		s.logsSvc.API(),
	} {
		s.services[svc.SigningName()] = svc
	}
	s.http = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// functionURL is the URL of the function URL with an id: its host names it, as on AWS, at this
// server's port (*.localhost resolves to the loopback in browsers and curl; other clients use the
// path form, /_aws/lambda-url/<id>/).
func (s *Server) functionURL(id string) string {
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(s.Endpoint(), "http://"))
	return "http://" + net.JoinHostPort(lambdaurl.Host(id, s.cfg.Region), port) + "/"
}

// verifyURLCaller checks the signature of a request to an AWS_IAM function URL (service lambda)
// and says who made it: the account's root user, the one identity nubis has.
func (s *Server) verifyURLCaller(r *http.Request, body []byte) (lambdaurl.Caller, error) {
	res, err := s.verifyFor(r, body, "lambda")
	if err != nil {
		return lambdaurl.Caller{}, err
	}
	acct := s.ident.Account().ID
	return lambdaurl.Caller{AccessKey: res.Scope.AccessKeyID, AccountID: acct, CallerID: acct,
		UserARN: "arn:aws:iam::" + acct + ":root", UserID: acct}, nil
}

// Endpoint is the URL clients use to reach the API.
func (s *Server) Endpoint() string { return endpointURL(s.listener.Addr()) }

// Identity returns the account and its keys.
func (s *Server) Identity() *identity.Identity { return s.ident }

// Run serves until ctx is done, then stops gracefully: it finishes in-flight requests (up to the
// shutdown timeout), closes the store and releases the data dir. It returns nil after a clean stop.
func (s *Server) Run(ctx context.Context) error {
	info := RuntimeInfo{PID: os.Getpid(), Endpoint: s.Endpoint(), Region: s.cfg.Region}
	if err := writeRuntimeInfo(s.cfg.DataDir, info); err != nil {
		s.close()
		return fmt.Errorf("write runtime info: %w", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.listener) }()
	janitor, stopJanitor := context.WithCancel(context.Background())
	defer stopJanitor()
	go s.logsSvc.Run(janitor) // expired log data goes
	s.log.Info("nubis is serving", "endpoint", info.Endpoint, "region", s.cfg.Region,
		"account", s.ident.Account().ID, "data_dir", s.cfg.DataDir)
	var serveErr error
	select {
	case serveErr = <-errc:
	case <-ctx.Done():
		s.log.Info("stopping: finishing in-flight requests")
		sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		serveErr = s.http.Shutdown(sctx)
		cancel()
		<-errc
	}
	os.Remove(filepath.Join(s.cfg.DataDir, runtimeFile))
	closeErr := s.close()
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	if err := errors.Join(serveErr, closeErr); err != nil {
		return err
	}
	s.log.Info("stopped")
	return nil
}

func (s *Server) close() error {
	s.ec2.Close()
	s.lambda.Close()
	err := s.store.Close()
	s.lock.release()
	return err
}

// presign makes a presigned GET URL of this server for path, signed with the admin key, as the
// Lambda service hands out for code downloads.
func (s *Server) presign(path string, expires time.Duration) (string, error) {
	key, err := s.ident.AdminKey(context.Background())
	if err != nil {
		return "", err
	}
	u, err := url.Parse(s.Endpoint() + path)
	if err != nil {
		return "", err
	}
	signed, err := sigv4.Presign(u, http.MethodGet, sigv4.Scope{AccessKeyID: key.ID, Region: s.cfg.Region, Service: "lambda"},
		key.Secret, time.Now(), expires)
	if err != nil {
		return "", err
	}
	return signed.String(), nil
}

// AdminKey returns the admin access key of the account kept in dataDir, creating the account if the
// data dir is new. It can run beside a server on the same data dir.
func AdminKey(ctx context.Context, dataDir string) (identity.AccessKey, error) {
	st, err := OpenStore(ctx, dataDir, nil)
	if err != nil {
		return identity.AccessKey{}, err
	}
	defer st.Close()
	ident, err := identity.Open(ctx, st)
	if err != nil {
		return identity.AccessKey{}, err
	}
	return ident.AdminKey(ctx)
}

// sandboxDriver returns the OCI runtime driver for Lambda environments, or nil and the reason
// when this host cannot run sandboxes.
func sandboxDriver(ctx context.Context, cfg Config) (sandbox.Driver, string) {
	if os.Geteuid() != 0 {
		return nil, "sandboxes need nubis to run as root"
	}
	bin := cfg.Runtime
	if bin == "" {
		bin = "runc"
	}
	if _, err := exec.LookPath(bin); err != nil {
		if _, err2 := os.Stat("/usr/sbin/" + bin); err2 != nil {
			return nil, fmt.Sprintf("the OCI runtime %q is not installed (make deps installs runc)", bin)
		}
	}
	drv, err := runc.New(ctx, runc.Config{Runtime: cfg.Runtime, StateDir: filepath.Join(cfg.DataDir, "sandboxes"),
		Log: cfg.Log.With("component", "sandbox")})
	if err != nil {
		return nil, err.Error()
	}
	return drv, ""
}

// machineDriver returns the driver that runs EC2 instances as system containers, or nil and the
// reason when this host cannot.
func machineDriver(ctx context.Context, cfg Config, vols *volume.Store) (machine.Driver, string) {
	if os.Geteuid() != 0 {
		return nil, "instances need nubis to run as root"
	}
	if _, err := exec.LookPath("runc"); err != nil {
		if _, err2 := os.Stat("/usr/sbin/runc"); err2 != nil {
			return nil, "runc is not installed (make deps installs it)"
		}
	}
	dir := filepath.Join(cfg.DataDir, "instances")
	sb, err := runc.New(ctx, runc.Config{StateDir: filepath.Join(dir, "sandboxes"), CgroupParent: "nubis-instances",
		Log: cfg.Log.With("component", "instances")})
	if err != nil {
		return nil, err.Error()
	}
	sum := sha256.Sum256([]byte(cfg.DataDir))
	drv, err := container.New(container.Config{Dir: filepath.Join(dir, "machines"), Sandboxes: sb,
		NetNSDir: filepath.Join("/run/nubis", "instances-"+hex.EncodeToString(sum[:6])), InitBinary: cfg.InitBinary,
		HostTable: "nubis-" + hex.EncodeToString(sum[:6]), Volumes: vols,
		Log: cfg.Log.With("component", "instances")})
	if err != nil {
		return nil, err.Error()
	}
	return drv, ""
}

// verifyExecuteAPI checks the SigV4 signature of a request to an AWS_IAM route: signed with this
// server's credentials for the execute-api service.
func (s *Server) verifyExecuteAPI(r *http.Request, body []byte) error {
	_, err := s.verifyFor(r, body, "execute-api")
	return err
}

// verifyFor checks a request's SigV4 signature and that it was made for service.
func (s *Server) verifyFor(r *http.Request, body []byte, service string) (*sigv4.Result, error) {
	res, err := s.verifier.Verify(r.Context(), r, body)
	if err != nil {
		return nil, err
	}
	if res.Scope.Service != service {
		return nil, fmt.Errorf("signed for %s, not %s", res.Scope.Service, service)
	}
	return res, nil
}
