// Package lambda is nubis's AWS Lambda service: the Lambda REST-JSON API (functions, versions,
// aliases, concurrency, tags) and the state behind it, kept in the store under
// "lambda/<account>/<region>/" with code zips as content-addressed files.
package lambda

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/image"
	"github.com/nubis/nubis/internal/logs"
	"github.com/nubis/nubis/internal/netns"
	"github.com/nubis/nubis/internal/sandbox"
	"github.com/nubis/nubis/internal/store"
	"github.com/nubis/nubis/runtimes"
)

// Config is how the Lambda service is set up.
type Config struct {
	Store store.Store
	// DataDir is where code zips are kept (<DataDir>/code).
	DataDir string
	Region  string
	// Logs receives the functions' logs (CloudWatch Logs); default <DataDir>/logs.
	Logs *logs.Store
	// FunctionURL renders the URL of the function URL with an id (FunctionUrl).
	FunctionURL func(id string) string
	// AccountConcurrency is the account's concurrency limit (AWS's default is 1,000).
	AccountConcurrency int
	// Presign returns a presigned URL for a path of this server (for GetFunction's Code.Location).
	Presign func(path string, expires time.Duration) (string, error)
	Log     *slog.Logger
	// RuntimeDir is where the runtime clients are installed (<DataDir>/lambda/runtime); set by New.
	RuntimeDir string

	// Sandboxes runs execution environments; nil when this host cannot (not root, no runc):
	// then functions can be managed but Invoke answers ServiceException.
	Sandboxes sandbox.Driver
	// Images builds the runtime image (required with Sandboxes).
	Images *image.Builder
	// NetnsDir holds the environments' network namespaces (default /run/nubis/netns-<hash of DataDir>).
	NetnsDir string
	// KeepWarm is how long an idle environment is kept before it is reclaimed (default 10 min).
	KeepWarm time.Duration
	// EventRetryDelays are the waits before each retry of a failed Event invocation (default
	// 1 and 2 minutes: two retries, as on AWS).
	EventRetryDelays []time.Duration
}

// Service holds Lambda's state and answers its API.
type Service struct {
	cfg   Config
	store store.Store
	code  codeStore
	log   *slog.Logger
	now   func() time.Time
	// prepare runs the asynchronous part of creating or updating a function; wg lets Close wait.
	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool

	pool    *pool
	kick    chan struct{}
	stopBg  context.CancelFunc
	imageMu sync.Mutex
	rootfs  string // the runtime image, once built
	imageID string
}

// New returns the Lambda service.
func New(cfg Config) *Service {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.AccountConcurrency == 0 {
		cfg.AccountConcurrency = 1000
	}
	if cfg.NetnsDir == "" {
		// Under /run (namespaces do not outlive a reboot), named by the data dir: runc refuses
		// a namespace path with a comma, which a data dir may have.
		sum := sha256.Sum256([]byte(cfg.DataDir))
		cfg.NetnsDir = filepath.Join("/run/nubis", "netns-"+hex.EncodeToString(sum[:6]))
	}
	if cfg.EventRetryDelays == nil {
		cfg.EventRetryDelays = defaultRetryDelays
	}
	if cfg.KeepWarm == 0 {
		cfg.KeepWarm = 10 * time.Minute
	}
	cfg.RuntimeDir = filepath.Join(cfg.DataDir, "lambda", "runtime")
	if cfg.FunctionURL == nil {
		cfg.FunctionURL = func(id string) string { return "http://" + id + ".lambda-url." + cfg.Region + ".localhost/" }
	}
	if cfg.Logs == nil {
		cfg.Logs = &logs.Store{Dir: filepath.Join(cfg.DataDir, "logs")}
	}
	s := &Service{cfg: cfg, store: cfg.Store, code: codeStore{dir: filepath.Join(cfg.DataDir, "lambda", "code")},
		log: cfg.Log, now: time.Now, kick: make(chan struct{}, 1)}
	s.pool = newPool(s)
	return s
}

