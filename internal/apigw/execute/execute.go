// Package execute serves the data plane of API Gateway HTTP APIs, execute-api: it takes a request
// for http://<apiId>.execute-api.localhost:<port>/<stage>/<path> (or, for clients that cannot set
// a host, http://localhost:<port>/_aws/execute-api/<apiId>/<stage>/<path>), selects the stage and
// the route as API Gateway does, applies CORS, AWS_IAM authorization and throttling, invokes the
// route's Lambda integration with a payload 1.0 or 2.0 event, and maps the function's result to
// the HTTP response. Errors are API Gateway's: {"message": "Not Found"} and friends.
package execute

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/google/uuid"

	"github.com/nubis/nubis/internal/apigw"
	"github.com/nubis/nubis/internal/apigw/httpapi"
	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/errdefs"
)

// APIs looks up what an API serves.
type APIs interface {
	Lookup(ctx context.Context, account, apiID string) (*apigw.Snapshot, error)
}

// Functions invokes Lambda functions on behalf of API Gateway.
type Functions interface {
	InvokeAs(ctx context.Context, account, functionARN, principal, sourceArn string, payload []byte) ([]byte, bool, error)
}

// Config is what the data plane needs.
type Config struct {
	APIs      APIs
	Functions Functions
	Region    string
	// Account is the account the APIs belong to.
	Account string
	// Verify checks the SigV4 signature of a request to an AWS_IAM route.
	Verify func(r *http.Request, body []byte) error
	Log    *slog.Logger
}

// Handler is the execute-api data plane.
type Handler struct {
	cfg      Config
	mu       sync.Mutex
	limiters map[string]*limiter
	auth     authCache // Lambda authorizers' answers
}

type limiter struct {
	rate  float64
	burst int
	lim   *rate.Limiter
}

// New returns the data plane.
func New(cfg Config) *Handler {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Handler{cfg: cfg, limiters: map[string]*limiter{}}
}

// PathPrefix is where the data plane is reached by path rather than by host.
const PathPrefix = "/_aws/execute-api/"

// hostSuffix is what the host of an API's endpoint ends with (before any port).
const hostSuffix = ".execute-api.localhost"

// Target reports whether r is a data-plane request, and for which API and path (the path after
// the API id, still percent-encoded).
func Target(r *http.Request) (apiID, path string, ok bool) {
	return httpapi.Target(r, func(host string) (string, bool) {
		id, found := strings.CutSuffix(host, hostSuffix)
		return id, found && !strings.Contains(id, ".")
	}, PathPrefix)
}

// maxBody is API Gateway's limit on an HTTP API request payload.
const maxBody = 10 << 20

func message(w http.ResponseWriter, status int, msg string) { httpapi.Message(status, msg).Write(w) }

// ServeHTTP answers one data-plane request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := uuid.NewString()
	w.Header().Set("Apigw-Requestid", reqID)
	apiID, path, ok := Target(r)
	if !ok {
		message(w, http.StatusNotFound, "Not Found")
		return
	}
	snap, err := h.cfg.APIs.Lookup(r.Context(), h.cfg.Account, apiID)
	if err != nil {
		if !errors.Is(err, errdefs.ErrNotFound) {
			h.cfg.Log.Error("execute-api lookup", "api", apiID, "err", err)
		}
		message(w, http.StatusNotFound, "Not Found")
		return
	}
	stage, routePath := selectStage(snap, path)
	if stage == nil || stage.Deployment == nil {
		message(w, http.StatusNotFound, "Not Found")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			message(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large")
		} else {
			message(w, http.StatusBadRequest, "Bad Request")
		}
		return
	}
	httpapi.WithCORS(corsConfig(stage.Deployment.Cors), r, func() httpapi.Response {
		return h.serveRoute(r, body, reqID, snap, stage, routePath)
	}).Write(w)
}

// selectStage finds the stage a path addresses: a named stage by its first segment, else the
// $default stage (whose URLs have no stage segment). It returns the path without the stage.
func selectStage(snap *apigw.Snapshot, path string) (*apigw.Stage, string) {
	first, rest, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	var def *apigw.Stage
	for i := range snap.Stages {
		st := &snap.Stages[i]
		if st.Name == "$default" {
			def = st
		} else if st.Name == first && first != "" {
			return st, "/" + rest
		}
	}
	return def, path
}

func corsConfig(c *apigw.Cors) *httpapi.CORSConfig {
	if c == nil {
		return nil
	}
	return &httpapi.CORSConfig{AllowOrigins: c.AllowOrigins, AllowMethods: c.AllowMethods, AllowHeaders: c.AllowHeaders,
		ExposeHeaders: c.ExposeHeaders, AllowCredentials: c.AllowCredentials, MaxAge: c.MaxAge}
}

