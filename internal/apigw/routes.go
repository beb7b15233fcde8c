package apigw

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

// routeMethods are the methods a route key may name; ANY matches every method.
var routeMethods = map[string]bool{"GET": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true,
	"HEAD": true, "OPTIONS": true, "ANY": true}

var (
	literalSegment = regexp.MustCompile(`^[A-Za-z0-9._~!$&'()*+,;=:@%-]+$`)
	paramSegment   = regexp.MustCompile(`^\{([A-Za-z0-9._-]+)(\+?)\}$`)
)

// DefaultRouteKey is the route key of the route that serves what no other route matches.
const DefaultRouteKey = "$default"

// ParseRouteKey splits an HTTP API route key, "METHOD /path", into its method and path, checking
// it as API Gateway does: METHOD is GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or ANY; the path
// starts with a slash, and each segment is literal text or a {parameter}, the last one possibly a
// greedy {parameter+}. For "$default" both are empty.
func ParseRouteKey(key string) (method, path string, err error) {
	if key == DefaultRouteKey {
		return "", "", nil
	}
	method, path, ok := strings.Cut(key, " ")
	if !ok || !routeMethods[method] || !strings.HasPrefix(path, "/") {
		return "", "", badRequest("Invalid route key: %q. A route key is $default or an HTTP method (GET, POST, PUT, "+
			"PATCH, DELETE, HEAD, OPTIONS or ANY), a space and a path that starts with /, such as 'GET /pets/{id}'.", key)
	}
	if path == "/" {
		return method, path, nil
	}
	segs := strings.Split(path[1:], "/")
	seen := map[string]bool{}
	for i, seg := range segs {
		if m := paramSegment.FindStringSubmatch(seg); m != nil {
			if m[2] == "+" && i != len(segs)-1 {
				return "", "", badRequest("Invalid route key: %q. A greedy path parameter such as {proxy+} must be the last part of the path.", key)
			}
			if seen[m[1]] {
				return "", "", badRequest("Invalid route key: %q. The path parameter {%s} appears more than once.", key, m[1])
			}
			seen[m[1]] = true
			continue
		}
		if !literalSegment.MatchString(seg) {
			return "", "", badRequest("Invalid route key: %q. One or more path parts appear to be invalid.", key)
		}
	}
	return method, path, nil
}

func validateRouteKey(key string) error {
	_, _, err := ParseRouteKey(key)
	return err
}

func routeKeyTaken(key string) error {
	return conflict("Route with key %s already exists for this API.", key)
}

type routeInput struct {
	APIKeyRequired                   *bool                      `json:"apiKeyRequired"`
	AuthorizationScopes              []string                   `json:"authorizationScopes"`
	AuthorizationType                *string                    `json:"authorizationType"`
	AuthorizerID                     *string                    `json:"authorizerId"`
	ModelSelectionExpression         *string                    `json:"modelSelectionExpression"`
	OperationName                    *string                    `json:"operationName"`
	RequestModels                    map[string]string          `json:"requestModels"`
	RequestParameters                map[string]json.RawMessage `json:"requestParameters"`
	RouteKey                         *string                    `json:"routeKey"`
	RouteResponseSelectionExpression *string                    `json:"routeResponseSelectionExpression"`
	Target                           *string                    `json:"target"`
}

// apply sets the members in gives on rt and checks them; the target is checked against the
// store by checkTarget.
func (in routeInput) apply(rt *route) error {
	switch {
	case in.ModelSelectionExpression != nil:
		return webSocketOnly("ModelSelectionExpression")
	case in.RequestModels != nil:
		return webSocketOnly("RequestModels")
	case in.RouteResponseSelectionExpression != nil:
		return webSocketOnly("RouteResponseSelectionExpression")
	case in.RequestParameters != nil:
		return webSocketOnly("RequestParameters")
	}
	if in.RouteKey != nil {
		if err := validateRouteKey(*in.RouteKey); err != nil {
			return err
		}
		rt.RouteKey = *in.RouteKey
	}
	setString(&rt.AuthorizationType, in.AuthorizationType)
	switch rt.AuthorizationType {
	case "NONE", "AWS_IAM", "CUSTOM":
	case "JWT":
		return unsupported("Authorization type JWT (nubis has no identity provider to trust; use a Lambda authorizer, CUSTOM)")
	default:
		return badRequest("Invalid authorization type specified: %s. Must be one of [NONE, AWS_IAM, CUSTOM, JWT]", rt.AuthorizationType)
	}
	setString(&rt.AuthorizerID, in.AuthorizerID)
	if rt.AuthorizationType != "CUSTOM" && in.AuthorizationType != nil && in.AuthorizerID == nil {
		rt.AuthorizerID = "" // a route no longer CUSTOM lets its authorizer go
	}
	if len(in.AuthorizationScopes) > 0 {
		return badRequest("AuthorizationScopes are supported only with JWT and Cognito authorizers.")
	}
	if in.APIKeyRequired != nil && *in.APIKeyRequired {
		return badRequest("API keys are not supported for HTTP APIs.")
	}
	setString(&rt.OperationName, in.OperationName)
	if len(rt.OperationName) > 64 {
		return badRequest("Invalid operation name: it must be at most 64 characters long.")
	}
	setString(&rt.Target, in.Target)
	if rt.Target != "" && !strings.HasPrefix(rt.Target, "integrations/") {
		return badRequest("Invalid target: %s. A target must be integrations/<integration id>.", rt.Target)
	}
	return nil
}

// checkTarget checks that a route's target names an integration of the API.
func (s *Service) checkTarget(tx store.Tx, acct, apiID, target string) error {
	if target == "" {
		return nil
	}
	id := strings.TrimPrefix(target, "integrations/")
	if _, ok, err := store.GetJSON[integration](tx, s.childKey(acct, kindIntegration, apiID, id)); err != nil || ok {
		return err
	}
	return badRequest("Invalid target: %s. The integration %s does not exist in API %s.", target, id, apiID)
}

