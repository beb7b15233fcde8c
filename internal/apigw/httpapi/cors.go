package httpapi

import (
	"net/http"
	"strconv"
	"strings"
)

// CORSConfig is an HTTP API's CORS configuration (apigatewayv2's Cors).
type CORSConfig struct {
	// AllowOrigins are origins ("https://www.example.com"), "*" for any origin, or a scheme
	// followed by "*" ("https://*") for any origin of that scheme. Origins compare without
	// regard to case.
	AllowOrigins     []string
	AllowMethods     []string
	AllowHeaders     []string
	ExposeHeaders    []string
	AllowCredentials bool
	// MaxAge is how many seconds a browser may cache a preflight response; nil sends no
	// Access-Control-Max-Age, -1 disables caching.
	MaxAge *int
}

// IsPreflight reports whether req is a CORS preflight request: OPTIONS with an Origin and an
// Access-Control-Request-Method header.
func IsPreflight(req *http.Request) bool {
	return req.Method == http.MethodOptions && req.Header.Get("Origin") != "" &&
		req.Header.Get("Access-Control-Request-Method") != ""
}

// CORSPreflight answers a preflight request as an API with a CORS configuration does: API
// Gateway itself answers every preflight request with 204, whatever the API's routes (an OPTIONS
// route included), so handled is true for any preflight request when cfg is not nil. The
// response carries the CORS headers only when the Origin is allowed. handled is false when cfg
// is nil (the API has no CORS configuration) or req is not a preflight request: the request is
// then routed like any other.
//
// Callers that run route authorizers should know that a $default route with an authorizer
// catches OPTIONS requests too; AWS advises an unauthorized "OPTIONS /{proxy+}" route then.
func CORSPreflight(cfg *CORSConfig, req *http.Request) (resp Response, handled bool) {
	if cfg == nil || !IsPreflight(req) {
		return Response{}, false
	}
	h := http.Header{}
	if origin, ok := allowedOrigin(cfg, req.Header.Get("Origin")); ok {
		h.Set("Access-Control-Allow-Origin", origin)
		if cfg.AllowCredentials {
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		if len(cfg.AllowMethods) > 0 {
			h.Set("Access-Control-Allow-Methods", strings.Join(cfg.AllowMethods, ","))
		}
		if len(cfg.AllowHeaders) > 0 {
			h.Set("Access-Control-Allow-Headers", strings.Join(cfg.AllowHeaders, ","))
		}
		if cfg.MaxAge != nil {
			h.Set("Access-Control-Max-Age", strconv.Itoa(*cfg.MaxAge))
		}
	}
	return Response{Status: http.StatusNoContent, Header: h}, true
}

// CORSHeaders returns the CORS headers API Gateway adds to the response to an actual
// (non-preflight) request: Access-Control-Allow-Origin, -Allow-Credentials and -Expose-Headers.
// It returns none when cfg is nil, the request has no Origin, or the Origin is not allowed.
func CORSHeaders(cfg *CORSConfig, req *http.Request) http.Header {
	h := http.Header{}
	if cfg == nil {
		return h
	}
	origin, ok := allowedOrigin(cfg, req.Header.Get("Origin"))
	if !ok {
		return h
	}
	h.Set("Access-Control-Allow-Origin", origin)
	if cfg.AllowCredentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if len(cfg.ExposeHeaders) > 0 {
		h.Set("Access-Control-Expose-Headers", strings.Join(cfg.ExposeHeaders, ","))
	}
	return h
}

// ApplyCORS sets the CORS headers of an integration's response h to an actual request, as API
// Gateway does for an API with a CORS configuration: the CORS headers the integration returned
// are dropped, and CORSHeaders are set. It does nothing when cfg is nil.
func ApplyCORS(cfg *CORSConfig, req *http.Request, h http.Header) {
	if cfg == nil {
		return
	}
	for name := range h {
		if len(name) >= len("Access-Control-") && strings.EqualFold(name[:len("Access-Control-")], "Access-Control-") {
			delete(h, name)
		}
	}
	for name, values := range CORSHeaders(cfg, req) {
		h[name] = values
	}
}

// allowedOrigin returns the Access-Control-Allow-Origin value for a request's Origin, if the
// configuration allows it: the origin itself when it is listed or matches a "scheme://*"
// entry, "*" when any origin is allowed (the origin itself if credentials are allowed, since
// browsers refuse "*" with credentials).
func allowedOrigin(cfg *CORSConfig, origin string) (string, bool) {
	if origin == "" {
		return "", false
	}
	anyOrigin := false
	for _, o := range cfg.AllowOrigins {
		switch {
		case o == "*":
			anyOrigin = true
		case strings.EqualFold(o, origin):
			return origin, true
		case strings.HasSuffix(o, "*"):
			prefix := o[:len(o)-1]
			if len(origin) > len(prefix) && strings.EqualFold(origin[:len(prefix)], prefix) {
				return origin, true
			}
		}
	}
	switch {
	case anyOrigin && cfg.AllowCredentials:
		return origin, true
	case anyOrigin:
		return "*", true
	}
	return "", false
}

// WithCORS answers a request with a CORS configuration (nil for none): a preflight request as
// CORSPreflight does, any other with serve's response and the CORS headers it should carry.
func WithCORS(cfg *CORSConfig, req *http.Request, serve func() Response) Response {
	if cfg != nil && IsPreflight(req) {
		if resp, handled := CORSPreflight(cfg, req); handled {
			return resp
		}
	}
	resp := serve()
	if cfg != nil {
		ApplyCORS(cfg, req, resp.Header)
	}
	return resp
}
