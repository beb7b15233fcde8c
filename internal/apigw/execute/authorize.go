package execute

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nubis/nubis/internal/apigw"
	"github.com/nubis/nubis/internal/apigw/httpapi"
	"github.com/nubis/nubis/internal/glob"
)

// Lambda authorizers (routes with AuthorizationType CUSTOM): the route's authorizer function gets
// a REQUEST event (payload 1.0 or 2.0) and answers, simply, {"isAuthorized": bool, "context":
// {...}}, or with an IAM policy that must allow execute-api:Invoke on the route's ARN. A request
// without one of the authorizer's identity sources is 401 without asking; a denial is 403; an
// authorizer that fails or answers nonsense is 500. Answers are cached per identity for the
// authorizer's TTL.

// authResult is an authorizer's answer, kept for its TTL.
type authResult struct {
	answer  []byte
	expires time.Time
}

type authCache struct {
	mu sync.Mutex
	m  map[string]authResult
}

func (c *authCache) get(key string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.m[key]
	if !ok || time.Now().After(r.expires) {
		delete(c.m, key)
		return nil, false
	}
	return r.answer, true
}

func (c *authCache) put(key string, answer []byte, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) > 10000 {
		c.m = map[string]authResult{}
	}
	c.m[key] = authResult{answer: answer, expires: time.Now().Add(ttl)}
}

// identityValues evaluates an authorizer's identity sources; ok is false when one is missing.
func identityValues(a apigw.Authorizer, r *http.Request, info httpapi.RequestInfo) ([]string, bool) {
	var out []string
	for _, src := range a.IdentitySource {
		var v string
		switch {
		case strings.EqualFold(src, "$request.header.host"):
			v = r.Host // Go keeps it out of r.Header
		case strings.HasPrefix(src, "$request.header."):
			v = strings.Join(r.Header.Values(strings.TrimPrefix(src, "$request.header.")), ",")
		case strings.HasPrefix(src, "$request.querystring."):
			v = strings.Join(r.URL.Query()[strings.TrimPrefix(src, "$request.querystring.")], ",")
		case strings.HasPrefix(src, "$stageVariables."):
			v = info.StageVariables[strings.TrimPrefix(src, "$stageVariables.")]
		case strings.HasPrefix(src, "$context."):
			v = contextVariable(strings.TrimPrefix(src, "$context."), r, info)
		}
		if v == "" {
			return nil, false
		}
		out = append(out, v)
	}
	return out, true
}