// API returns the Lambda REST-JSON API for the server to route to.
func (s *Service) API() awsproto.Service {
	api := awsproto.NewRESTJSONService("lambda", true, s.log,
		"/2015-03-31/", "/2016-08-19/", "/2017-03-31/", "/2017-10-31/", "/2018-10-31/", "/2019-09-25/",
		"/2019-09-30/", "/2020-04-22/", "/2020-06-30/", "/2021-10-31/", codePath)
	api.Handle("POST /2015-03-31/functions", "CreateFunction", s.createFunction)
	api.Handle("GET /2015-03-31/functions/{$}", "ListFunctions", s.listFunctions)
	api.Handle("GET /2015-03-31/functions", "ListFunctions", s.listFunctions)
	api.Handle("GET /2015-03-31/functions/{name}", "GetFunction", s.getFunction)
	api.Handle("GET /2015-03-31/functions/{name}/configuration", "GetFunctionConfiguration", s.getFunctionConfiguration)
	api.Handle("PUT /2015-03-31/functions/{name}/code", "UpdateFunctionCode", s.updateFunctionCode)
	api.Handle("PUT /2015-03-31/functions/{name}/configuration", "UpdateFunctionConfiguration", s.updateFunctionConfiguration)
	api.Handle("DELETE /2015-03-31/functions/{name}", "DeleteFunction", s.deleteFunction)
	api.Handle("POST /2015-03-31/functions/{name}/versions", "PublishVersion", s.publishVersion)
	api.Handle("GET /2015-03-31/functions/{name}/versions", "ListVersionsByFunction", s.listVersions)
	api.Handle("POST /2015-03-31/functions/{name}/aliases", "CreateAlias", s.createAlias)
	api.Handle("GET /2015-03-31/functions/{name}/aliases", "ListAliases", s.listAliases)
	api.Handle("GET /2015-03-31/functions/{name}/aliases/{alias}", "GetAlias", s.getAlias)
	api.Handle("PUT /2015-03-31/functions/{name}/aliases/{alias}", "UpdateAlias", s.updateAlias)
	api.Handle("DELETE /2015-03-31/functions/{name}/aliases/{alias}", "DeleteAlias", s.deleteAlias)
	api.Handle("PUT /2017-10-31/functions/{name}/concurrency", "PutFunctionConcurrency", s.putConcurrency)
	api.Handle("GET /2019-09-30/functions/{name}/concurrency", "GetFunctionConcurrency", s.getConcurrency)
	api.Handle("DELETE /2017-10-31/functions/{name}/concurrency", "DeleteFunctionConcurrency", s.deleteConcurrency)
	api.Handle("POST /2017-03-31/tags/{arn}", "TagResource", s.tagResource)
	api.Handle("DELETE /2017-03-31/tags/{arn}", "UntagResource", s.untagResource)
	api.Handle("GET /2017-03-31/tags/{arn}", "ListTags", s.listTags)
	api.Handle("POST /2015-03-31/functions/{name}/invocations", "Invoke", s.invoke)
	api.Handle("POST /2015-03-31/functions/{name}/policy", "AddPermission", s.addPermission)
	api.Handle("DELETE /2015-03-31/functions/{name}/policy/{sid}", "RemovePermission", s.removePermission)
	api.Handle("GET /2015-03-31/functions/{name}/policy", "GetPolicy", s.getPolicy)
	api.Handle("GET "+codePath+"{sha}", "DownloadCode", s.downloadCode)
	api.Handle("POST /2018-10-31/layers/{layer}/versions", "PublishLayerVersion", s.publishLayerVersion)
	api.Handle("GET /2018-10-31/layers/{layer}/versions", "ListLayerVersions", s.listLayerVersions)
	api.Handle("GET /2018-10-31/layers/{layer}/versions/{version}", "GetLayerVersion", s.getLayerVersion)
	api.Handle("DELETE /2018-10-31/layers/{layer}/versions/{version}", "DeleteLayerVersion", s.deleteLayerVersion)
	api.Handle("GET /2018-10-31/layers", "ListLayers", s.listLayers)
	// botocore asks with the trailing slash of the model's URI, aws-sdk-go-v2 without it.
	api.Handle("GET /2016-08-19/account-settings/{$}", "GetAccountSettings", s.getAccountSettings)
	api.Handle("GET /2016-08-19/account-settings", "GetAccountSettings", s.getAccountSettings)
	api.Handle("PUT /2019-09-25/functions/{name}/event-invoke-config", "PutFunctionEventInvokeConfig", s.putEventInvokeConfig(true))
	api.Handle("POST /2019-09-25/functions/{name}/event-invoke-config", "UpdateFunctionEventInvokeConfig", s.putEventInvokeConfig(false))
	api.Handle("GET /2019-09-25/functions/{name}/event-invoke-config", "GetFunctionEventInvokeConfig", s.getEventInvokeConfig)
	api.Handle("DELETE /2019-09-25/functions/{name}/event-invoke-config", "DeleteFunctionEventInvokeConfig", s.deleteEventInvokeConfig)
	api.Handle("GET /2019-09-25/functions/{name}/event-invoke-config/list", "ListFunctionEventInvokeConfigs", s.listEventInvokeConfigs)
	api.Handle("POST /2021-10-31/functions/{name}/url", "CreateFunctionUrlConfig", s.createFunctionURLConfig)
	api.Handle("GET /2021-10-31/functions/{name}/url", "GetFunctionUrlConfig", s.getFunctionURLConfig)
	api.Handle("PUT /2021-10-31/functions/{name}/url", "UpdateFunctionUrlConfig", s.updateFunctionURLConfig)
	api.Handle("DELETE /2021-10-31/functions/{name}/url", "DeleteFunctionUrlConfig", s.deleteFunctionURLConfig)
	api.Handle("GET /2021-10-31/functions/{name}/urls", "ListFunctionUrlConfigs", s.listFunctionURLConfigs)
	return api
}