// serveRoute routes, authorizes, throttles and invokes.
func (h *Handler) serveRoute(r *http.Request, body []byte, reqID string, snap *apigw.Snapshot, stage *apigw.Stage, routePath string) httpapi.Response {
	dep := stage.Deployment
	keys := make([]string, len(dep.Routes))
	for i, rt := range dep.Routes {
		keys[i] = rt.Key
	}
	router, err := httpapi.NewRouter(keys)
	if err != nil {
		h.cfg.Log.Error("execute-api routes", "api", snap.API.ID, "err", err)
		return httpapi.Message(http.StatusInternalServerError, "Internal Server Error")
	}
	key, params, ok := router.Match(r.Method, routePath)
	if !ok {
		return httpapi.Message(http.StatusNotFound, "Not Found")
	}
	var route apigw.Route
	for _, rt := range dep.Routes {
		if rt.Key == key {
			route = rt
		}
	}
	if route.AuthorizationType == "AWS_IAM" {
		if h.cfg.Verify == nil || h.cfg.Verify(r, body) != nil {
			return httpapi.Message(http.StatusForbidden, "Forbidden")
		}
	}
	if !h.allow(snap.API.ID, stage, key) {
		return httpapi.Message(http.StatusTooManyRequests, "Too Many Requests")
	}
	var integ *apigw.Integration
	for i := range dep.Integrations {
		if dep.Integrations[i].ID == route.IntegrationID {
			integ = &dep.Integrations[i]
		}
	}
	if integ == nil || integ.FunctionARN == "" {
		return httpapi.Message(http.StatusInternalServerError, "Internal Server Error")
	}
	host := r.Host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		host = hh
	}
	srcIP, _, _ := net.SplitHostPort(r.RemoteAddr)
	info := httpapi.RequestInfo{AccountID: h.cfg.Account, APIID: snap.API.ID, DomainName: host, Stage: stage.Name,
		RouteKey: key, RequestID: reqID, SourceIP: srcIP, Time: time.Now(), PathParameters: params,
		StageVariables: stage.StageVariables}
	if _, p, ok := Target(r); ok && strings.HasPrefix(r.URL.EscapedPath(), PathPrefix) {
		info.RawPath = p
	}
	sourceArn := "arn:aws:execute-api:" + h.cfg.Region + ":" + h.cfg.Account + ":" + snap.API.ID + "/" + stage.Name + "/" +
		r.Method + "/" + strings.TrimPrefix(routePath, "/")
	version := integ.PayloadFormatVersion
	if version == "" {
		version = httpapi.Version2
	}
	if route.AuthorizationType == "CUSTOM" {
		authz, deny := h.authorize(r.Context(), r, body, snap, stage, route, info, sourceArn, version)
		if deny != nil {
			return *deny
		}
		info.Authorizer = authz
	}
	event, err := httpapi.Event(version, r, body, info)
	if err != nil {
		return httpapi.Message(http.StatusBadRequest, "Bad Request")
	}
	return h.invoke(r.Context(), integ, sourceArn, version, event)
}

// invocation is what a function invoked for API Gateway answered.
type invocation struct {
	payload []byte
	failed  bool
	err     error
}

// invokeWithin invokes a function as API Gateway, waiting at most timeout (ok is false after it:
// the function itself runs to its own end, as on AWS).
func (h *Handler) invokeWithin(ctx context.Context, functionARN, sourceArn string, event []byte, timeout time.Duration) (invocation, bool) {
	done := make(chan invocation, 1)
	go func() {
		p, failed, err := h.cfg.Functions.InvokeAs(context.WithoutCancel(ctx), h.cfg.Account, functionARN,
			"apigateway.amazonaws.com", sourceArn, event)
		done <- invocation{p, failed, err}
	}()
	select {
	case res := <-done:
		return res, true
	case <-time.After(timeout):
		return invocation{}, false
	}
}

// invoke runs the integration's function, waiting at most its timeout (503 after it: the
// function itself runs to its own end, as on AWS).
func (h *Handler) invoke(ctx context.Context, integ *apigw.Integration, sourceArn, version string, event []byte) httpapi.Response {
	timeout := time.Duration(integ.TimeoutInMillis) * time.Millisecond
	if timeout <= 0 || timeout > 30*time.Second {
		timeout = 30 * time.Second
	}
	res, ok := h.invokeWithin(ctx, integ.FunctionARN, sourceArn, event, timeout)
	if !ok {
		return httpapi.Message(http.StatusServiceUnavailable, "Service Unavailable")
	}
	var apiErr *awsproto.Error
	switch {
	case errors.As(res.err, &apiErr) && apiErr.Status == http.StatusTooManyRequests:
		return httpapi.Message(http.StatusTooManyRequests, "Too Many Requests")
	case res.err != nil:
		h.cfg.Log.Warn("execute-api integration failed", "function", integ.FunctionARN, "err", res.err)
		return httpapi.Message(http.StatusInternalServerError, "Internal Server Error")
	case res.failed:
		return httpapi.Message(http.StatusInternalServerError, "Internal Server Error")
	}
	resp, err := httpapi.MapResponse(version, res.payload)
	if err != nil {
		return httpapi.Message(http.StatusInternalServerError, "Internal Server Error")
	}
	return resp
}

// allow applies the stage's throttling for a route: its RouteSettings, else the stage's
// DefaultRouteSettings, as a token bucket (rate per second, burst).
func (h *Handler) allow(apiID string, stage *apigw.Stage, routeKey string) bool {
	set := stage.DefaultRouteSettings
	if rs, ok := stage.RouteSettings[routeKey]; ok && (rs.ThrottlingRateLimit != nil || rs.ThrottlingBurstLimit != nil) {
		set = rs
	}
	if set.ThrottlingRateLimit == nil && set.ThrottlingBurstLimit == nil {
		return true
	}
	r, burst := float64(10000), 5000 // API Gateway's account defaults
	if set.ThrottlingRateLimit != nil {
		r = *set.ThrottlingRateLimit
	}
	if set.ThrottlingBurstLimit != nil {
		burst = *set.ThrottlingBurstLimit
	}
	key := apiID + "/" + stage.Name + "/" + routeKey
	h.mu.Lock()
	l := h.limiters[key]
	if l == nil || l.rate != r || l.burst != burst {
		l = &limiter{rate: r, burst: burst, lim: rate.NewLimiter(rate.Limit(r), burst)}
		h.limiters[key] = l
	}
	h.mu.Unlock()
	return l.lim.Allow()
}
