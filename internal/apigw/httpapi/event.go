package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Payload format versions of a Lambda proxy integration.
const (
	Version1 = "1.0"
	Version2 = "2.0"
)

// RequestInfo is what the data plane knows about a request beyond the http.Request itself.
type RequestInfo struct {
	AccountID string // the API owner's account
	APIID     string
	// DomainName is the name the client called ("abc123.execute-api.us-east-1.amazonaws.com" or
	// a custom domain); DomainPrefix its first label (derived from DomainName when empty).
	DomainName   string
	DomainPrefix string
	Stage        string // "$default" or the stage's name
	RouteKey     string // the route Router.Match chose ("$default" or "METHOD /path")
	RequestID    string // also the 1.0 extendedRequestId
	SourceIP     string // the client's address, without port
	Time         time.Time
	// PathParameters are the route's path variables (from Router.Match); StageVariables the
	// stage's variables. Either may be nil.
	PathParameters map[string]string
	StageVariables map[string]string
	// RawPath is the request's path as the client sent it, still percent-encoded and including
	// the "/{stage}" prefix of a named stage: rawPath (2.0) and path (1.0) carry the stage too.
	// Empty means req.URL.EscapedPath().
	RawPath string
	// Authorizer, if not nil, is the event's requestContext.authorizer (a function URL's IAM
	// caller, or what a Lambda authorizer handed on, for example).
	Authorizer any
}

