// Package console holds the multi-step flows of the AWS console, built only on nubis's public
// AWS APIs through aws-sdk-go-v2, so that the later web console (and `nubis add-trigger` today)
// does exactly what a user could do with the aws CLI.
package console

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	apitypes "github.com/aws/aws-sdk-go-v2/service/apigatewayv2/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
)

// APITrigger is what AddAPITrigger made.
type APITrigger struct {
	APIID string
	// URL is the function's endpoint: <apiEndpoint>/default/<function>.
	URL string
}

// AddAPITrigger is the console's "Add trigger → API Gateway → Create a new API → HTTP API →
// Security: Open" for a function: an HTTP API named "<function>-API" with an AWS_PROXY
// integration (payload 2.0) to the function, the route "ANY /<function>", a stage "default" that
// deploys automatically, and the permission for API Gateway to invoke the function from that API.
// If a step fails, what the earlier steps made is deleted again.
func AddAPITrigger(ctx context.Context, cfg aws.Config, function string) (_ *APITrigger, err error) {
	lc, ac := lambda.NewFromConfig(cfg), apigatewayv2.NewFromConfig(cfg)
	fn, err := lc.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(function)})
	if err != nil {
		return nil, fmt.Errorf("function %s: %w", function, err)
	}
	name := *fn.FunctionName
	arnParts := strings.Split(*fn.FunctionArn, ":") // arn:aws:lambda:<region>:<account>:function:<name>
	if len(arnParts) < 7 {
		return nil, fmt.Errorf("unexpected function ARN %q", *fn.FunctionArn)
	}
	region, account := arnParts[3], arnParts[4]
	api, err := ac.CreateApi(ctx, &apigatewayv2.CreateApiInput{Name: aws.String(name + "-API"), ProtocolType: apitypes.ProtocolTypeHttp,
		Description: aws.String("Created by nubis add-trigger for " + name)})
	if err != nil {
		return nil, fmt.Errorf("create API: %w", err)
	}
	defer func() {
		if err != nil {
			_, derr := ac.DeleteApi(context.WithoutCancel(ctx), &apigatewayv2.DeleteApiInput{ApiId: api.ApiId})
			err = errors.Join(err, derr)
		}
	}()
	integ, err := ac.CreateIntegration(ctx, &apigatewayv2.CreateIntegrationInput{ApiId: api.ApiId,
		IntegrationType: apitypes.IntegrationTypeAwsProxy, IntegrationUri: fn.FunctionArn, PayloadFormatVersion: aws.String("2.0")})
	if err != nil {
		return nil, fmt.Errorf("create integration: %w", err)
	}
	if _, err = ac.CreateRoute(ctx, &apigatewayv2.CreateRouteInput{ApiId: api.ApiId, RouteKey: aws.String("ANY /" + name),
		Target: aws.String("integrations/" + *integ.IntegrationId)}); err != nil {
		return nil, fmt.Errorf("create route: %w", err)
	}
	if _, err = ac.CreateStage(ctx, &apigatewayv2.CreateStageInput{ApiId: api.ApiId, StageName: aws.String("default"),
		AutoDeploy: aws.Bool(true)}); err != nil {
		return nil, fmt.Errorf("create stage: %w", err)
	}
	sid := "lambda-" + *api.ApiId + "-apigateway-invoke"
	if _, err = lc.AddPermission(ctx, &lambda.AddPermissionInput{FunctionName: aws.String(name), StatementId: aws.String(sid),
		Action: aws.String("lambda:InvokeFunction"), Principal: aws.String("apigateway.amazonaws.com"),
		SourceArn: aws.String(fmt.Sprintf("arn:aws:execute-api:%s:%s:%s/*/*/%s", region, account, *api.ApiId, name))}); err != nil {
		return nil, fmt.Errorf("add permission: %w", err)
	}
	return &APITrigger{APIID: *api.ApiId, URL: *api.ApiEndpoint + "/default/" + name}, nil
}