// Start cleans up what a previous run left (sandboxes and network namespaces of environments,
// which do not outlive the server that served their Runtime API), installs the runtime clients,
// removes code no version uses, resumes work that a stop interrupted (functions left Pending or
// InProgress, queued events) and starts reclaiming idle environments.
func (s *Service) Start(ctx context.Context) error {
	if err := s.migrateLogs(); err != nil {
		return fmt.Errorf("lambda: %w", err)
	}
	if s.cfg.Sandboxes != nil {
		ids, err := s.cfg.Sandboxes.List(ctx)
		if err != nil {
			return fmt.Errorf("lambda: list sandboxes: %w", err)
		}
		for _, id := range ids {
			if strings.HasPrefix(id, "lambda-") {
				if err := s.cfg.Sandboxes.Remove(ctx, id); err != nil {
					return fmt.Errorf("lambda: remove leftover sandbox %s: %w", id, err)
				}
				s.log.Info("removed a leftover environment", "sandbox", id)
			}
		}
		if err := netns.Cleanup(s.cfg.NetnsDir); err != nil {
			return fmt.Errorf("lambda: clean network namespaces: %w", err)
		}
	}
	if err := runtimes.Install(s.cfg.RuntimeDir); err != nil {
		return fmt.Errorf("lambda: install runtime clients: %w", err)
	}
	kvs, err := s.store.List(ctx, "lambda/", "", 0)
	if err != nil {
		return err
	}
	s.collectGarbage(kvs) // before anything runs that could be unpacking code
	bg, cancel := context.WithCancel(context.Background())
	s.stopBg = cancel
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.pool.reap(bg, s.cfg.KeepWarm) }()
	go func() { defer s.wg.Done(); s.runQueue(bg) }()
	for _, kv := range kvs {
		if !isLatestKey(kv.Key) {
			continue
		}
		var v version
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return fmt.Errorf("lambda: %s: %w", kv.Key, err)
		}
		if v.Config.State == StatePending || v.Config.LastUpdateStatus == UpdateRunning {
			s.prepareAsync(kv.Key, v.Config.RevisionID)
		}
	}
	return nil
}

// Close stops the environments and waits for background work to finish.
func (s *Service) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	if s.stopBg != nil {
		s.stopBg()
	}
	s.pool.close()
	s.wg.Wait()
	s.pool.close() // environments released by invocations that finished meanwhile
	if s.cfg.Sandboxes != nil {
		if err := netns.Release(s.cfg.NetnsDir); err != nil {
			s.log.Warn("releasing network namespaces", "err", err)
		}
	}
}

var latestKey = regexp.MustCompile(`^lambda/[0-9]+/[a-z0-9-]+/version/[^/]+/\$LATEST$`)

func isLatestKey(k string) bool { return latestKey.MatchString(k) }

// Store keys.
func (s *Service) prefix(r *awsproto.Request) string {
	return "lambda/" + r.Caller.AccountID + "/" + s.cfg.Region + "/"
}
func (s *Service) functionKey(r *awsproto.Request, name string) string {
	return s.prefix(r) + "function/" + name
}

// versionKey orders versions numerically: $LATEST sorts after every zero-padded number.
func (s *Service) versionKey(r *awsproto.Request, name, ver string) string {
	if ver != "$LATEST" {
		var n int
		fmt.Sscan(ver, &n)
		ver = fmt.Sprintf("%010d", n)
	}
	return s.prefix(r) + "version/" + name + "/" + ver
}
func (s *Service) versionsPrefix(r *awsproto.Request, name string) string {
	return s.prefix(r) + "version/" + name + "/"
}
func (s *Service) aliasKey(r *awsproto.Request, name, alias string) string {
	return s.prefix(r) + "alias/" + name + "/" + alias
}

// functionARN is the unqualified ARN of a function.
func (s *Service) functionARN(r *awsproto.Request, name string) string {
	return fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", s.cfg.Region, r.Caller.AccountID, name)
}

func newRevision() string { return uuid.NewString() }

// decode reads a JSON request body; malformed JSON is Lambda's InvalidRequestContentException.
func decode(r *awsproto.Request, v any) error {
	if err := awsproto.DecodeJSON(r.Body, v); err != nil {
		return badJSON(err)
	}
	return nil
}

// pagination reads Marker and MaxItems (1 to 10,000; default 50).
func pagination(q url.Values) (marker string, max int, err error) {
	max = 50
	if v := q.Get("MaxItems"); v != "" {
		if _, e := fmt.Sscan(v, &max); e != nil || max < 1 || max > 10000 {
			return "", 0, validation(v, "maxItems", "Member must have value between 1 and 10000")
		}
	}
	return q.Get("Marker"), max, nil
}
