// Package apigw is nubis's Amazon API Gateway v2 control plane for HTTP APIs: the apigatewayv2
// REST-JSON API (APIs, routes, integrations, stages, deployments, tags) and the state behind it,
// kept in the store under "apigw/<account>/<region>/". Lookup hands the execute-api data plane
// everything it needs to serve a request to an API.
package apigw

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

// Config is how the API Gateway service is set up.
type Config struct {
	Store  store.Store
	Region string
	// Endpoint returns the base URL of the server's API ("http://127.0.0.1:4566"); the port of an
	// API's apiEndpoint is taken from it.
	Endpoint func() string
	Log      *slog.Logger
}

// Service holds API Gateway's state and answers its API.
type Service struct {
	cfg   Config
	store store.Store
	log   *slog.Logger
	now   func() time.Time

	// The data plane's snapshots (Lookup), valid while gen has not moved: every write of the
	// control plane moves it, so a change is served from the next request on.
	gen       atomic.Uint64
	snapshots sync.Map // account/apiID -> cachedSnapshot
}

type cachedSnapshot struct {
	gen  uint64
	snap *Snapshot
}

// New returns the API Gateway service.
func New(cfg Config) *Service {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, store: cfg.Store, log: cfg.Log, now: time.Now}
}

// API returns the apigatewayv2 REST-JSON API for the server to route to.
func (s *Service) API() awsproto.Service {
	api := awsproto.NewRESTJSONService("apigateway", false, s.log, "/v2/")
	const a = "/v2/apis/{apiId}"
	api.Handle("POST /v2/apis", "CreateApi", s.createAPI)
	api.Handle("GET /v2/apis", "GetApis", s.getAPIs)
	api.Handle("GET "+a, "GetApi", s.getAPI)
	api.Handle("PATCH "+a, "UpdateApi", s.updateAPI)
	api.Handle("DELETE "+a, "DeleteApi", s.deleteAPI)
	api.Handle("DELETE "+a+"/cors", "DeleteCorsConfiguration", s.deleteCors)
	api.Handle("POST "+a+"/routes", "CreateRoute", s.createRoute)
	api.Handle("GET "+a+"/routes", "GetRoutes", s.getRoutes)
	api.Handle("GET "+a+"/routes/{routeId}", "GetRoute", s.getRoute)
	api.Handle("PATCH "+a+"/routes/{routeId}", "UpdateRoute", s.updateRoute)
	api.Handle("DELETE "+a+"/routes/{routeId}", "DeleteRoute", s.deleteRoute)
	api.Handle("POST "+a+"/integrations", "CreateIntegration", s.createIntegration)
	api.Handle("GET "+a+"/integrations", "GetIntegrations", s.getIntegrations)
	api.Handle("GET "+a+"/integrations/{integrationId}", "GetIntegration", s.getIntegration)
	api.Handle("PATCH "+a+"/integrations/{integrationId}", "UpdateIntegration", s.updateIntegration)
	api.Handle("DELETE "+a+"/integrations/{integrationId}", "DeleteIntegration", s.deleteIntegration)
	api.Handle("POST "+a+"/authorizers", "CreateAuthorizer", s.createAuthorizer)
	api.Handle("GET "+a+"/authorizers", "GetAuthorizers", s.getAuthorizers)
	api.Handle("GET "+a+"/authorizers/{authorizerId}", "GetAuthorizer", s.getAuthorizer)
	api.Handle("PATCH "+a+"/authorizers/{authorizerId}", "UpdateAuthorizer", s.updateAuthorizer)
	api.Handle("DELETE "+a+"/authorizers/{authorizerId}", "DeleteAuthorizer", s.deleteAuthorizer)
	api.Handle("POST "+a+"/stages", "CreateStage", s.createStage)
	api.Handle("GET "+a+"/stages", "GetStages", s.getStages)
	api.Handle("GET "+a+"/stages/{stageName}", "GetStage", s.getStage)
	api.Handle("PATCH "+a+"/stages/{stageName}", "UpdateStage", s.updateStage)
	api.Handle("DELETE "+a+"/stages/{stageName}", "DeleteStage", s.deleteStage)
	api.Handle("DELETE "+a+"/stages/{stageName}/routesettings/{routeKey}", "DeleteRouteSettings", s.deleteRouteSettings)
	api.Handle("POST "+a+"/deployments", "CreateDeployment", s.createDeployment)
	api.Handle("GET "+a+"/deployments", "GetDeployments", s.getDeployments)
	api.Handle("GET "+a+"/deployments/{deploymentId}", "GetDeployment", s.getDeployment)
	api.Handle("PATCH "+a+"/deployments/{deploymentId}", "UpdateDeployment", s.updateDeployment)
	api.Handle("DELETE "+a+"/deployments/{deploymentId}", "DeleteDeployment", s.deleteDeployment)
	api.Handle("POST /v2/tags/{arn...}", "TagResource", s.tagResource)
	api.Handle("DELETE /v2/tags/{arn...}", "UntagResource", s.untagResource)
	api.Handle("GET /v2/tags/{arn...}", "GetTags", s.getTags)
	return api
}

