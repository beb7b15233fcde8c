package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	apitypes "github.com/aws/aws-sdk-go-v2/service/apigatewayv2/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/nubis/nubis/internal/server/servertest"
)

// authorizedHandler answers with what its authorizer handed on.
const authorizedHandler = `import json
def lambda_handler(event, context):
    return {"statusCode": 200, "body": json.dumps(event["requestContext"].get("authorizer"))}
`

// TestLambdaAuthorizers: a simple-response authorizer (payload 2.0) and an IAM-policy one (1.0)
// in front of routes; missing identity is 401 without asking, a no is 403, a yes runs the route
// with the authorizer's context; the control plane's errors.
func TestLambdaAuthorizers(t *testing.T) {
	needSandboxes(t)
	ctx := context.Background()
	s := servertest.Start(t, "")
	apiID, ac := setupAPI(t, s, authorizedHandler, true, nil)
	lc := lambda.NewFromConfig(s.Config(t, nil))
	account := s.Identity().Account().ID
	createFunction(t, lc, "simple-auth", types.RuntimePython312, "app.handler", zipEntry{name: "app.py",
		body: "def handler(e, c):\n    ok = e['headers'].get('authorization') == 'let-me-in'\n" +
			"    return {'isAuthorized': ok, 'context': {'user': 'alice', 'via': e['type'] + ' ' + e['routeArn'].split('/')[-1]}}\n"})
	createFunction(t, lc, "policy-auth", types.RuntimePython312, "app.handler", zipEntry{name: "app.py",
		body: "def handler(e, c):\n    effect = 'Allow' if e['queryStringParameters'].get('token') == 'good' else 'Deny'\n" +
			"    return {'principalId': 'bob', 'policyDocument': {'Version': '2012-10-17', 'Statement': [{'Action': 'execute-api:Invoke', " +
			"'Effect': effect, 'Resource': e['methodArn']}]}, 'context': {'tier': 'gold'}}\n"})
	for _, fn := range []string{"simple-auth", "policy-auth"} {
		if _, err := lc.AddPermission(ctx, &lambda.AddPermissionInput{FunctionName: aws.String(fn), StatementId: aws.String("apigw"),
			Action: aws.String("lambda:InvokeFunction"), Principal: aws.String("apigateway.amazonaws.com"),
			SourceArn: aws.String("arn:aws:execute-api:us-east-1:" + account + ":" + apiID + "/authorizers/*")}); err != nil {
			t.Fatal(err)
		}
	}
	uri := func(fn string) *string {
		return aws.String("arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:" + account + ":function:" + fn + "/invocations")
	}
	simple, err := ac.CreateAuthorizer(ctx, &apigatewayv2.CreateAuthorizerInput{ApiId: aws.String(apiID), Name: aws.String("simple"),
		AuthorizerType: apitypes.AuthorizerTypeRequest, AuthorizerUri: uri("simple-auth"), AuthorizerPayloadFormatVersion: aws.String("2.0"),
		EnableSimpleResponses: aws.Bool(true), IdentitySource: []string{"$request.header.Authorization"}})
	if err != nil {
		t.Fatal(err)
	}
	policy, err := ac.CreateAuthorizer(ctx, &apigatewayv2.CreateAuthorizerInput{ApiId: aws.String(apiID), Name: aws.String("policy"),
		AuthorizerType: apitypes.AuthorizerTypeRequest, AuthorizerUri: uri("policy-auth"), AuthorizerPayloadFormatVersion: aws.String("1.0"),
		IdentitySource: []string{"$request.querystring.token"}, AuthorizerResultTtlInSeconds: aws.Int32(300)})
	if err != nil {
		t.Fatal(err)
	}
	routes, err := ac.GetRoutes(ctx, &apigatewayv2.GetRoutesInput{ApiId: aws.String(apiID)})
	if err != nil || len(routes.Items) != 1 {
		t.Fatalf("routes: %v %v", routes, err)
	}
	target := routes.Items[0].Target
	for _, rt := range []struct{ key, auth string }{{"GET /simple", *simple.AuthorizerId}, {"GET /policy", *policy.AuthorizerId}} {
		if _, err := ac.CreateRoute(ctx, &apigatewayv2.CreateRouteInput{ApiId: aws.String(apiID), RouteKey: aws.String(rt.key), Target: target,
			AuthorizationType: apitypes.AuthorizationTypeCustom, AuthorizerId: aws.String(rt.auth)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		path   string
		header http.Header
		status int
		body   string
	}{
		{"/simple", nil, 401, `{"message":"Unauthorized"}`},
		{"/simple", http.Header{"Authorization": {"nope"}}, 403, `{"message":"Forbidden"}`},
		{"/simple", http.Header{"Authorization": {"let-me-in"}}, 200, `{"lambda": {"user": "alice", "via": "REQUEST simple"}}`},
		{"/policy", nil, 401, `{"message":"Unauthorized"}`},
		{"/policy?token=bad", nil, 403, `{"message":"Forbidden"}`},
		{"/policy?token=good", nil, 200, `{"lambda": {"tier": "gold"}}`},
		{"/policy?token=good", nil, 200, `{"lambda": {"tier": "gold"}}`}, // a cached answer
	} {
		r := apiRequest(t, s, "GET", apiID, tc.path, tc.header, "")
		if r.status != tc.status || !strings.Contains(r.body, tc.body) {
			t.Errorf("%s %v: %d %s, want %d %s", tc.path, tc.header, r.status, r.body, tc.status, tc.body)
		}
	}

	// The control plane's refusals.
	_, err = ac.DeleteAuthorizer(ctx, &apigatewayv2.DeleteAuthorizerInput{ApiId: aws.String(apiID), AuthorizerId: simple.AuthorizerId})
	wantAPIError(t, err, "ConflictException", 409)
	_, err = ac.CreateRoute(ctx, &apigatewayv2.CreateRouteInput{ApiId: aws.String(apiID), RouteKey: aws.String("GET /none"), Target: target,
		AuthorizationType: apitypes.AuthorizationTypeCustom})
	wantAPIError(t, err, "BadRequestException", 400)
	_, err = ac.CreateRoute(ctx, &apigatewayv2.CreateRouteInput{ApiId: aws.String(apiID), RouteKey: aws.String("GET /missing"), Target: target,
		AuthorizationType: apitypes.AuthorizationTypeCustom, AuthorizerId: aws.String("nope99")})
	wantAPIError(t, err, "BadRequestException", 400)
	_, err = ac.CreateAuthorizer(ctx, &apigatewayv2.CreateAuthorizerInput{ApiId: aws.String(apiID), Name: aws.String("jwt"),
		AuthorizerType: apitypes.AuthorizerTypeJwt, IdentitySource: []string{"$request.header.Authorization"}})
	if err == nil {
		t.Fatal("a JWT authorizer was created")
	}
	_, err = ac.CreateAuthorizer(ctx, &apigatewayv2.CreateAuthorizerInput{ApiId: aws.String(apiID), Name: aws.String("bad"),
		AuthorizerType: apitypes.AuthorizerTypeRequest, AuthorizerUri: uri("simple-auth"), AuthorizerPayloadFormatVersion: aws.String("1.0"),
		EnableSimpleResponses: aws.Bool(true), IdentitySource: []string{"$request.header.Authorization"}})
	wantAPIError(t, err, "BadRequestException", 400)
	got, err := ac.GetAuthorizers(ctx, &apigatewayv2.GetAuthorizersInput{ApiId: aws.String(apiID)})
	if err != nil || len(got.Items) != 2 {
		t.Fatalf("authorizers: %+v %v", got, err)
	}
}
