package apigw

import (
	"context"
	"strings"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

// The selection expressions an HTTP API has; AWS accepts no others for HTTP.
const (
	httpRouteSelection = "$request.method $request.path"
	apiKeyHeader       = "$request.header.x-api-key"
	apiKeyAuthorizer   = "$context.authorizer.usageIdentifierKey"
)

type createAPIInput struct {
	APIKeySelectionExpression *string           `json:"apiKeySelectionExpression"`
	CorsConfiguration         *Cors             `json:"corsConfiguration"`
	CredentialsArn            *string           `json:"credentialsArn"`
	Description               *string           `json:"description"`
	DisableSchemaValidation   bool              `json:"disableSchemaValidation"`
	DisableExecuteAPIEndpoint bool              `json:"disableExecuteApiEndpoint"`
	Name                      *string           `json:"name"`
	ProtocolType              string            `json:"protocolType"`
	RouteKey                  *string           `json:"routeKey"`
	RouteSelectionExpression  *string           `json:"routeSelectionExpression"`
	Tags                      map[string]string `json:"tags"`
	Target                    *string           `json:"target"`
	Version                   *string           `json:"version"`
}

func (s *Service) createAPI(ctx context.Context, r *awsproto.Request) (int, any, error) {
	var in createAPIInput
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	switch in.ProtocolType {
	case "HTTP":
	case "WEBSOCKET":
		return 0, nil, badRequest("nubis supports HTTP APIs only; WebSocket APIs are not supported yet.")
	case "":
		return 0, nil, badRequest("ProtocolType is required. Must be one of [HTTP, WEBSOCKET]")
	default:
		return 0, nil, badRequest("Invalid protocol specified. Must be one of [HTTP, WEBSOCKET]")
	}
	if in.Name == nil {
		return 0, nil, badRequest("Name is required.")
	}
	a := api{Name: *in.Name, ProtocolType: "HTTP", APIKeySelectionExpression: apiKeyHeader,
		RouteSelectionExpression: httpRouteSelection, CorsConfiguration: in.CorsConfiguration,
		DisableExecuteAPIEndpoint: in.DisableExecuteAPIEndpoint, Tags: in.Tags,
		CreatedDate: timestamp(s.now())}
	if a.Tags == nil {
		a.Tags = map[string]string{}
	}
	setString(&a.Description, in.Description)
	setString(&a.Version, in.Version)
	setString(&a.APIKeySelectionExpression, in.APIKeySelectionExpression)
	setString(&a.RouteSelectionExpression, in.RouteSelectionExpression)
	if err := validateAPI(a); err != nil {
		return 0, nil, err
	}
	if in.DisableSchemaValidation {
		return 0, nil, webSocketOnly("DisableSchemaValidation")
	}
	if err := validateTags(in.Tags); err != nil {
		return 0, nil, err
	}
	var quick *integration
	routeKey := "$default"
	if in.Target != nil {
		if _, err := s.parseIntegrationURI(*in.Target); err != nil {
			return 0, nil, err
		}
		quick = &integration{APIGatewayManaged: true, IntegrationType: "AWS_PROXY", IntegrationURI: *in.Target,
			PayloadFormatVersion: "2.0", TimeoutInMillis: maxTimeout, ConnectionType: "INTERNET", IntegrationMethod: "POST"}
		setString(&quick.CredentialsArn, in.CredentialsArn)
		if err := validateCredentials(quick.CredentialsArn); err != nil {
			return 0, nil, err
		}
		if in.RouteKey != nil {
			routeKey = *in.RouteKey
			if err := validateRouteKey(routeKey); err != nil {
				return 0, nil, err
			}
		}
	} else if in.RouteKey != nil || in.CredentialsArn != nil {
		return 0, nil, badRequest("RouteKey and CredentialsArn are part of quick create and require a Target.")
	}
	acct := r.Caller.AccountID
	err := s.update(ctx, func(tx store.Tx) error {
		if err := checkQuota(tx, s.prefix(acct)+"api/", maxAPIs, "APIs", "this account"); err != nil {
			return err
		}
		var err error
		a.APIID, err = createWithID(tx, apiIDLen, func(id string) string { return s.apiKey(acct, id) },
			func(id string) any { b := a; b.APIID = id; return b })
		if err != nil || quick == nil {
			return err
		}
		return s.quickCreate(tx, acct, a.APIID, *quick, routeKey)
	})
	if err != nil {
		return 0, nil, err
	}
	a.APIEndpoint = s.apiEndpoint(a.APIID)
	return 201, a, nil
}

// quickCreate makes what AWS's quick create does: a Lambda proxy integration, a route to it, and
// a $default stage that deploys every change automatically (and so is deployed at once).
func (s *Service) quickCreate(tx store.Tx, acct, apiID string, in integration, routeKey string) error {
	intID, err := createWithID(tx, integrationIDLen, func(id string) string { return s.childKey(acct, kindIntegration, apiID, id) },
		func(id string) any { in.IntegrationID = id; return in })
	if err != nil {
		return err
	}
	rt := route{APIGatewayManaged: true, AuthorizationType: "NONE", RouteKey: routeKey, Target: "integrations/" + intID}
	if _, err := createWithID(tx, routeIDLen, func(id string) string { return s.childKey(acct, kindRoute, apiID, id) },
		func(id string) any { rt.RouteID = id; return rt }); err != nil {
		return err
	}
	now := timestamp(s.now())
	st := stage{APIGatewayManaged: true, AutoDeploy: true, StageName: defaultStage, CreatedDate: now, LastUpdatedDate: now,
		RouteSettings: map[string]RouteSettings{}, StageVariables: map[string]string{}, Tags: map[string]string{}}
	if err := createJSON(tx, s.childKey(acct, kindStage, apiID, st.StageName), st); err != nil {
		return err
	}
	return s.autoDeploy(tx, acct, apiID)
}

func setString(dst *string, src *string) {
	if src != nil {
		*dst = *src
	}
}

// validateAPI checks the members CreateApi and UpdateApi set.
func validateAPI(a api) error {
	if l := len(a.Name); l < 1 || l > 128 {
		return badRequest("Invalid API name specified: the name must be between 1 and 128 characters long.")
	}
	if len(a.Description) > 1024 {
		return badRequest("Invalid description: it must be at most 1024 characters long.")
	}
	if len(a.Version) > 64 {
		return badRequest("Invalid version: it must be at most 64 characters long.")
	}
	if a.RouteSelectionExpression != httpRouteSelection {
		return badRequest("Unsupported route selection expression for HTTP APIs: %s. Only %s is supported.",
			a.RouteSelectionExpression, httpRouteSelection)
	}
	if a.APIKeySelectionExpression != apiKeyHeader && a.APIKeySelectionExpression != apiKeyAuthorizer {
		return badRequest("Invalid API key selection expression: %s. Supported values are %s and %s.",
			a.APIKeySelectionExpression, apiKeyHeader, apiKeyAuthorizer)
	}
	return validateCors(a.CorsConfiguration)
}

var corsMethods = map[string]bool{"GET": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true,
	"HEAD": true, "OPTIONS": true, "*": true}

func validateCors(c *Cors) error {
	if c == nil {
		return nil
	}
	if c.MaxAge != nil && (*c.MaxAge < -1 || *c.MaxAge > 86400) {
		return badRequest("Invalid CORS configuration: maxAge must be between -1 and 86400.")
	}
	for _, m := range c.AllowMethods {
		if !corsMethods[strings.ToUpper(m)] {
			return badRequest("Invalid CORS configuration: %q is not an HTTP method. Allowed methods are GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS and *.", m)
		}
	}
	for _, o := range c.AllowOrigins {
		if o == "" {
			return badRequest("Invalid CORS configuration: an allowed origin may not be empty.")
		}
		if o == "*" && c.AllowCredentials {
			return badRequest("Invalid CORS configuration: allowCredentials cannot be true when allowOrigins is '*'.")
		}
	}
	for _, h := range append(append([]string{}, c.AllowHeaders...), c.ExposeHeaders...) {
		if h == "" {
			return badRequest("Invalid CORS configuration: a header name may not be empty.")
		}
	}
	return nil
}

func (s *Service) loadAPI(tx store.Tx, acct, apiID string) (api, error) {
	a, ok, err := store.GetJSON[api](tx, s.apiKey(acct, apiID))
	if err == nil && !ok {
		err = apiNotFound(acct, apiID)
	}
	return a, err
}

func (s *Service) getAPI(ctx context.Context, r *awsproto.Request) (int, any, error) {
	var a api
	err := s.view(ctx, func(tx store.Tx) error {
		var err error
		a, err = s.loadAPI(tx, r.Caller.AccountID, r.HTTP.PathValue("apiId"))
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	a.APIEndpoint = s.apiEndpoint(a.APIID)
	return 200, a, nil
}

func (s *Service) getAPIs(ctx context.Context, r *awsproto.Request) (int, any, error) {
	prefix := s.prefix(r.Caller.AccountID) + "api/"
	p, err := readPage(r.HTTP.URL.Query(), prefix)
	if err != nil {
		return 0, nil, err
	}
	var out listOutput[api]
	err = s.view(ctx, func(tx store.Tx) error {
		var err error
		out.Items, out.NextToken, err = listPage[api](tx, prefix, p)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	for i := range out.Items {
		out.Items[i].APIEndpoint = s.apiEndpoint(out.Items[i].APIID)
	}
	return 200, out, nil
}

type updateAPIInput struct {
	APIKeySelectionExpression *string `json:"apiKeySelectionExpression"`
	CorsConfiguration         *Cors   `json:"corsConfiguration"`
	CredentialsArn            *string `json:"credentialsArn"`
	Description               *string `json:"description"`
	DisableSchemaValidation   *bool   `json:"disableSchemaValidation"`
	DisableExecuteAPIEndpoint *bool   `json:"disableExecuteApiEndpoint"`
	Name                      *string `json:"name"`
	RouteKey                  *string `json:"routeKey"`
	RouteSelectionExpression  *string `json:"routeSelectionExpression"`
	Target                    *string `json:"target"`
	Version                   *string `json:"version"`
}

func (s *Service) updateAPI(ctx context.Context, r *awsproto.Request) (int, any, error) {
	var in updateAPIInput
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if in.DisableSchemaValidation != nil && *in.DisableSchemaValidation {
		return 0, nil, webSocketOnly("DisableSchemaValidation")
	}
	if in.Target != nil {
		if _, err := s.parseIntegrationURI(*in.Target); err != nil {
			return 0, nil, err
		}
	}
	if in.RouteKey != nil {
		if err := validateRouteKey(*in.RouteKey); err != nil {
			return 0, nil, err
		}
	}
	if in.CredentialsArn != nil {
		if err := validateCredentials(*in.CredentialsArn); err != nil {
			return 0, nil, err
		}
	}
	acct, apiID := r.Caller.AccountID, r.HTTP.PathValue("apiId")
	var a api
	err := s.update(ctx, func(tx store.Tx) error {
		var err error
		if a, err = s.loadAPI(tx, acct, apiID); err != nil {
			return err
		}
		setString(&a.Name, in.Name)
		setString(&a.Description, in.Description)
		setString(&a.Version, in.Version)
		setString(&a.APIKeySelectionExpression, in.APIKeySelectionExpression)
		setString(&a.RouteSelectionExpression, in.RouteSelectionExpression)
		if in.DisableExecuteAPIEndpoint != nil {
			a.DisableExecuteAPIEndpoint = *in.DisableExecuteAPIEndpoint
		}
		redeploy := false
		if in.CorsConfiguration != nil {
			a.CorsConfiguration, redeploy = in.CorsConfiguration, true
		}
		if err := validateAPI(a); err != nil {
			return err
		}
		if in.Target != nil || in.RouteKey != nil || in.CredentialsArn != nil {
			if err := s.updateQuick(tx, acct, apiID, in); err != nil {
				return err
			}
			redeploy = true
		}
		if err := store.PutJSON(tx, s.apiKey(acct, apiID), a); err != nil {
			return err
		}
		if redeploy {
			return s.autoDeploy(tx, acct, apiID)
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	a.APIEndpoint = s.apiEndpoint(a.APIID)
	return 200, a, nil
}

// updateQuick applies UpdateApi's quick-create members to the integration and route that quick
// create made: Target and CredentialsArn to the integration, RouteKey to the route.
func (s *Service) updateQuick(tx store.Tx, acct, apiID string, in updateAPIInput) error {
	ints, err := listJSON[integration](tx, s.childPrefix(acct, kindIntegration, apiID))
	if err != nil {
		return err
	}
	routes, err := listJSON[route](tx, s.childPrefix(acct, kindRoute, apiID))
	if err != nil {
		return err
	}
	var mi *integration
	for i := range ints {
		if ints[i].APIGatewayManaged {
			mi = &ints[i]
		}
	}
	var mr *route
	for i := range routes {
		if routes[i].APIGatewayManaged {
			mr = &routes[i]
		}
	}
	if mi == nil || mr == nil {
		return badRequest("Target, RouteKey and CredentialsArn can only be updated on an API made with quick create.")
	}
	setString(&mi.IntegrationURI, in.Target)
	setString(&mi.CredentialsArn, in.CredentialsArn)
	if err := store.PutJSON(tx, s.childKey(acct, kindIntegration, apiID, mi.IntegrationID), *mi); err != nil {
		return err
	}
	if in.RouteKey != nil && *in.RouteKey != mr.RouteKey {
		for _, o := range routes {
			if o.RouteKey == *in.RouteKey {
				return routeKeyTaken(*in.RouteKey)
			}
		}
		mr.RouteKey = *in.RouteKey
		return store.PutJSON(tx, s.childKey(acct, kindRoute, apiID, mr.RouteID), *mr)
	}
	return nil
}

func (s *Service) deleteAPI(ctx context.Context, r *awsproto.Request) (int, any, error) {
	acct, apiID := r.Caller.AccountID, r.HTTP.PathValue("apiId")
	err := s.update(ctx, func(tx store.Tx) error {
		if _, err := s.loadAPI(tx, acct, apiID); err != nil {
			return err
		}
		for _, kind := range childKinds {
			kvs, err := tx.List(s.childPrefix(acct, kind, apiID), "", 0)
			if err != nil {
				return err
			}
			for _, kv := range kvs {
				if err := tx.Delete(kv.Key); err != nil {
					return err
				}
			}
		}
		return tx.Delete(s.apiKey(acct, apiID))
	})
	if err != nil {
		return 0, nil, err
	}
	return 204, nil, nil
}

func (s *Service) deleteCors(ctx context.Context, r *awsproto.Request) (int, any, error) {
	acct, apiID := r.Caller.AccountID, r.HTTP.PathValue("apiId")
	err := s.update(ctx, func(tx store.Tx) error {
		a, err := s.loadAPI(tx, acct, apiID)
		if err != nil {
			return err
		}
		a.CorsConfiguration = nil
		if err := store.PutJSON(tx, s.apiKey(acct, apiID), a); err != nil {
			return err
		}
		return s.autoDeploy(tx, acct, apiID)
	})
	if err != nil {
		return 0, nil, err
	}
	return 204, nil, nil
}