// authorize asks the route's authorizer about a request. It returns what the integration's event
// (payload format version) carries as requestContext.authorizer, or the response to send instead
// (deny != nil).
func (h *Handler) authorize(ctx context.Context, r *http.Request, body []byte, snap *apigw.Snapshot, stage *apigw.Stage, route apigw.Route,
	info httpapi.RequestInfo, routeArn, version string) (authorizer any, deny *httpapi.Response) {
	fail := func(status int, msg string) (any, *httpapi.Response) {
		resp := httpapi.Message(status, msg)
		return nil, &resp
	}
	var a *apigw.Authorizer
	for i := range stage.Deployment.Authorizers {
		if stage.Deployment.Authorizers[i].ID == route.AuthorizerID {
			a = &stage.Deployment.Authorizers[i]
		}
	}
	if a == nil || a.FunctionARN == "" {
		return fail(http.StatusInternalServerError, "Internal Server Error")
	}
	ids, ok := identityValues(*a, r, info)
	if !ok {
		return fail(http.StatusUnauthorized, "Unauthorized")
	}
	// Cached per API, stage, deployment (a new one forgets all), authorizer and identity.
	idJSON, _ := json.Marshal(ids)
	key := strings.Join([]string{snap.API.ID, stage.Name, stage.Deployment.ID, a.ID, string(idJSON)}, "\x00")
	answer, cached := []byte(nil), false
	if a.TTLSeconds > 0 {
		answer, cached = h.auth.get(key)
	}
	if !cached {
		event, err := authorizerEvent(*a, r, body, info, ids, routeArn)
		if err != nil {
			return fail(http.StatusInternalServerError, "Internal Server Error")
		}
		sourceArn := "arn:aws:execute-api:" + h.cfg.Region + ":" + h.cfg.Account + ":" + snap.API.ID + "/authorizers/" + a.ID
		res, ok := h.invokeWithin(ctx, a.FunctionARN, sourceArn, event, authorizerTimeout)
		if !ok {
			h.cfg.Log.Warn("execute-api authorizer timed out", "authorizer", a.ID, "function", a.FunctionARN)
			return fail(http.StatusInternalServerError, "Internal Server Error")
		}
		if res.err != nil || res.failed {
			if res.err != nil {
				h.cfg.Log.Warn("execute-api authorizer failed", "authorizer", a.ID, "function", a.FunctionARN, "err", res.err)
			}
			return fail(http.StatusInternalServerError, "Internal Server Error")
		}
		answer = res.payload
	}
	allowed, authCtx, principal, err := evaluate(*a, answer, routeArn)
	if err != nil {
		h.cfg.Log.Warn("execute-api authorizer answered what API Gateway cannot read", "authorizer", a.ID, "err", err)
		return fail(http.StatusInternalServerError, "Internal Server Error")
	}
	if !cached && a.TTLSeconds > 0 {
		h.auth.put(key, answer, time.Duration(a.TTLSeconds)*time.Second) // only answers that could be read
	}
	if !allowed {
		return fail(http.StatusForbidden, "Forbidden")
	}
	return authorizerForEvent(version, authCtx, principal), nil
}

// authorizerForEvent is requestContext.authorizer of the integration's event: {"lambda": context}
// in payload 2.0, the context's members with principalId and integrationLatency in 1.0.
func authorizerForEvent(version string, authCtx map[string]any, principal string) any {
	if authCtx == nil {
		authCtx = map[string]any{}
	}
	if version == httpapi.Version1 {
		out := map[string]any{"integrationLatency": 0}
		for k, v := range authCtx {
			out[k] = v
		}
		if principal != "" {
			out["principalId"] = principal
		}
		return out
	}
	return map[string]any{"lambda": authCtx}
}

// authorizerEvent is the REQUEST event the authorizer gets: the request's event without its body,
// with the type, the route's ARN and the identity.
func authorizerEvent(a apigw.Authorizer, r *http.Request, body []byte, info httpapi.RequestInfo, ids []string, routeArn string) ([]byte, error) {
	raw, err := httpapi.Event(a.PayloadFormatVersion, r, body, info)
	if err != nil {
		return nil, err
	}
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, err
	}
	delete(ev, "body")
	delete(ev, "isBase64Encoded")
	ev["type"] = "REQUEST"
	if a.PayloadFormatVersion == httpapi.Version1 {
		ev["methodArn"] = routeArn
		ev["identitySource"] = strings.Join(ids, ",")
		ev["authorizationToken"] = strings.Join(ids, ",")
		if rc, ok := ev["requestContext"].(map[string]any); ok {
			delete(rc, "authorizer")
		}
	} else {
		ev["routeArn"] = routeArn
		ev["identitySource"] = ids
	}
	return json.Marshal(ev)
}