// Store keys: everything of an API sits under its kind and the API's id, so that an API's routes
// (integrations, ...) are one prefix and DeleteApi finds them all.
func (s *Service) prefix(account string) string {
	return "apigw/" + account + "/" + s.cfg.Region + "/"
}
func (s *Service) apiKey(account, apiID string) string { return s.prefix(account) + "api/" + apiID }

// childPrefix is the prefix of an API's children of a kind ("route", "integration", "stage",
// "deployment").
func (s *Service) childPrefix(account, kind, apiID string) string {
	return s.prefix(account) + kind + "/" + apiID + "/"
}
func (s *Service) childKey(account, kind, apiID, id string) string {
	return s.childPrefix(account, kind, apiID) + id
}

// childKinds are the kinds of record an API owns.
var childKinds = []string{kindRoute, kindIntegration, kindStage, kindDeployment, kindAuthorizer}

// loadChild reads a route, integration, stage or deployment of an API that must exist; notFound
// is the error for a child that does not.
func loadChild[T any](s *Service, tx store.Tx, acct, apiID, kind, id string, notFound error) (T, error) {
	var zero T
	if _, err := s.loadAPI(tx, acct, apiID); err != nil {
		return zero, err
	}
	v, ok, err := store.GetJSON[T](tx, s.childKey(acct, kind, apiID, id))
	if err == nil && !ok {
		err = notFound
	}
	return v, err
}

// getOne reads, for GetRoute, GetIntegration, GetStage and GetDeployment, the child of the API in
// the path whose id is the path value idParam.
func getOne[T any](ctx context.Context, s *Service, r *awsproto.Request, idParam string,
	load func(tx store.Tx, acct, apiID, id string) (T, error)) (T, error) {
	var v T
	err := s.view(ctx, func(tx store.Tx) error {
		var err error
		v, err = load(tx, r.Caller.AccountID, r.HTTP.PathValue("apiId"), r.HTTP.PathValue(idParam))
		return err
	})
	return v, err
}

const (
	kindRoute       = "route"
	kindIntegration = "integration"
	kindStage       = "stage"
	kindDeployment  = "deployment"
)

func createJSON(tx store.Tx, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Create(key, b)
}

// listJSON decodes every record under prefix, in key order.
func listJSON[T any](tx store.Tx, prefix string) ([]T, error) {
	kvs, err := tx.List(prefix, "", 0)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(kvs))
	for _, kv := range kvs {
		var v T
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// idAlphabet is what API Gateway's ids are made of.
const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// Id lengths as AWS makes them: "a1b2c3d4e5" for an API, "72jz1wk" for a route or an
// integration, "53lz9l" for a deployment.
const (
	apiIDLen         = 10
	routeIDLen       = 7
	integrationIDLen = 7
	deploymentIDLen  = 6
)

func newID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return string(b)
}

