package apigw

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

// Integration timeouts of HTTP APIs, in milliseconds.
const (
	minTimeout = 50
	maxTimeout = 30000
)

var (
	functionARN   = regexp.MustCompile(`^arn:aws:lambda:([a-z0-9-]+):([0-9]{12}):function:[A-Za-z0-9_-]{1,64}(:(\$LATEST|[A-Za-z0-9_-]{1,128}))?$`)
	invocationARN = regexp.MustCompile(`^arn:aws:apigateway:([a-z0-9-]+):lambda:path/2015-03-31/functions/(.+)/invocations$`)
)

// FunctionARN returns the Lambda function ARN an AWS_PROXY integration URI names: the URI itself
// when it is a function ARN, or the function ARN inside an apigateway invocation ARN
// (arn:aws:apigateway:<region>:lambda:path/2015-03-31/functions/<function ARN>/invocations).
// It returns "" for any other URI.
func FunctionARN(uri string) string {
	if m := invocationARN.FindStringSubmatch(uri); m != nil {
		uri = m[2]
	}
	if functionARN.MatchString(uri) {
		return uri
	}
	return ""
}

// parseIntegrationURI checks that uri names a Lambda function of this region, which is what nubis
// integrates with, and returns the function's ARN.
func (s *Service) parseIntegrationURI(uri string) (string, error) {
	fn := FunctionARN(uri)
	if fn == "" {
		return "", badRequest("Invalid integration URI specified: %s. nubis integrates with Lambda functions: give a function ARN "+
			"(arn:aws:lambda:<region>:<account>:function:<name>) or its invocation ARN "+
			"(arn:aws:apigateway:<region>:lambda:path/2015-03-31/functions/<function ARN>/invocations).", uri)
	}
	region := functionARN.FindStringSubmatch(fn)[1]
	if m := invocationARN.FindStringSubmatch(uri); m != nil && m[1] != region {
		return "", badRequest("Invalid integration URI specified: %s. The region of the invocation ARN and of the function differ.", uri)
	}
	if region != s.cfg.Region {
		return "", badRequest("Invalid integration URI specified: %s. This nubis serves the region %s only.", uri, s.cfg.Region)
	}
	return fn, nil
}

type integrationInput struct {
	ConnectionID                *string                    `json:"connectionId"`
	ConnectionType              *string                    `json:"connectionType"`
	ContentHandlingStrategy     *string                    `json:"contentHandlingStrategy"`
	CredentialsArn              *string                    `json:"credentialsArn"`
	Description                 *string                    `json:"description"`
	IntegrationMethod           *string                    `json:"integrationMethod"`
	IntegrationSubtype          *string                    `json:"integrationSubtype"`
	IntegrationType             *string                    `json:"integrationType"`
	IntegrationURI              *string                    `json:"integrationUri"`
	PassthroughBehavior         *string                    `json:"passthroughBehavior"`
	PayloadFormatVersion        *string                    `json:"payloadFormatVersion"`
	RequestParameters           map[string]string          `json:"requestParameters"`
	RequestTemplates            map[string]string          `json:"requestTemplates"`
	ResponseParameters          map[string]json.RawMessage `json:"responseParameters"`
	TemplateSelectionExpression *string                    `json:"templateSelectionExpression"`
	TimeoutInMillis             *int                       `json:"timeoutInMillis"`
	TLSConfig                   json.RawMessage            `json:"tlsConfig"`
}

// applyIntegration sets the members in gives on it and checks the result.
func (s *Service) applyIntegration(in integrationInput, it *integration) error {
	switch {
	case in.ContentHandlingStrategy != nil:
		return webSocketOnly("ContentHandlingStrategy")
	case in.PassthroughBehavior != nil:
		return webSocketOnly("PassthroughBehavior")
	case in.RequestTemplates != nil:
		return webSocketOnly("RequestTemplates")
	case in.TemplateSelectionExpression != nil:
		return webSocketOnly("TemplateSelectionExpression")
	case in.ConnectionID != nil:
		return unsupported("VPC link integrations (ConnectionId)")
	case in.IntegrationSubtype != nil:
		return unsupported("AWS service integrations (IntegrationSubtype)")
	case in.RequestParameters != nil || in.ResponseParameters != nil:
		return unsupported("Parameter mapping (RequestParameters, ResponseParameters)")
	case len(in.TLSConfig) > 0 && string(in.TLSConfig) != "null":
		return unsupported("TlsConfig (private integrations)")
	}
	setString(&it.ConnectionType, in.ConnectionType)
	switch it.ConnectionType {
	case "INTERNET":
	case "VPC_LINK":
		return unsupported("Connection type VPC_LINK")
	default:
		return badRequest("Invalid connection type specified: %s. Must be one of [INTERNET, VPC_LINK]", it.ConnectionType)
	}
	setString(&it.IntegrationType, in.IntegrationType)
	switch it.IntegrationType {
	case "AWS_PROXY":
	case "HTTP_PROXY":
		return unsupported("Integration type HTTP_PROXY (nubis integrates with Lambda functions, as AWS_PROXY)")
	case "AWS", "HTTP", "MOCK":
		return badRequest("Currently, an API with a protocol type of HTTP may only be associated with proxy integrations (AWS_PROXY, HTTP_PROXY)")
	default:
		return badRequest("Invalid integration type specified: %s. Must be one of [AWS, HTTP, MOCK, HTTP_PROXY, AWS_PROXY]", it.IntegrationType)
	}
	setString(&it.IntegrationURI, in.IntegrationURI)
	if it.IntegrationURI == "" {
		return badRequest("Integration URI is required for integration type AWS_PROXY.")
	}
	if _, err := s.parseIntegrationURI(it.IntegrationURI); err != nil {
		return err
	}
	setString(&it.IntegrationMethod, in.IntegrationMethod)
	if it.IntegrationMethod != "POST" {
		return badRequest("Invalid integration method specified: %s. Lambda proxy integrations are invoked with POST.", it.IntegrationMethod)
	}
	setString(&it.PayloadFormatVersion, in.PayloadFormatVersion)
	switch it.PayloadFormatVersion {
	case "1.0", "2.0":
	case "":
		return badRequest("PayloadFormatVersion is required for HTTP APIs. Supported values for Lambda proxy integrations are 1.0 and 2.0.")
	default:
		return badRequest("Invalid payload format version specified: %s. Supported values for Lambda proxy integrations are 1.0 and 2.0.", it.PayloadFormatVersion)
	}
	if in.TimeoutInMillis != nil {
		it.TimeoutInMillis = *in.TimeoutInMillis
	}
	if it.TimeoutInMillis < minTimeout || it.TimeoutInMillis > maxTimeout {
		return badRequest("Invalid timeout specified: %d. TimeoutInMillis must be between %d and %d.", it.TimeoutInMillis, minTimeout, maxTimeout)
	}
	setString(&it.Description, in.Description)
	if len(it.Description) > 1024 {
		return badRequest("Invalid description: it must be at most 1024 characters long.")
	}
	setString(&it.CredentialsArn, in.CredentialsArn)
	return validateCredentials(it.CredentialsArn)
}

