package httpapi

import (
	"errors"
	"fmt"
	"strings"
)

// DefaultRouteKey is the key of the catch-all route, chosen when no other route matches.
const DefaultRouteKey = "$default"

// routeMethods are the methods a route key may name; ANY matches every method that has no route
// of its own for the path.
var routeMethods = map[string]bool{
	"ANY": true, "DELETE": true, "GET": true, "HEAD": true, "OPTIONS": true, "PATCH": true,
	"POST": true, "PUT": true,
}

type segmentKind uint8

// The order is the order of precedence: a literal segment is more specific than a path
// variable, which is more specific than a greedy one.
const (
	literalSegment segmentKind = iota
	paramSegment
	greedySegment
)

type segment struct {
	kind segmentKind
	text string // the literal, or the variable's name (without braces and "+")
}

type route struct {
	key    string
	method string
	segs   []segment
}

func (r *route) greedy() bool {
	return len(r.segs) > 0 && r.segs[len(r.segs)-1].kind == greedySegment
}

// shape identifies the requests a route matches: two routes of one method and one shape that
// differ only in the names of their variables would be ambiguous, and API Gateway refuses them.
func (r *route) shape() string {
	var b strings.Builder
	b.WriteString(r.method)
	b.WriteByte(' ')
	for _, s := range r.segs {
		b.WriteByte('/')
		switch s.kind {
		case literalSegment:
			b.WriteString(s.text)
		case paramSegment:
			b.WriteString("{}")
		case greedySegment:
			b.WriteString("{+}")
		}
	}
	return b.String()
}

// ValidRouteKey reports whether key is a route key an HTTP API accepts: "$default", or a method
// (GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or ANY), one space and a resource path. The path
// starts with "/", has no empty segment and no trailing "/" (except the root path "/" itself);
// a segment is a literal or a whole-segment variable "{name}", and a greedy variable "{name+}"
// may only be the last segment.
func ValidRouteKey(key string) error {
	_, err := parseRouteKey(key)
	return err
}

func parseRouteKey(key string) (route, error) {
	if key == DefaultRouteKey {
		return route{key: key}, nil
	}
	method, path, ok := strings.Cut(key, " ")
	if !ok {
		return route{}, fmt.Errorf("route key %q: want $default or \"METHOD /path\"", key)
	}
	if !routeMethods[method] {
		return route{}, fmt.Errorf("route key %q: unsupported method %q", key, method)
	}
	segs, err := parseRoutePath(path)
	if err != nil {
		return route{}, fmt.Errorf("route key %q: %w", key, err)
	}
	return route{key: key, method: method, segs: segs}, nil
}

func parseRoutePath(path string) ([]segment, error) {
	if !strings.HasPrefix(path, "/") {
		return nil, errors.New("the path must start with /")
	}
	if path == "/" {
		return nil, nil
	}
	parts := strings.Split(path[1:], "/")
	segs := make([]segment, 0, len(parts))
	names := map[string]bool{}
	for i, p := range parts {
		switch {
		case p == "" && i == len(parts)-1:
			return nil, errors.New("the path must not end with /")
		case p == "":
			return nil, errors.New("the path has an empty segment")
		case strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}"):
			name, kind := p[1:len(p)-1], paramSegment
			if n, ok := strings.CutSuffix(name, "+"); ok {
				if i != len(parts)-1 {
					return nil, errors.New("a greedy path variable must be the last segment")
				}
				name, kind = n, greedySegment
			}
			if !validVariableName(name) {
				return nil, fmt.Errorf("invalid path variable %q", p)
			}
			if names[name] {
				return nil, fmt.Errorf("path variable %q appears twice", name)
			}
			names[name] = true
			segs = append(segs, segment{kind: kind, text: name})
		default:
			if strings.ContainsAny(p, "{}?#") || strings.ContainsFunc(p, isSpaceOrControl) {
				return nil, fmt.Errorf("invalid path segment %q", p)
			}
			segs = append(segs, segment{kind: literalSegment, text: p})
		}
	}
	return segs, nil
}

func validVariableName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' ||
			c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// Router selects the route of a request as API Gateway HTTP APIs do. Among the routes whose
