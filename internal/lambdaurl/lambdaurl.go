// Package lambdaurl serves Lambda function URLs: a request for
// http://<url-id>.lambda-url.<region>.localhost:<port>/<path> (or, for clients that cannot set a
// host, http://localhost:<port>/_aws/lambda-url/<url-id>/<path>) becomes a payload 2.0 event for
// the URL's function, as Lambda builds it, and the function's result becomes the HTTP response.
// AuthType AWS_IAM URLs take only requests signed (SigV4, service "lambda") by the account; NONE
// URLs take any request once the function's policy allows it. CORS is the URL's configuration.
package lambdaurl

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/nubis/nubis/internal/apigw/httpapi"
	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/errdefs"
	"github.com/nubis/nubis/internal/lambda"
)

// Functions finds and invokes the functions of URLs.
type Functions interface {
	LookupURL(ctx context.Context, id string) (lambda.URLTarget, error)
	InvokeURL(ctx context.Context, t lambda.URLTarget, event []byte) ([]byte, bool, error)
}

// Caller is who signed a request to an AWS_IAM URL, for the event's requestContext.authorizer.iam.
type Caller struct {
	AccessKey, AccountID, CallerID, UserARN, UserID string
}

// Config is what the data plane needs.
type Config struct {
	Functions Functions
	Region    string
	// Verify checks the SigV4 signature (service lambda) of a request to an AWS_IAM URL and says
	// who signed it.
	Verify func(r *http.Request, body []byte) (Caller, error)
	Log    *slog.Logger
}

// Handler serves function URLs.
type Handler struct{ cfg Config }

// New returns the data plane.
func New(cfg Config) *Handler {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Handler{cfg: cfg}
}

// PathPrefix is where function URLs are reached by path rather than by host.
const PathPrefix = "/_aws/lambda-url/"

// Host is the host name of the function URL with an id.
func Host(id, region string) string { return id + ".lambda-url." + region + ".localhost" }

// Target reports whether r is for a function URL of region, and which (its id and the path after
// it, still percent-encoded).
func Target(r *http.Request, region string) (id, path string, ok bool) {
	return httpapi.Target(r, func(host string) (string, bool) {
		first, rest, found := strings.Cut(host, ".")
		return first, found && Host("", region) == "."+rest
	}, PathPrefix)
}

// maxBody is Lambda's limit on a synchronous invocation's payload, which the event must fit.
const maxBody = 6 << 20

// ServeHTTP answers one function URL request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := uuid.NewString()
	w.Header().Set("X-Amzn-Requestid", reqID)
	id, path, ok := Target(r, h.cfg.Region)
	if !ok {
		errorResponse(http.StatusNotFound, "Not Found").Write(w)
		return
	}
	t, err := h.cfg.Functions.LookupURL(r.Context(), id)
	if err != nil {
		if !errors.Is(err, errdefs.ErrNotFound) {
			h.cfg.Log.Error("function URL lookup", "id", id, "err", err)
		}
		errorResponse(http.StatusNotFound, "Not Found").Write(w)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			errorResponse(http.StatusRequestEntityTooLarge, "Request must be smaller than 6291456 bytes for the InvokeFunction operation").Write(w)
		} else {
			errorResponse(http.StatusBadRequest, "Bad Request").Write(w)
		}
		return
	}
	httpapi.WithCORS(corsConfig(t.Cors), r, func() httpapi.Response { return h.invoke(r, body, reqID, id, path, t) }).Write(w)
}

func (h *Handler) invoke(r *http.Request, body []byte, reqID, id, path string, t lambda.URLTarget) httpapi.Response {
	srcIP, _, _ := net.SplitHostPort(r.RemoteAddr)
	info := httpapi.RequestInfo{AccountID: "anonymous", APIID: id, DomainName: Host(id, h.cfg.Region), DomainPrefix: id,
		Stage: "$default", RouteKey: "$default", RequestID: reqID, SourceIP: srcIP, Time: time.Now(), RawPath: path}
	if t.AuthType == "AWS_IAM" {
		if h.cfg.Verify == nil {
			return errorResponse(http.StatusForbidden, "Forbidden")
		}
		c, err := h.cfg.Verify(r, body)
		if err != nil {
			return errorResponse(http.StatusForbidden, "Forbidden")
		}
		info.AccountID = c.AccountID
		info.Authorizer = map[string]any{"iam": map[string]any{"accessKey": c.AccessKey, "accountId": c.AccountID,
			"callerId": c.CallerID, "cognitoIdentity": nil, "principalOrgId": nil, "userArn": c.UserARN, "userId": c.UserID}}
	}
	event, err := httpapi.Event(httpapi.Version2, r, body, info)
	if err != nil {
		return errorResponse(http.StatusBadRequest, "Bad Request")
	}
	if len(event) > maxBody {
		return errorResponse(http.StatusRequestEntityTooLarge, "Request must be smaller than 6291456 bytes for the InvokeFunction operation")
	}
	payload, failed, err := h.cfg.Functions.InvokeURL(context.WithoutCancel(r.Context()), t, event)
	var apiErr *awsproto.Error
	switch {
	case errors.Is(err, lambda.ErrNotPermitted):
		return errorResponse(http.StatusForbidden, "Forbidden")
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusTooManyRequests:
		return errorResponse(http.StatusTooManyRequests, "Rate Exceeded.")
	case err != nil:
		h.cfg.Log.Warn("function URL invocation failed", "function", t.FunctionARN, "err", err)
		return errorResponse(http.StatusInternalServerError, "Internal Server Error")
	case failed:
		return errorResponse(http.StatusBadGateway, "Internal Server Error")
	}
	resp, err := httpapi.MapResponse(httpapi.Version2, payload)
	if err != nil {
		return errorResponse(http.StatusBadGateway, "Internal Server Error")
	}
	return resp
}

// errorResponse is one of Lambda's function URL errors: {"Message": "..."}.
func errorResponse(status int, msg string) httpapi.Response {
	return httpapi.Response{Status: status, Header: http.Header{"Content-Type": {"application/json"}},
		Body: []byte(`{"Message":"` + msg + `"}`)}
}

func corsConfig(c *lambda.URLCors) *httpapi.CORSConfig {
	if c == nil {
		return nil
	}
	return &httpapi.CORSConfig{AllowOrigins: c.AllowOrigins, AllowMethods: c.AllowMethods, AllowHeaders: c.AllowHeaders,
		ExposeHeaders: c.ExposeHeaders, AllowCredentials: c.AllowCredentials, MaxAge: c.MaxAge}
}