// validateCredentials checks an integration's credentialsArn (the role API Gateway would assume).
func validateCredentials(arn string) error {
	if arn != "" && !strings.HasPrefix(arn, "arn:") {
		return badRequest("Invalid credentials ARN specified: %s", arn)
	}
	return nil
}

func (s *Service) createIntegration(ctx context.Context, r *awsproto.Request) (int, any, error) {
	var in integrationInput
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if in.IntegrationType == nil {
		return 0, nil, badRequest("IntegrationType is required.")
	}
	it := integration{ConnectionType: "INTERNET", IntegrationMethod: "POST", TimeoutInMillis: maxTimeout}
	if err := s.applyIntegration(in, &it); err != nil {
		return 0, nil, err
	}
	acct, apiID := r.Caller.AccountID, r.HTTP.PathValue("apiId")
	err := s.update(ctx, func(tx store.Tx) error {
		if _, err := s.loadAPI(tx, acct, apiID); err != nil {
			return err
		}
		if err := checkQuota(tx, s.childPrefix(acct, kindIntegration, apiID), maxIntegrations, "Integrations", "this API"); err != nil {
			return err
		}
		var err error
		it.IntegrationID, err = createWithID(tx, integrationIDLen,
			func(id string) string { return s.childKey(acct, kindIntegration, apiID, id) },
			func(id string) any { b := it; b.IntegrationID = id; return b })
		if err != nil {
			return err
		}
		return s.autoDeploy(tx, acct, apiID)
	})
	if err != nil {
		return 0, nil, err
	}
	return 201, it, nil
}

func (s *Service) loadIntegration(tx store.Tx, acct, apiID, id string) (integration, error) {
	return loadChild[integration](s, tx, acct, apiID, kindIntegration, id, integrationNotFound(acct, id))
}

func (s *Service) getIntegration(ctx context.Context, r *awsproto.Request) (int, any, error) {
	v, err := getOne(ctx, s, r, "integrationId", s.loadIntegration)
	if err != nil {
		return 0, nil, err
	}
	return 200, v, nil
}

func (s *Service) getIntegrations(ctx context.Context, r *awsproto.Request) (int, any, error) {
	return getChildren[integration](ctx, s, r, kindIntegration)
}

func (s *Service) updateIntegration(ctx context.Context, r *awsproto.Request) (int, any, error) {
	var in integrationInput
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	acct, apiID, id := r.Caller.AccountID, r.HTTP.PathValue("apiId"), r.HTTP.PathValue("integrationId")
	var it integration
	err := s.update(ctx, func(tx store.Tx) error {
		var err error
		if it, err = s.loadIntegration(tx, acct, apiID, id); err != nil {
			return err
		}
		if err := s.applyIntegration(in, &it); err != nil {
			return err
		}
		if err := store.PutJSON(tx, s.childKey(acct, kindIntegration, apiID, id), it); err != nil {
			return err
		}
		return s.autoDeploy(tx, acct, apiID)
	})
	if err != nil {
		return 0, nil, err
	}
	return 200, it, nil
}

func (s *Service) deleteIntegration(ctx context.Context, r *awsproto.Request) (int, any, error) {
	acct, apiID, id := r.Caller.AccountID, r.HTTP.PathValue("apiId"), r.HTTP.PathValue("integrationId")
	err := s.update(ctx, func(tx store.Tx) error {
		it, err := s.loadIntegration(tx, acct, apiID, id)
		if err != nil {
			return err
		}
		routes, err := listJSON[route](tx, s.childPrefix(acct, kindRoute, apiID))
		if err != nil {
			return err
		}
		var users []string
		for _, rt := range routes {
			if rt.Target == "integrations/"+id {
				users = append(users, rt.RouteID)
			}
		}
		if len(users) > 0 {
			return conflict("Unable to delete integration %s: it is the target of route(s) %s. Change or delete those routes first.",
				id, strings.Join(users, ", "))
		}
		if it.APIGatewayManaged {
			return badRequest("An integration managed by API Gateway cannot be deleted; delete the API instead.")
		}
		if err := tx.Delete(s.childKey(acct, kindIntegration, apiID, id)); err != nil {
			return err
		}
		return s.autoDeploy(tx, acct, apiID)
	})
	if err != nil {
		return 0, nil, err
	}
	return 204, nil, nil
}