// method is the request's (or ANY) and whose path matches, it prefers, in order:
//
//  1. a route without a greedy variable (a full match) over one with a greedy variable;
//  2. the more specific path, comparing segment by segment from the left: a literal segment
//     over a {variable}, a {variable} over a {greedy+} one;
//  3. the request's own method over ANY.
//
// The $default route catches what no other route matches. A {variable} matches one non-empty
// segment; a {greedy+} variable matches the rest of the path, one segment or more, and captures
// it without its leading slash. A trailing slash is significant: "/pets/" does not match
// "GET /pets". A Router is immutable and safe for concurrent use.
type Router struct {
	routes     []route
	hasDefault bool
}

// NewRouter builds the router of an API's routes. It refuses an invalid key (see ValidRouteKey),
// a key given twice, and two routes of one method whose paths differ only in the names of their
// variables.
func NewRouter(routeKeys []string) (*Router, error) {
	r := &Router{}
	keys := map[string]bool{}
	shapes := map[string]string{}
	for _, k := range routeKeys {
		rt, err := parseRouteKey(k)
		if err != nil {
			return nil, err
		}
		if keys[k] {
			return nil, fmt.Errorf("route key %q given twice", k)
		}
		keys[k] = true
		if k == DefaultRouteKey {
			r.hasDefault = true
			continue
		}
		sh := rt.shape()
		if other, ok := shapes[sh]; ok {
			return nil, fmt.Errorf("route key %q conflicts with %q", k, other)
		}
		shapes[sh] = k
		r.routes = append(r.routes, rt)
	}
	return r, nil
}

// Match returns the key of the route that serves a request with this method and path, and the
// values of the route's path variables (nil when it has none). The path is the request's path
// as the client sent it (still percent-encoded), without the "/{stage}" prefix of a named stage.
// ok is false when no route matches and the API has no $default route: API Gateway then answers
// 404 {"message":"Not Found"}.
func (r *Router) Match(method, path string) (routeKey string, pathParams map[string]string, ok bool) {
	p := decodePath(path)
	if p == "" {
		p = "/"
	}
	if p[0] == '/' {
		var reqSegs []string
		if p != "/" {
			reqSegs = strings.Split(p[1:], "/")
		}
		var best *route
		for i := range r.routes {
			rt := &r.routes[i]
			if rt.method != "ANY" && rt.method != method {
				continue
			}
			if !rt.matches(reqSegs) {
				continue
			}
			if best == nil || moreSpecific(rt, best) {
				best = rt
			}
		}
		if best != nil {
			return best.key, best.params(reqSegs), true
		}
	}
	if r.hasDefault {
		return DefaultRouteKey, nil, true
	}
	return "", nil, false
}

func (r *route) matches(req []string) bool {
	for i, s := range r.segs {
		if s.kind == greedySegment {
			return i < len(req) && strings.Join(req[i:], "/") != ""
		}
		if i >= len(req) {
			return false
		}
		switch s.kind {
		case literalSegment:
			if req[i] != s.text {
				return false
			}
		case paramSegment:
			if req[i] == "" {
				return false
			}
		}
	}
	return len(req) == len(r.segs)
}

func (r *route) params(req []string) map[string]string {
	var m map[string]string
	for i, s := range r.segs {
		var v string
		switch s.kind {
		case paramSegment:
			v = req[i]
		case greedySegment:
			v = strings.Join(req[i:], "/")
		default:
			continue
		}
		if m == nil {
			m = map[string]string{}
		}
		m[s.text] = strings.ReplaceAll(v, "%25", "%")
	}
	return m
}

// moreSpecific reports whether a, which matches the same request as b, takes precedence over b.
func moreSpecific(a, b *route) bool {
	if ag, bg := a.greedy(), b.greedy(); ag != bg {
		return !ag
	}
	for i := 0; i < len(a.segs) && i < len(b.segs); i++ {
		if ak, bk := a.segs[i].kind, b.segs[i].kind; ak != bk {
			return ak < bk
		}
	}
	if la, lb := len(a.segs), len(b.segs); la != lb {
		return la > lb
	}
	return a.method != "ANY" && b.method == "ANY"
}

// decodePath percent-decodes a request path the way an HTTP API does before routing and before
// putting it in an event: every valid escape is decoded except "%25", which stays as it is.
// Malformed escapes are left alone.
func decodePath(p string) string {
	if !strings.Contains(p, "%") {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]) {
			c := unhex(p[i+1])<<4 | unhex(p[i+2])
			if c != '%' {
				b.WriteByte(c)
				i += 2
				continue
			}
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