// createWithID stores v under the key keyFor makes of a new id of length n, drawing again in the
// unlikely case the id is taken.
func createWithID(tx store.Tx, n int, keyFor func(id string) string, v func(id string) any) (string, error) {
	for {
		id := newID(n)
		err := createJSON(tx, keyFor(id), v(id))
		if errors.Is(err, store.ErrExists) {
			continue
		}
		return id, err
	}
}

// timestamp is API Gateway's date format: ISO 8601 in UTC to the second.
func timestamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// decode reads a JSON request body; malformed JSON is a BadRequestException.
func decode(r *awsproto.Request, v any) error {
	if err := awsproto.DecodeJSON(r.Body, v); err != nil {
		var pe *awsproto.ParamError
		if errors.As(err, &pe) {
			return badRequest("Invalid request body: %s", pe.Reason)
		}
		return badRequest("Invalid request body")
	}
	return nil
}

// page is one page of a Get* listing: the records after the nextToken position, at most
// maxResults of them.
type page struct {
	after string // the key to list after ("" for the start)
	max   int    // 0 for no limit
}

// readPage reads maxResults and nextToken; prefix is the listing's key prefix.
func readPage(q url.Values, prefix string) (page, error) {
	var p page
	if v := q.Get("maxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return page{}, badRequest("Invalid maxResults: %s. It must be a positive integer.", v)
		}
		p.max = n
	}
	if tok := q.Get("nextToken"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(b) == 0 || strings.Contains(string(b), "/") {
			return page{}, badRequest("Invalid nextToken: %s", tok)
		}
		p.after = prefix + string(b)
	}
	return p, nil
}

// listPage returns the records of one page under prefix and the token of the next page ("" at
// the end).
func listPage[T any](tx store.Tx, prefix string, p page) ([]T, string, error) {
	limit := 0
	if p.max > 0 {
		limit = p.max + 1
	}
	kvs, err := tx.List(prefix, p.after, limit)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if p.max > 0 && len(kvs) > p.max {
		kvs = kvs[:p.max]
		next = base64.RawURLEncoding.EncodeToString([]byte(strings.TrimPrefix(kvs[len(kvs)-1].Key, prefix)))
	}
	out := make([]T, 0, len(kvs))
	for _, kv := range kvs {
		var v T
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, "", err
		}
		out = append(out, v)
	}
	return out, next, nil
}

// listOutput is the shape of every Get* listing.
type listOutput[T any] struct {
	Items     []T    `json:"items"`
	NextToken string `json:"nextToken,omitempty"`
}

// apiEndpoint is the URL an API is served at: http://<apiId>.execute-api.localhost:<port>.
func (s *Service) apiEndpoint(apiID string) string {
	port := ""
	if s.cfg.Endpoint != nil {
		if u, err := url.Parse(s.cfg.Endpoint()); err == nil && u.Port() != "" {
			port = ":" + u.Port()
		}
	}
	return "http://" + apiID + ".execute-api.localhost" + port
}

// apiARN is the ARN API Gateway tags an API by.
func (s *Service) apiARN(apiID string) string {
	return "arn:aws:apigateway:" + s.cfg.Region + "::/apis/" + apiID
}

// update runs fn in one read-write transaction: a change of several records is made whole or not
// at all.
func (s *Service) update(ctx context.Context, fn func(tx store.Tx) error) error {
	err := s.store.Update(ctx, fn)
	s.gen.Add(1) // after the commit: a Lookup that read before it is not kept past this
	return err
}

// view runs fn, which only reads, in one transaction, so that it sees one consistent state.
func (s *Service) view(ctx context.Context, fn func(tx store.Tx) error) error {
	return s.store.View(ctx, fn)
}
