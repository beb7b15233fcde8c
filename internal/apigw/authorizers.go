package apigw

import (
	"context"
	"regexp"
	"slices"
	"strings"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

// Lambda authorizers of HTTP APIs (AuthorizerType REQUEST): a function that API Gateway asks,
// before a route with AuthorizationType CUSTOM runs, whether the request may go on, and that can
// hand its integration a context. JWT authorizers need an identity provider nubis does not have.

type authorizer struct {
	AuthorizerCredentialsArn       string   `json:"authorizerCredentialsArn,omitempty"`
	AuthorizerID                   string   `json:"authorizerId"`
	AuthorizerPayloadFormatVersion string   `json:"authorizerPayloadFormatVersion,omitempty"`
	AuthorizerResultTTLInSeconds   int      `json:"authorizerResultTtlInSeconds"`
	AuthorizerType                 string   `json:"authorizerType"`
	AuthorizerURI                  string   `json:"authorizerUri,omitempty"`
	EnableSimpleResponses          bool     `json:"enableSimpleResponses"`
	IdentitySource                 []string `json:"identitySource"`
	Name                           string   `json:"name"`
}

const (
	kindAuthorizer   = "authorizer"
	authorizerIDLen  = 6
	maxAuthorizers   = 10
	maxAuthorizerTTL = 3600
)

// identitySourceRE is one identity source of a REQUEST authorizer.
var identitySourceRE = regexp.MustCompile(`^\$(request\.header|request\.querystring|context|stageVariables)\.[A-Za-z0-9._-]+$`)

// ContextVariables are the $context variables an identity source may name: those the data plane
// knows.
var ContextVariables = []string{"accountId", "apiId", "domainName", "domainPrefix", "httpMethod", "identity.sourceIp",
	"identity.userAgent", "path", "protocol", "requestId", "routeKey", "stage"}

func authorizerNotFound(account, id string) error {
	return notFound("Invalid Authorizer identifier specified %s:%s", account, id)
}

type authorizerInput struct {
	AuthorizerCredentialsArn       *string  `json:"authorizerCredentialsArn"`
	AuthorizerPayloadFormatVersion *string  `json:"authorizerPayloadFormatVersion"`
	AuthorizerResultTTLInSeconds   *int     `json:"authorizerResultTtlInSeconds"`
	AuthorizerType                 *string  `json:"authorizerType"`
	AuthorizerURI                  *string  `json:"authorizerUri"`
	EnableSimpleResponses          *bool    `json:"enableSimpleResponses"`
	IdentitySource                 []string `json:"identitySource"`
	IdentityValidationExpression   *string  `json:"identityValidationExpression"`
	JWTConfiguration               any      `json:"jwtConfiguration"`
	Name                           *string  `json:"name"`
}

// applyAuthorizer sets what in gives on a and checks the result.
func (s *Service) applyAuthorizer(in authorizerInput, a *authorizer) error {
	setString(&a.AuthorizerType, in.AuthorizerType)
	switch a.AuthorizerType {
	case "REQUEST":
	case "JWT":
		return unsupported("JWT authorizers (nubis has no identity provider to trust; use a Lambda authorizer, REQUEST)")
	default:
		return badRequest("Invalid authorizer type specified: %s. Must be one of [REQUEST, JWT]", a.AuthorizerType)
	}
	setString(&a.Name, in.Name)
	if a.Name == "" || len(a.Name) > 128 {
		return badRequest("Invalid authorizer name: it must be 1 to 128 characters long.")
	}
	setString(&a.AuthorizerURI, in.AuthorizerURI)
	if a.AuthorizerURI == "" {
		return badRequest("AuthorizerUri is required for a REQUEST authorizer.")
	}
	if _, err := s.parseIntegrationURI(a.AuthorizerURI); err != nil || !invocationARN.MatchString(a.AuthorizerURI) {
		return badRequest("Invalid authorizer URI specified: %s. Give the function's invocation ARN "+
			"(arn:aws:apigateway:<region>:lambda:path/2015-03-31/functions/<function ARN>/invocations).", a.AuthorizerURI)
	}
	setString(&a.AuthorizerPayloadFormatVersion, in.AuthorizerPayloadFormatVersion)
	switch a.AuthorizerPayloadFormatVersion {
	case "1.0", "2.0":
	case "":
		return badRequest("AuthorizerPayloadFormatVersion is required for REQUEST authorizers of HTTP APIs (1.0 or 2.0).")
	default:
		return badRequest("Invalid authorizer payload format version specified: %s. Must be 1.0 or 2.0.", a.AuthorizerPayloadFormatVersion)
	}
	if in.EnableSimpleResponses != nil {
		a.EnableSimpleResponses = *in.EnableSimpleResponses
	}
	if a.EnableSimpleResponses && a.AuthorizerPayloadFormatVersion != "2.0" {
		return badRequest("EnableSimpleResponses is supported only with authorizer payload format version 2.0.")
	}
	if in.IdentitySource != nil {
		a.IdentitySource = in.IdentitySource
	}
	for _, src := range a.IdentitySource {
		if !identitySourceRE.MatchString(src) {
			return badRequest("Invalid identity source specified: %s. Identity sources are $request.header.<name>, "+
				"$request.querystring.<name>, $context.<name> or $stageVariables.<name>.", src)
		}
		if v, ok := strings.CutPrefix(src, "$context."); ok && !slices.Contains(ContextVariables, v) {
			return badRequest("Invalid identity source specified: %s. The context variables nubis knows are %s.", src, strings.Join(ContextVariables, ", "))
		}
	}
	if in.AuthorizerResultTTLInSeconds != nil {
		a.AuthorizerResultTTLInSeconds = *in.AuthorizerResultTTLInSeconds
	}
	if a.AuthorizerResultTTLInSeconds < 0 || a.AuthorizerResultTTLInSeconds > maxAuthorizerTTL {
		return badRequest("Invalid authorizer result TTL: %d. It must be between 0 and %d seconds.", a.AuthorizerResultTTLInSeconds, maxAuthorizerTTL)
	}
	if a.AuthorizerResultTTLInSeconds > 0 && len(a.IdentitySource) == 0 {
		return badRequest("Authorizer results can be cached only with an identity source; set AuthorizerResultTtlInSeconds to 0.")
	}
	setString(&a.AuthorizerCredentialsArn, in.AuthorizerCredentialsArn)
	return validateCredentials(a.AuthorizerCredentialsArn)
}

func (s *Service) createAuthorizer(ctx context.Context, r *awsproto.Request) (int, any, error) {
	var in authorizerInput
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if in.AuthorizerType == nil {
		return 0, nil, badRequest("AuthorizerType is required.")
	}
	a := authorizer{IdentitySource: []string{}}
	if err := s.applyAuthorizer(in, &a); err != nil {
		return 0, nil, err
	}
	acct, apiID := r.Caller.AccountID, r.HTTP.PathValue("apiId")
	err := s.update(ctx, func(tx store.Tx) error {
		if _, err := s.loadAPI(tx, acct, apiID); err != nil {
			return err
		}
		if err := checkQuota(tx, s.childPrefix(acct, kindAuthorizer, apiID), maxAuthorizers, "Authorizers", "this API"); err != nil {
			return err
		}
		var err error
		a.AuthorizerID, err = createWithID(tx, authorizerIDLen, func(id string) string { return s.childKey(acct, kindAuthorizer, apiID, id) },
			func(id string) any { b := a; b.AuthorizerID = id; return b })
		if err != nil {
			return err
		}
		return s.autoDeploy(tx, acct, apiID)
	})
	if err != nil {
		return 0, nil, err
	}
	return 201, a, nil
}

func (s *Service) loadAuthorizer(tx store.Tx, acct, apiID, id string) (authorizer, error) {
	return loadChild[authorizer](s, tx, acct, apiID, kindAuthorizer, id, authorizerNotFound(acct, id))
}

func (s *Service) getAuthorizer(ctx context.Context, r *awsproto.Request) (int, any, error) {
	v, err := getOne(ctx, s, r, "authorizerId", s.loadAuthorizer)
	if err != nil {
		return 0, nil, err
	}
	return 200, v, nil
}

func (s *Service) getAuthorizers(ctx context.Context, r *awsproto.Request) (int, any, error) {
	return getChildren[authorizer](ctx, s, r, kindAuthorizer)
}

func (s *Service) updateAuthorizer(ctx context.Context, r *awsproto.Request) (int, any, error) {
	var in authorizerInput
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	acct, apiID, id := r.Caller.AccountID, r.HTTP.PathValue("apiId"), r.HTTP.PathValue("authorizerId")
	var a authorizer
	err := s.update(ctx, func(tx store.Tx) error {
		var err error
		if a, err = s.loadAuthorizer(tx, acct, apiID, id); err != nil {
			return err
		}
		if err := s.applyAuthorizer(in, &a); err != nil {
			return err
		}
		if err := store.PutJSON(tx, s.childKey(acct, kindAuthorizer, apiID, id), a); err != nil {
			return err
		}
		return s.autoDeploy(tx, acct, apiID)
	})
	if err != nil {
		return 0, nil, err
	}
	return 200, a, nil
}

func (s *Service) deleteAuthorizer(ctx context.Context, r *awsproto.Request) (int, any, error) {
	acct, apiID, id := r.Caller.AccountID, r.HTTP.PathValue("apiId"), r.HTTP.PathValue("authorizerId")
	err := s.update(ctx, func(tx store.Tx) error {
		if _, err := s.loadAuthorizer(tx, acct, apiID, id); err != nil {
			return err
		}
		routes, err := listJSON[route](tx, s.childPrefix(acct, kindRoute, apiID))
		if err != nil {
			return err
		}
		var users []string
		for _, rt := range routes {
			if rt.AuthorizerID == id {
				users = append(users, rt.RouteID)
			}
		}
		if len(users) > 0 {
			return conflict("Unable to delete authorizer %s: route(s) %s use it. Change or delete those routes first.", id, strings.Join(users, ", "))
		}
		if err := tx.Delete(s.childKey(acct, kindAuthorizer, apiID, id)); err != nil {
			return err
		}
		return s.autoDeploy(tx, acct, apiID)
	})
	if err != nil {
		return 0, nil, err
	}
	return 204, nil, nil
}

// checkAuthorizer checks a route's authorization: CUSTOM needs a REQUEST authorizer of the API,
// and only CUSTOM takes one.
func (s *Service) checkAuthorizer(tx store.Tx, acct, apiID string, rt route) error {
	switch {
	case rt.AuthorizationType == "CUSTOM" && rt.AuthorizerID == "":
		return badRequest("A route with authorization type CUSTOM needs an AuthorizerId.")
	case rt.AuthorizationType != "CUSTOM" && rt.AuthorizerID != "":
		return badRequest("An AuthorizerId is allowed only with authorization type CUSTOM (here %s).", rt.AuthorizationType)
	case rt.AuthorizerID == "":
		return nil
	}
	if _, ok, err := store.GetJSON[authorizer](tx, s.childKey(acct, kindAuthorizer, apiID, rt.AuthorizerID)); err != nil || ok {
		return err
	}
	return badRequest("Invalid authorizer ID specified: %s. The authorizer does not exist in API %s.", rt.AuthorizerID, apiID)
}

func exportAuthorizers(as []authorizer) []Authorizer {
	out := make([]Authorizer, len(as))
	for i, a := range as {
		out[i] = Authorizer{ID: a.AuthorizerID, FunctionARN: FunctionARN(a.AuthorizerURI), PayloadFormatVersion: a.AuthorizerPayloadFormatVersion,
			SimpleResponses: a.EnableSimpleResponses, IdentitySource: a.IdentitySource, TTLSeconds: a.AuthorizerResultTTLInSeconds}
	}
	return out
}