// evaluate reads an authorizer's answer: a simple response, or an IAM policy that must allow
// execute-api:Invoke on routeArn (a Deny wins).
func evaluate(a apigw.Authorizer, answer []byte, routeArn string) (allowed bool, authCtx map[string]any, principal string, err error) {
	// Member names are matched exactly, as AWS reads them (Go's decoder would ignore case).
	var top map[string]json.RawMessage
	if err := json.Unmarshal(answer, &top); err != nil {
		return false, nil, "", errInvalidAnswer
	}
	if raw, ok := top["context"]; ok && json.Unmarshal(raw, &authCtx) != nil {
		return false, nil, "", errInvalidAnswer
	}
	if a.SimpleResponses {
		var yes bool
		raw, ok := top["isAuthorized"]
		if !ok || json.Unmarshal(raw, &yes) != nil {
			return false, nil, "", errInvalidAnswer
		}
		return yes, authCtx, "", nil
	}
	if raw, ok := top["principalId"]; ok {
		json.Unmarshal(raw, &principal)
	}
	var doc map[string]json.RawMessage
	if raw, ok := top["policyDocument"]; !ok || json.Unmarshal(raw, &doc) != nil {
		return false, nil, "", errInvalidAnswer
	}
	var statements stringOrList[map[string]json.RawMessage]
	if raw, ok := doc["Statement"]; !ok || json.Unmarshal(raw, &statements) != nil {
		return false, nil, "", errInvalidAnswer
	}
	for _, m := range statements {
		st, err := parseStatement(m)
		if err != nil {
			return false, nil, "", err
		}
		if !st.matches(routeArn) {
			continue
		}
		switch st.Effect {
		case "Deny":
			return false, nil, principal, nil
		case "Allow":
			allowed = true
		}
	}
	return allowed, authCtx, principal, nil
}

// parseStatement reads one policy statement; NotAction, NotResource and Condition are refused
// rather than ignored (ignoring them could allow what they deny).
func parseStatement(m map[string]json.RawMessage) (statement, error) {
	var st statement
	for k, raw := range m {
		var err error
		switch k {
		case "Effect":
			err = json.Unmarshal(raw, &st.Effect)
		case "Action":
			err = json.Unmarshal(raw, &st.Action)
		case "Resource":
			err = json.Unmarshal(raw, &st.Resource)
		case "Sid":
		default:
			return st, errorString("the authorizer's policy has " + k + ", which nubis does not evaluate")
		}
		if err != nil {
			return st, errInvalidAnswer
		}
	}
	return st, nil
}

type statement struct {
	Effect   string
	Action   stringOrList[string]
	Resource stringOrList[string]
}

// authorizerTimeout bounds an authorizer's answer, as API Gateway does (10 s).
const authorizerTimeout = 10 * time.Second

// contextVariable is the value of a $context variable (one of apigw.ContextVariables).
func contextVariable(name string, r *http.Request, info httpapi.RequestInfo) string {
	switch name {
	case "accountId":
		return info.AccountID
	case "apiId":
		return info.APIID
	case "domainName":
		return info.DomainName
	case "domainPrefix":
		p, _, _ := strings.Cut(info.DomainName, ".")
		return p
	case "httpMethod":
		return r.Method
	case "identity.sourceIp":
		return info.SourceIP
	case "identity.userAgent":
		return r.UserAgent()
	case "path":
		return r.URL.Path
	case "protocol":
		return "HTTP/1.1"
	case "requestId":
		return info.RequestID
	case "routeKey":
		return info.RouteKey
	case "stage":
		return info.Stage
	}
	return ""
}

func (st statement) matches(routeArn string) bool {
	action := false
	for _, a := range st.Action {
		if a == "*" || glob.Match(strings.ToLower(a), "execute-api:invoke") {
			action = true
		}
	}
	if !action {
		return false
	}
	for _, res := range st.Resource {
		if glob.Match(res, routeArn) {
			return true
		}
	}
	return false
}

// stringOrList is a policy member that may be one value or a list of them.
type stringOrList[T any] []T

func (l *stringOrList[T]) UnmarshalJSON(b []byte) error {
	var one T
	if err := json.Unmarshal(b, &one); err == nil {
		*l = []T{one}
		return nil
	}
	var many []T
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*l = many
	return nil
}

var errInvalidAnswer = errorString("the authorizer's answer is neither a simple response nor an IAM policy")

type errorString string

func (e errorString) Error() string { return string(e) }