// checkRouteKeyFree returns ConflictException if another route of the API has key.
func (s *Service) checkRouteKeyFree(tx store.Tx, acct, apiID, routeID, key string) error {
	routes, err := listJSON[route](tx, s.childPrefix(acct, kindRoute, apiID))
	if err != nil {
		return err
	}
	for _, o := range routes {
		if o.RouteKey == key && o.RouteID != routeID {
			return routeKeyTaken(key)
		}
	}
	return nil
}

func (s *Service) createRoute(ctx context.Context, r *awsproto.Request) (int, any, error) {
	var in routeInput
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if in.RouteKey == nil {
		return 0, nil, badRequest("Route key is required.")
	}
	rt := route{AuthorizationType: "NONE"}
	if err := in.apply(&rt); err != nil {
		return 0, nil, err
	}
	acct, apiID := r.Caller.AccountID, r.HTTP.PathValue("apiId")
	err := s.update(ctx, func(tx store.Tx) error {
		if _, err := s.loadAPI(tx, acct, apiID); err != nil {
			return err
		}
		if err := s.checkTarget(tx, acct, apiID, rt.Target); err != nil {
			return err
		}
		if err := s.checkAuthorizer(tx, acct, apiID, rt); err != nil {
			return err
		}
		if err := s.checkRouteKeyFree(tx, acct, apiID, "", rt.RouteKey); err != nil {
			return err
		}
		if err := checkQuota(tx, s.childPrefix(acct, kindRoute, apiID), maxRoutes, "Routes", "this API"); err != nil {
			return err
		}
		var err error
		rt.RouteID, err = createWithID(tx, routeIDLen, func(id string) string { return s.childKey(acct, kindRoute, apiID, id) },
			func(id string) any { b := rt; b.RouteID = id; return b })
		if err != nil {
			return err
		}
		return s.autoDeploy(tx, acct, apiID)
	})
	if err != nil {
		return 0, nil, err
	}
	return 201, rt, nil
}

func (s *Service) loadRoute(tx store.Tx, acct, apiID, routeID string) (route, error) {
	return loadChild[route](s, tx, acct, apiID, kindRoute, routeID, routeNotFound(acct, routeID))
}

func (s *Service) getRoute(ctx context.Context, r *awsproto.Request) (int, any, error) {
	v, err := getOne(ctx, s, r, "routeId", s.loadRoute)
	if err != nil {
		return 0, nil, err
	}
	return 200, v, nil
}

func (s *Service) getRoutes(ctx context.Context, r *awsproto.Request) (int, any, error) {
	return getChildren[route](ctx, s, r, kindRoute)
}

// getChildren answers GetRoutes, GetIntegrations, GetStages and GetDeployments.
func getChildren[T any](ctx context.Context, s *Service, r *awsproto.Request, kind string) (int, any, error) {
	acct, apiID := r.Caller.AccountID, r.HTTP.PathValue("apiId")
	prefix := s.childPrefix(acct, kind, apiID)
	p, err := readPage(r.HTTP.URL.Query(), prefix)
	if err != nil {
		return 0, nil, err
	}
	var out listOutput[T]
	err = s.view(ctx, func(tx store.Tx) error {
		if _, err := s.loadAPI(tx, acct, apiID); err != nil {
			return err
		}
		var err error
		out.Items, out.NextToken, err = listPage[T](tx, prefix, p)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	return 200, out, nil
}

func (s *Service) updateRoute(ctx context.Context, r *awsproto.Request) (int, any, error) {
	var in routeInput
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	acct, apiID, routeID := r.Caller.AccountID, r.HTTP.PathValue("apiId"), r.HTTP.PathValue("routeId")
	var rt route
	err := s.update(ctx, func(tx store.Tx) error {
		var err error
		if rt, err = s.loadRoute(tx, acct, apiID, routeID); err != nil {
			return err
		}
		oldKey := rt.RouteKey
		if err := in.apply(&rt); err != nil {
			return err
		}
		if rt.RouteKey != oldKey {
			if rt.APIGatewayManaged {
				return badRequest("The route key of a route managed by API Gateway cannot be changed here; change it with UpdateApi.")
			}
			if err := s.checkRouteKeyFree(tx, acct, apiID, routeID, rt.RouteKey); err != nil {
				return err
			}
		}
		if err := s.checkTarget(tx, acct, apiID, rt.Target); err != nil {
			return err
		}
		if err := s.checkAuthorizer(tx, acct, apiID, rt); err != nil {
			return err
		}
		if err := store.PutJSON(tx, s.childKey(acct, kindRoute, apiID, routeID), rt); err != nil {
			return err
		}
		return s.autoDeploy(tx, acct, apiID)
	})
	if err != nil {
		return 0, nil, err
	}
	return 200, rt, nil
}

func (s *Service) deleteRoute(ctx context.Context, r *awsproto.Request) (int, any, error) {
	acct, apiID, routeID := r.Caller.AccountID, r.HTTP.PathValue("apiId"), r.HTTP.PathValue("routeId")
	err := s.update(ctx, func(tx store.Tx) error {
		rt, err := s.loadRoute(tx, acct, apiID, routeID)
		if err != nil {
			return err
		}
		if rt.APIGatewayManaged {
			return badRequest("A route managed by API Gateway cannot be deleted; delete the API instead.")
		}
		if err := tx.Delete(s.childKey(acct, kindRoute, apiID, routeID)); err != nil {
			return err
		}
		return s.autoDeploy(tx, acct, apiID)
	})
	if err != nil {
		return 0, nil, err
	}
	return 204, nil, nil
}