// Event returns the Lambda event of payload format version ("1.0" or "2.0") for a request and
// its body, which the caller has read in full.
func Event(version string, req *http.Request, body []byte, info RequestInfo) ([]byte, error) {
	var ev any
	switch version {
	case Version1:
		ev = eventV1(req, body, info)
	case Version2:
		ev = eventV2(req, body, info)
	default:
		return nil, fmt.Errorf("unsupported payload format version %q", version)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

type eventV2JSON struct {
	Version               string            `json:"version"`
	RouteKey              string            `json:"routeKey"`
	RawPath               string            `json:"rawPath"`
	RawQueryString        string            `json:"rawQueryString"`
	Cookies               []string          `json:"cookies,omitempty"`
	Headers               map[string]string `json:"headers"`
	QueryStringParameters map[string]string `json:"queryStringParameters,omitempty"`
	RequestContext        requestContextV2  `json:"requestContext"`
	Body                  *string           `json:"body,omitempty"`
	PathParameters        map[string]string `json:"pathParameters,omitempty"`
	IsBase64Encoded       bool              `json:"isBase64Encoded"`
	StageVariables        map[string]string `json:"stageVariables,omitempty"`
}

type requestContextV2 struct {
	AccountID    string          `json:"accountId"`
	APIID        string          `json:"apiId"`
	DomainName   string          `json:"domainName"`
	DomainPrefix string          `json:"domainPrefix"`
	HTTP         httpDescription `json:"http"`
	RequestID    string          `json:"requestId"`
	RouteKey     string          `json:"routeKey"`
	Stage        string          `json:"stage"`
	Time         string          `json:"time"`
	TimeEpoch    int64           `json:"timeEpoch"`
	Authorizer   any             `json:"authorizer,omitempty"`
}

type httpDescription struct {
	Method    string `json:"method"`
	Path      string `json:"path"`
	Protocol  string `json:"protocol"`
	SourceIP  string `json:"sourceIp"`
	UserAgent string `json:"userAgent"`
}

func eventV2(req *http.Request, body []byte, info RequestInfo) *eventV2JSON {
	path := decodePath(rawPath(req, info))
	hdr := forwardedHeaders(req, body, info)
	headers := make(map[string]string, len(hdr))
	var cookies []string
	for _, name := range slices.Sorted(maps.Keys(hdr)) {
		values, lower := hdr[name], strings.ToLower(name)
		if lower == "cookie" {
			cookies = append(cookies, splitCookies(values)...)
			continue
		}
		if prev, ok := headers[lower]; ok {
			values = append([]string{prev}, values...)
		}
		headers[lower] = strings.Join(values, ",")
	}
	var query map[string]string
	for k, vs := range parseQuery(req.URL.RawQuery) {
		if query == nil {
			query = map[string]string{}
		}
		query[k] = strings.Join(vs, ",")
	}
	ev := &eventV2JSON{
		Version:               Version2,
		RouteKey:              info.RouteKey,
		RawPath:               path,
		RawQueryString:        req.URL.RawQuery,
		Cookies:               cookies,
		Headers:               headers,
		QueryStringParameters: query,
		RequestContext: requestContextV2{
			AccountID:    info.AccountID,
			APIID:        info.APIID,
			DomainName:   info.DomainName,
			DomainPrefix: domainPrefix(info),
			HTTP: httpDescription{
				Method:    req.Method,
				Path:      path,
				Protocol:  "HTTP/1.1",
				SourceIP:  info.SourceIP,
				UserAgent: req.UserAgent(),
			},
			RequestID:  info.RequestID,
			RouteKey:   info.RouteKey,
			Stage:      info.Stage,
			Time:       formatTime(info.Time),
			TimeEpoch:  info.Time.UnixMilli(),
			Authorizer: info.Authorizer,
		},
		PathParameters: nonEmpty(info.PathParameters),
		StageVariables: nonEmpty(info.StageVariables),
	}
	ev.Body, ev.IsBase64Encoded = encodeBody(req, body)
	return ev
}

type eventV1JSON struct {
	Version                         string              `json:"version"`
	Resource                        string              `json:"resource"`
	Path                            string              `json:"path"`
	HTTPMethod                      string              `json:"httpMethod"`
	Headers                         map[string]string   `json:"headers"`
	MultiValueHeaders               map[string][]string `json:"multiValueHeaders"`
	QueryStringParameters           map[string]string   `json:"queryStringParameters"`
	MultiValueQueryStringParameters map[string][]string `json:"multiValueQueryStringParameters"`
	RequestContext                  requestContextV1    `json:"requestContext"`
	PathParameters                  map[string]string   `json:"pathParameters"`
	StageVariables                  map[string]string   `json:"stageVariables"`
	Body                            *string             `json:"body"`
	IsBase64Encoded                 bool                `json:"isBase64Encoded"`
}

type requestContextV1 struct {
	AccountID         string     `json:"accountId"`
	APIID             string     `json:"apiId"`
	Authorizer        any        `json:"authorizer"`
	DomainName        string     `json:"domainName"`
	DomainPrefix      string     `json:"domainPrefix"`
	ExtendedRequestID string     `json:"extendedRequestId"`
	HTTPMethod        string     `json:"httpMethod"`
	Identity          identityV1 `json:"identity"`
	Path              string     `json:"path"`
	Protocol          string     `json:"protocol"`
	RequestID         string     `json:"requestId"`
	RequestTime       string     `json:"requestTime"`
	RequestTimeEpoch  int64      `json:"requestTimeEpoch"`
	ResourceID        string     `json:"resourceId"`
	ResourcePath      string     `json:"resourcePath"`
	Stage             string     `json:"stage"`
}

// cmpAuthorizer is a 1.0 event's requestContext.authorizer: the authorizer's, or the empty one.
func cmpAuthorizer(a any) any {
	if a == nil {
		return authorizerV1{}
	}
	return a
}

// authorizerV1 is what a route without an authorizer carries in payload format 1.0.
type authorizerV1 struct {
	Claims *struct{} `json:"claims"`
	Scopes *struct{} `json:"scopes"`
}

// identityV1 is the REST-shaped caller identity; an HTTP API knows only the address and the
// user agent, the rest is null.
type identityV1 struct {
	AccessKey                     *string `json:"accessKey"`
	AccountID                     *string `json:"accountId"`
	Caller                        *string `json:"caller"`
	CognitoAmr                    *string `json:"cognitoAmr"`
	CognitoAuthenticationProvider *string `json:"cognitoAuthenticationProvider"`
	CognitoAuthenticationType     *string `json:"cognitoAuthenticationType"`
	CognitoIdentityID             *string `json:"cognitoIdentityId"`
	CognitoIdentityPoolID         *string `json:"cognitoIdentityPoolId"`
	PrincipalOrgID                *string `json:"principalOrgId"`
	SourceIP                      string  `json:"sourceIp"`
	User                          *string `json:"user"`
	UserAgent                     string  `json:"userAgent"`
	UserArn                       *string `json:"userArn"`
}

func eventV1(req *http.Request, body []byte, info RequestInfo) *eventV1JSON {
	path := decodePath(rawPath(req, info))
	resource := info.RouteKey
	if _, p, ok := strings.Cut(info.RouteKey, " "); ok {
		resource = p
	}
	hdr := forwardedHeaders(req, body, info)
	headers := make(map[string]string, len(hdr))
	for name, values := range hdr {
		headers[name] = values[len(values)-1]
	}
	var query map[string]string
	mvQuery := parseQuery(req.URL.RawQuery)
	for k, vs := range mvQuery {
		if query == nil {
			query = map[string]string{}
		}
		query[k] = vs[len(vs)-1]
	}
	if len(mvQuery) == 0 {
		mvQuery = nil
	}
	ev := &eventV1JSON{
		Version:                         Version1,
		Resource:                        resource,
		Path:                            path,
		HTTPMethod:                      req.Method,
		Headers:                         headers,
		MultiValueHeaders:               hdr,
		QueryStringParameters:           query,
		MultiValueQueryStringParameters: mvQuery,
		RequestContext: requestContextV1{
			AccountID:         info.AccountID,
			APIID:             info.APIID,
			DomainName:        info.DomainName,
			DomainPrefix:      domainPrefix(info),
			ExtendedRequestID: info.RequestID,
			HTTPMethod:        req.Method,
			Identity:          identityV1{SourceIP: info.SourceIP, UserAgent: req.UserAgent()},
			Authorizer:        cmpAuthorizer(info.Authorizer),
			Path:              path,
			Protocol:          "HTTP/1.1",
			RequestID:         info.RequestID,
			RequestTime:       formatTime(info.Time),
			RequestTimeEpoch:  info.Time.UnixMilli(),
			ResourceID:        info.RouteKey,
			ResourcePath:      resource,
			Stage:             info.Stage,
		},
		PathParameters: nonEmpty(info.PathParameters),
		StageVariables: nonEmpty(info.StageVariables),
	}
	ev.Body, ev.IsBase64Encoded = encodeBody(req, body)
	return ev
}

func rawPath(req *http.Request, info RequestInfo) string {
	if info.RawPath != "" {
		return info.RawPath
	}
	return req.URL.EscapedPath()
}

// hopByHop are the headers of one connection, which API Gateway does not pass on.
var hopByHop = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// forwardedHeaders returns the request's headers as API Gateway passes them to an integration,
// names in Go's canonical form: the client's headers without the hop-by-hop ones, plus Host,
// Content-Length (always, "0" without a body) and the X-Forwarded-For/-Proto/-Port that API
// Gateway sets (X-Forwarded-For gets the source address appended).
func forwardedHeaders(req *http.Request, body []byte, info RequestInfo) map[string][]string {
	h := make(map[string][]string, len(req.Header)+5)
	for name, values := range req.Header {
		if len(values) > 0 {
			h[http.CanonicalHeaderKey(name)] = append(h[http.CanonicalHeaderKey(name)], values...)
		}
	}
	for _, name := range hopByHop {
		delete(h, name)
	}
	if req.Host != "" {
		h["Host"] = []string{req.Host}
	}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	if info.SourceIP != "" {
		xff := info.SourceIP
		if prev := h["X-Forwarded-For"]; len(prev) > 0 {
			xff = strings.Join(prev, ", ") + ", " + xff
		}
		h["X-Forwarded-For"] = []string{xff}
	}
	proto, port := "http", "80"
	if req.TLS != nil {
		proto, port = "https", "443"
	}
	if _, p, err := net.SplitHostPort(req.Host); err == nil && p != "" {
		port = p
	}
	h["X-Forwarded-Proto"] = []string{proto}
	h["X-Forwarded-Port"] = []string{port}
	return h
}

// splitCookies splits Cookie header values into their "name=value" pairs.
func splitCookies(values []string) []string {
	var out []string
	for _, v := range values {
		for c := range strings.SplitSeq(v, ";") {
			if c = strings.TrimSpace(c); c != "" {
				out = append(out, c)
			}
		}
	}
	return out
}

// parseQuery decodes a query string into its parameters, values in the order given. Pairs that
// do not decode are skipped, as url.ParseQuery does.
func parseQuery(raw string) map[string][]string {
	if raw == "" {
		return nil
	}
	q, _ := url.ParseQuery(raw)
	return q
}

// textTypes are the media types whose bodies an HTTP API passes as text; any other body is
// base64-encoded.
var textTypes = []string{"application/json", "application/xml", "application/javascript"}

// IsTextContentType reports whether an HTTP API passes a request body of this Content-Type to
// a Lambda function as text rather than base64-encoded: only text/*, application/json,
// application/xml and application/javascript are text.
func IsTextContentType(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt, _, _ = strings.Cut(contentType, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
	}
	return strings.HasPrefix(mt, "text/") || slices.Contains(textTypes, mt)
}

func encodeBody(req *http.Request, body []byte) (*string, bool) {
	if len(body) == 0 {
		return nil, false
	}
	if IsTextContentType(req.Header.Get("Content-Type")) {
		s := string(body)
		return &s, false
	}
	s := base64.StdEncoding.EncodeToString(body)
	return &s, true
}

func domainPrefix(info RequestInfo) string {
	if info.DomainPrefix != "" {
		return info.DomainPrefix
	}
	prefix, _, _ := strings.Cut(info.DomainName, ".")
	return prefix
}

// formatTime renders a request time as API Gateway does: "12/Mar/2020:19:03:58 +0000".
func formatTime(t time.Time) string {
	return t.UTC().Format("02/Jan/2006:15:04:05 -0700")
}

func nonEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}
