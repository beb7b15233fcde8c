package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2/types"
	"github.com/aws/smithy-go"

	"github.com/nubis/nubis/internal/server"
	"github.com/nubis/nubis/internal/server/servertest"
)

const apigwFn = "arn:aws:lambda:us-east-1:123456789012:function:calculate_mean"

var (
	apiIDPattern   = regexp.MustCompile(`^[a-z0-9]{10}$`)
	childIDPattern = regexp.MustCompile(`^[a-z0-9]{7}$`)
	deployPattern  = regexp.MustCompile(`^[a-z0-9]{6}$`)
)

func apigwClient(t *testing.T, s *servertest.Server) *apigatewayv2.Client {
	t.Helper()
	return apigatewayv2.NewFromConfig(s.Config(t, nil))
}

// apigwRaw sends a hand-made apigatewayv2 request, for what the SDK refuses to send.
func apigwRaw(t *testing.T, s *servertest.Server, method, path, body string) servertest.Response {
	t.Helper()
	raw := servertest.Raw{Service: "apigateway", Method: method, Path: path, Body: body}
	if body != "" {
		raw.ContentType = "application/json"
	}
	return s.Do(t, raw)
}

// wantAPIMessage is wantAPIError that also wants the message to contain substr.
func wantAPIMessage(t *testing.T, err error, code string, status int, substr string) {
	t.Helper()
	wantAPIError(t, err, code, status)
	var ae smithy.APIError
	errors.As(err, &ae)
	if !strings.Contains(ae.ErrorMessage(), substr) {
		t.Fatalf("%s message %q does not contain %q", code, ae.ErrorMessage(), substr)
	}
}

// apigwState renders every API of the account with all it owns, to check that a refused request
// changed nothing.
func apigwState(t *testing.T, c *apigatewayv2.Client) string {
	t.Helper()
	ctx := context.Background()
	apis, err := c.GetApis(ctx, &apigatewayv2.GetApisInput{})
	noErr(t, err)
	state := []any{apis.Items}
	for _, a := range apis.Items {
		routes, err := c.GetRoutes(ctx, &apigatewayv2.GetRoutesInput{ApiId: a.ApiId})
		if err != nil {
			t.Fatal(err)
		}
		ints, err := c.GetIntegrations(ctx, &apigatewayv2.GetIntegrationsInput{ApiId: a.ApiId})
		if err != nil {
			t.Fatal(err)
		}
		stages, err := c.GetStages(ctx, &apigatewayv2.GetStagesInput{ApiId: a.ApiId})
		if err != nil {
			t.Fatal(err)
		}
		deps, err := c.GetDeployments(ctx, &apigatewayv2.GetDeploymentsInput{ApiId: a.ApiId})
		if err != nil {
			t.Fatal(err)
		}
		state = append(state, routes.Items, ints.Items, stages.Items, deps.Items)
	}
	b, err := json.Marshal(state)
	noErr(t, err)
	return string(b)
}

// noErr fails the test at once if err is not nil.
func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// allPages calls page with each nextToken until the last page, and returns how many pages there were.
func allPages(t *testing.T, page func(token *string) (next *string, err error)) int {
	t.Helper()
	var token *string
	for n := 1; ; n++ {
		next, err := page(token)
		if err != nil {
			t.Fatal(err)
		}
		if token = next; token == nil {
			return n
		}
	}
}

func TestApigwQuickCreate(t *testing.T) {
	s := servertest.Start(t, "")
	c := apigwClient(t, s)
	ctx := context.Background()
	out, err := c.CreateApi(ctx, &apigatewayv2.CreateApiInput{Name: aws.String("mean-api"), ProtocolType: types.ProtocolTypeHttp,
		Target: aws.String(apigwFn)})
	if err != nil {
		t.Fatal(err)
	}
	id := *out.ApiId
	u, _ := url.Parse(s.Endpoint())
	if !apiIDPattern.MatchString(id) || *out.ApiEndpoint != "http://"+id+".execute-api.localhost:"+u.Port() ||
		*out.RouteSelectionExpression != "$request.method $request.path" || *out.ApiKeySelectionExpression != "$request.header.x-api-key" ||
		out.ProtocolType != types.ProtocolTypeHttp || *out.Name != "mean-api" || out.CreatedDate == nil || aws.ToBool(out.ApiGatewayManaged) {
		t.Fatalf("CreateApi returned %+v", out)
	}
	// createdDate is ISO 8601 in UTC, to the second.
	raw := apigwRaw(t, s, "GET", "/v2/apis/"+id, "")
	if raw.Status != 200 || !regexp.MustCompile(`"createdDate":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"`).MatchString(raw.Body) {
		t.Fatalf("GetApi: %d %s", raw.Status, raw.Body)
	}
	ints, err := c.GetIntegrations(ctx, &apigatewayv2.GetIntegrationsInput{ApiId: &id})
	if err != nil || len(ints.Items) != 1 {
		t.Fatalf("GetIntegrations: %v %+v", err, ints)
	}
	it := ints.Items[0]
	if !childIDPattern.MatchString(*it.IntegrationId) || it.IntegrationType != types.IntegrationTypeAwsProxy ||
		*it.IntegrationUri != apigwFn || *it.PayloadFormatVersion != "2.0" || *it.TimeoutInMillis != 30000 ||
		!aws.ToBool(it.ApiGatewayManaged) || *it.IntegrationMethod != "POST" || it.ConnectionType != types.ConnectionTypeInternet {
		t.Fatalf("quick-created integration %+v", it)
	}
	routes, err := c.GetRoutes(ctx, &apigatewayv2.GetRoutesInput{ApiId: &id})
	if err != nil || len(routes.Items) != 1 {
		t.Fatalf("GetRoutes: %v %+v", err, routes)
	}
	rt := routes.Items[0]
	if !childIDPattern.MatchString(*rt.RouteId) || *rt.RouteKey != "$default" || *rt.Target != "integrations/"+*it.IntegrationId ||
		!aws.ToBool(rt.ApiGatewayManaged) || rt.AuthorizationType != types.AuthorizationTypeNone {
		t.Fatalf("quick-created route %+v", rt)
	}
	st, err := c.GetStage(ctx, &apigatewayv2.GetStageInput{ApiId: &id, StageName: aws.String("$default")})
	noErr(t, err)
	if !aws.ToBool(st.AutoDeploy) || !aws.ToBool(st.ApiGatewayManaged) || !deployPattern.MatchString(aws.ToString(st.DeploymentId)) ||
		*st.LastDeploymentStatusMessage != "Successfully deployed stage with deployment ID '"+*st.DeploymentId+"'" {
		t.Fatalf("quick-created stage %+v", st)
	}
	deps, err := c.GetDeployments(ctx, &apigatewayv2.GetDeploymentsInput{ApiId: &id})
	if err != nil || len(deps.Items) != 1 || *deps.Items[0].DeploymentId != *st.DeploymentId || !aws.ToBool(deps.Items[0].AutoDeployed) ||
		deps.Items[0].DeploymentStatus != types.DeploymentStatusDeployed {
		t.Fatalf("GetDeployments: %v %+v", err, deps)
	}

	// A route key of one's own; the managed resources cannot be deleted, or the key changed but
	// through UpdateApi, which redeploys.
	out2, err := c.CreateApi(ctx, &apigatewayv2.CreateApiInput{Name: aws.String("hello"), ProtocolType: types.ProtocolTypeHttp,
		Target:   aws.String("arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/" + apigwFn + ":live/invocations"),
		RouteKey: aws.String("GET /hello/{name}")})
	if err != nil {
		t.Fatal(err)
	}
	id2 := *out2.ApiId
	routes, _ = c.GetRoutes(ctx, &apigatewayv2.GetRoutesInput{ApiId: &id2})
	if len(routes.Items) != 1 || *routes.Items[0].RouteKey != "GET /hello/{name}" {
		t.Fatalf("routes %+v", routes.Items)
	}
	before := apigwState(t, c)
	_, err = c.DeleteRoute(ctx, &apigatewayv2.DeleteRouteInput{ApiId: &id2, RouteId: routes.Items[0].RouteId})
	wantAPIError(t, err, "BadRequestException", 400)
	_, err = c.UpdateRoute(ctx, &apigatewayv2.UpdateRouteInput{ApiId: &id2, RouteId: routes.Items[0].RouteId, RouteKey: aws.String("GET /x")})
	wantAPIError(t, err, "BadRequestException", 400)
	_, err = c.DeleteStage(ctx, &apigatewayv2.DeleteStageInput{ApiId: &id2, StageName: aws.String("$default")})
	wantAPIError(t, err, "BadRequestException", 400)
	ints, _ = c.GetIntegrations(ctx, &apigatewayv2.GetIntegrationsInput{ApiId: &id2})
	_, err = c.DeleteIntegration(ctx, &apigatewayv2.DeleteIntegrationInput{ApiId: &id2, IntegrationId: ints.Items[0].IntegrationId})
	wantAPIError(t, err, "ConflictException", 409)
	_, err = c.UpdateApi(ctx, &apigatewayv2.UpdateApiInput{ApiId: &id2, Target: aws.String("https://example.com")})
	wantAPIError(t, err, "BadRequestException", 400)
	if after := apigwState(t, c); after != before {
		t.Fatalf("refused requests changed the state:\n%s\n%s", before, after)
	}
	other := "arn:aws:lambda:us-east-1:123456789012:function:other"
	_, err = c.UpdateApi(ctx, &apigatewayv2.UpdateApiInput{ApiId: &id2, Target: &other, RouteKey: aws.String("ANY /{proxy+}")})
	noErr(t, err)
	routes, _ = c.GetRoutes(ctx, &apigatewayv2.GetRoutesInput{ApiId: &id2})
	ints, _ = c.GetIntegrations(ctx, &apigatewayv2.GetIntegrationsInput{ApiId: &id2})
	deps, _ = c.GetDeployments(ctx, &apigatewayv2.GetDeploymentsInput{ApiId: &id2})
	if *routes.Items[0].RouteKey != "ANY /{proxy+}" || *ints.Items[0].IntegrationUri != other || len(deps.Items) != 2 {
		t.Fatalf("after UpdateApi: %+v %+v %d deployments", routes.Items[0], ints.Items[0], len(deps.Items))
	}
	// UpdateApi's quick-create members need an API made with quick create.
	plain, err := c.CreateApi(ctx, &apigatewayv2.CreateApiInput{Name: aws.String("plain"), ProtocolType: types.ProtocolTypeHttp})
	noErr(t, err)
	_, err = c.UpdateApi(ctx, &apigatewayv2.UpdateApiInput{ApiId: plain.ApiId, Target: &other})
	wantAPIError(t, err, "BadRequestException", 400)
}

func TestApigwApis(t *testing.T) {
	s := servertest.Start(t, "")
	c := apigwClient(t, s)
	ctx := context.Background()
	cors := &types.Cors{AllowOrigins: []string{"https://example.com"}, AllowMethods: []string{"GET", "POST"},
		AllowHeaders: []string{"content-type"}, MaxAge: aws.Int32(300), AllowCredentials: aws.Bool(true)}
	out, err := c.CreateApi(ctx, &apigatewayv2.CreateApiInput{Name: aws.String("stats"), ProtocolType: types.ProtocolTypeHttp,
		Description: aws.String("statistics"), Version: aws.String("v1"), CorsConfiguration: cors, Tags: map[string]string{"team": "ds"}})
	if err != nil {
		t.Fatal(err)
	}
	id := out.ApiId
	got, err := c.GetApi(ctx, &apigatewayv2.GetApiInput{ApiId: id})
	noErr(t, err)
	if *got.Name != "stats" || *got.Description != "statistics" || *got.Version != "v1" || got.Tags["team"] != "ds" ||
		got.CorsConfiguration == nil || *got.CorsConfiguration.MaxAge != 300 || !*got.CorsConfiguration.AllowCredentials ||
		got.CorsConfiguration.AllowOrigins[0] != "https://example.com" || !got.CreatedDate.Equal(*out.CreatedDate) {
		t.Fatalf("GetApi %+v", got)
	}
	// Nothing of an API exists until it is made: no stages, no routes.
	stages, err := c.GetStages(ctx, &apigatewayv2.GetStagesInput{ApiId: id})
	if err != nil || len(stages.Items) != 0 {
		t.Fatalf("GetStages %v %+v", err, stages)
	}
	up, err := c.UpdateApi(ctx, &apigatewayv2.UpdateApiInput{ApiId: id, Name: aws.String("stats2"),
		CorsConfiguration: &types.Cors{AllowOrigins: []string{"*"}}, DisableExecuteApiEndpoint: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if *up.Name != "stats2" || *up.Description != "statistics" || up.CorsConfiguration.AllowOrigins[0] != "*" ||
		up.CorsConfiguration.MaxAge != nil || !*up.DisableExecuteApiEndpoint {
		t.Fatalf("UpdateApi %+v", up)
	}
	_, err = c.DeleteCorsConfiguration(ctx, &apigatewayv2.DeleteCorsConfigurationInput{ApiId: id})
	noErr(t, err)
	if got, _ := c.GetApi(ctx, &apigatewayv2.GetApiInput{ApiId: id}); got.CorsConfiguration != nil {
		t.Fatalf("CORS after DeleteCorsConfiguration: %+v", got.CorsConfiguration)
	}

	// Tags of the API and of a stage, by their ARNs.
	arn := "arn:aws:apigateway:us-east-1::/apis/" + *id
	_, err = c.TagResource(ctx, &apigatewayv2.TagResourceInput{ResourceArn: &arn, Tags: map[string]string{"env": "dev", "a": "b"}})
	noErr(t, err)
	_, err = c.UntagResource(ctx, &apigatewayv2.UntagResourceInput{ResourceArn: &arn, TagKeys: []string{"team", "a"}})
	noErr(t, err)
	tags, err := c.GetTags(ctx, &apigatewayv2.GetTagsInput{ResourceArn: &arn})
	if err != nil || len(tags.Tags) != 1 || tags.Tags["env"] != "dev" {
		t.Fatalf("GetTags %v %+v", err, tags)
	}
	_, err = c.CreateStage(ctx, &apigatewayv2.CreateStageInput{ApiId: id, StageName: aws.String("prod"), Tags: map[string]string{"x": "1"}})
	noErr(t, err)
	sarn := arn + "/stages/prod"
	_, err = c.TagResource(ctx, &apigatewayv2.TagResourceInput{ResourceArn: &sarn, Tags: map[string]string{"y": "2"}})
	noErr(t, err)
	if tags, err := c.GetTags(ctx, &apigatewayv2.GetTagsInput{ResourceArn: &sarn}); err != nil || len(tags.Tags) != 2 {
		t.Fatalf("stage tags %v %+v", err, tags)
	}
	missing := "arn:aws:apigateway:us-east-1::/apis/abcdefghij"
	_, err = c.GetTags(ctx, &apigatewayv2.GetTagsInput{ResourceArn: &missing})
	wantAPIError(t, err, "NotFoundException", 404)
	bad := "arn:aws:lambda:us-east-1:123456789012:function:x"
	_, err = c.TagResource(ctx, &apigatewayv2.TagResourceInput{ResourceArn: &bad, Tags: map[string]string{"a": "b"}})
	wantAPIError(t, err, "BadRequestException", 400)

	// GetApis pages through every API (the SDK has no paginator for it).
	for i := range 6 {
		if _, err := c.CreateApi(ctx, &apigatewayv2.CreateApiInput{Name: aws.String("many-" + string(rune('a'+i))),
			ProtocolType: types.ProtocolTypeHttp}); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	pages := allPages(t, func(token *string) (*string, error) {
		page, err := c.GetApis(ctx, &apigatewayv2.GetApisInput{MaxResults: aws.String("3"), NextToken: token})
		if err != nil || len(page.Items) > 3 {
			return nil, fmt.Errorf("GetApis: %v, %+v", err, page)
		}
		for _, a := range page.Items {
			names = append(names, *a.Name)
		}
		return page.NextToken, nil
	})
	sort.Strings(names)
	if pages != 3 || len(names) != 7 || names[0] != "many-a" || names[6] != "stats2" {
		t.Fatalf("%d pages: %v", pages, names)
	}

	_, err = c.DeleteApi(ctx, &apigatewayv2.DeleteApiInput{ApiId: id})
	noErr(t, err)
	_, err = c.GetApi(ctx, &apigatewayv2.GetApiInput{ApiId: id})
	wantAPIMessage(t, err, "NotFoundException", 404, "Invalid API identifier specified")
	_, err = c.DeleteApi(ctx, &apigatewayv2.DeleteApiInput{ApiId: id})
	wantAPIError(t, err, "NotFoundException", 404)
	_, err = c.GetStages(ctx, &apigatewayv2.GetStagesInput{ApiId: id})
	wantAPIError(t, err, "NotFoundException", 404)
}

func TestApigwRoutesIntegrationsStagesDeployments(t *testing.T) {
	s := servertest.Start(t, "")
	c := apigwClient(t, s)
	ctx := context.Background()
	a, err := c.CreateApi(ctx, &apigatewayv2.CreateApiInput{Name: aws.String("pets"), ProtocolType: types.ProtocolTypeHttp})
	noErr(t, err)
	id := a.ApiId
	it, err := c.CreateIntegration(ctx, &apigatewayv2.CreateIntegrationInput{ApiId: id, IntegrationType: types.IntegrationTypeAwsProxy,
		IntegrationUri: aws.String(apigwFn), PayloadFormatVersion: aws.String("1.0"), TimeoutInMillis: aws.Int32(5000),
		Description: aws.String("mean")})
	if err != nil {
		t.Fatal(err)
	}
	if !childIDPattern.MatchString(*it.IntegrationId) || *it.PayloadFormatVersion != "1.0" || *it.TimeoutInMillis != 5000 ||
		*it.IntegrationMethod != "POST" || aws.ToBool(it.ApiGatewayManaged) {
		t.Fatalf("CreateIntegration %+v", it)
	}
	git, err := c.GetIntegration(ctx, &apigatewayv2.GetIntegrationInput{ApiId: id, IntegrationId: it.IntegrationId})
	if err != nil || *git.Description != "mean" {
		t.Fatalf("GetIntegration %v %+v", err, git)
	}
	uit, err := c.UpdateIntegration(ctx, &apigatewayv2.UpdateIntegrationInput{ApiId: id, IntegrationId: it.IntegrationId,
		PayloadFormatVersion: aws.String("2.0")})
	if err != nil || *uit.PayloadFormatVersion != "2.0" || *uit.TimeoutInMillis != 5000 || *uit.IntegrationUri != apigwFn {
		t.Fatalf("UpdateIntegration %v %+v", err, uit)
	}
	target := aws.String("integrations/" + *it.IntegrationId)
	var routeIDs []string
	for _, key := range []string{"GET /pets", "POST /pets", "GET /pets/{petId}", "ANY /files/{proxy+}", "$default", "GET /"} {
		rt, err := c.CreateRoute(ctx, &apigatewayv2.CreateRouteInput{ApiId: id, RouteKey: aws.String(key), Target: target})
		if err != nil {
			t.Fatalf("CreateRoute %q: %v", key, err)
		}
		if *rt.RouteKey != key || !childIDPattern.MatchString(*rt.RouteId) || rt.AuthorizationType != types.AuthorizationTypeNone {
			t.Fatalf("CreateRoute %+v", rt)
		}
		routeIDs = append(routeIDs, *rt.RouteId)
	}
	iam, err := c.CreateRoute(ctx, &apigatewayv2.CreateRouteInput{ApiId: id, RouteKey: aws.String("DELETE /pets/{petId}"),
		AuthorizationType: types.AuthorizationTypeAwsIam})
	if err != nil || iam.AuthorizationType != types.AuthorizationTypeAwsIam || iam.Target != nil {
		t.Fatalf("CreateRoute AWS_IAM %v %+v", err, iam)
	}
	urt, err := c.UpdateRoute(ctx, &apigatewayv2.UpdateRouteInput{ApiId: id, RouteId: iam.RouteId, Target: target,
		RouteKey: aws.String("DELETE /pets/{id}")})
	if err != nil || *urt.Target != *target || *urt.RouteKey != "DELETE /pets/{id}" || urt.AuthorizationType != types.AuthorizationTypeAwsIam {
		t.Fatalf("UpdateRoute %v %+v", err, urt)
	}
	grt, err := c.GetRoute(ctx, &apigatewayv2.GetRouteInput{ApiId: id, RouteId: iam.RouteId})
	if err != nil || *grt.RouteKey != "DELETE /pets/{id}" {
		t.Fatalf("GetRoute %v %+v", err, grt)
	}
	// GetRoutes pages.
	var keys []string
	pages := allPages(t, func(token *string) (*string, error) {
		page, err := c.GetRoutes(ctx, &apigatewayv2.GetRoutesInput{ApiId: id, MaxResults: aws.String("2"), NextToken: token})
		if err != nil {
			return nil, err
		}
		for _, r := range page.Items {
			keys = append(keys, *r.RouteKey)
		}
		return page.NextToken, nil
	})
	if len(keys) != 7 || pages != 4 {
		t.Fatalf("%d pages of routes %v", pages, keys)
	}
	_, err = c.DeleteRoute(ctx, &apigatewayv2.DeleteRouteInput{ApiId: id, RouteId: iam.RouteId})
	noErr(t, err)
	_, err = c.GetRoute(ctx, &apigatewayv2.GetRouteInput{ApiId: id, RouteId: iam.RouteId})
	wantAPIMessage(t, err, "NotFoundException", 404, "Invalid Route identifier specified")

	// A stage without autoDeploy serves what CreateDeployment deployed to it.
	dev, err := c.CreateStage(ctx, &apigatewayv2.CreateStageInput{ApiId: id, StageName: aws.String("dev"),
		StageVariables:       map[string]string{"fn": "calc", "mode": "test"},
		DefaultRouteSettings: &types.RouteSettings{ThrottlingBurstLimit: aws.Int32(10), ThrottlingRateLimit: aws.Float64(5)},
		RouteSettings:        map[string]types.RouteSettings{"GET /pets": {ThrottlingBurstLimit: aws.Int32(1)}}})
	if err != nil {
		t.Fatal(err)
	}
	if dev.DeploymentId != nil || aws.ToBool(dev.AutoDeploy) || *dev.DefaultRouteSettings.ThrottlingBurstLimit != 10 ||
		*dev.RouteSettings["GET /pets"].ThrottlingBurstLimit != 1 || dev.StageVariables["fn"] != "calc" {
		t.Fatalf("CreateStage %+v", dev)
	}
	d, err := c.CreateDeployment(ctx, &apigatewayv2.CreateDeploymentInput{ApiId: id, StageName: aws.String("dev"), Description: aws.String("first")})
	noErr(t, err)
	if !deployPattern.MatchString(*d.DeploymentId) || aws.ToBool(d.AutoDeployed) || d.DeploymentStatus != types.DeploymentStatusDeployed {
		t.Fatalf("CreateDeployment %+v", d)
	}
	gst, err := c.GetStage(ctx, &apigatewayv2.GetStageInput{ApiId: id, StageName: aws.String("dev")})
	if err != nil || aws.ToString(gst.DeploymentId) != *d.DeploymentId {
		t.Fatalf("GetStage %v %+v", err, gst)
	}
	// UpdateStage merges variables ("" removes one) and route settings.
	ust, err := c.UpdateStage(ctx, &apigatewayv2.UpdateStageInput{ApiId: id, StageName: aws.String("dev"),
		StageVariables:       map[string]string{"mode": "", "extra": "1"},
		DefaultRouteSettings: &types.RouteSettings{ThrottlingRateLimit: aws.Float64(50)},
		RouteSettings:        map[string]types.RouteSettings{"POST /pets": {ThrottlingRateLimit: aws.Float64(2)}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ust.StageVariables) != 2 || ust.StageVariables["extra"] != "1" || ust.StageVariables["fn"] != "calc" ||
		*ust.DefaultRouteSettings.ThrottlingBurstLimit != 10 || *ust.DefaultRouteSettings.ThrottlingRateLimit != 50 ||
		len(ust.RouteSettings) != 2 || *ust.DeploymentId != *d.DeploymentId {
		t.Fatalf("UpdateStage %+v", ust)
	}
	if _, err := c.DeleteRouteSettings(ctx, &apigatewayv2.DeleteRouteSettingsInput{ApiId: id, StageName: aws.String("dev"),
		RouteKey: aws.String("GET /pets")}); err != nil {
		t.Fatal(err)
	}
	if gst, _ := c.GetStage(ctx, &apigatewayv2.GetStageInput{ApiId: id, StageName: aws.String("dev")}); len(gst.RouteSettings) != 1 {
		t.Fatalf("route settings after DeleteRouteSettings: %+v", gst.RouteSettings)
	}
	// An autoDeploy stage is deployed when made, and again after each change.
	auto, err := c.CreateStage(ctx, &apigatewayv2.CreateStageInput{ApiId: id, StageName: aws.String("$default"), AutoDeploy: aws.Bool(true)})
	if err != nil || auto.DeploymentId == nil || !aws.ToBool(auto.AutoDeploy) {
		t.Fatalf("CreateStage autoDeploy %v %+v", err, auto)
	}
	_, err = c.DeleteRoute(ctx, &apigatewayv2.DeleteRouteInput{ApiId: id, RouteId: &routeIDs[5]})
	noErr(t, err)
	auto2, _ := c.GetStage(ctx, &apigatewayv2.GetStageInput{ApiId: id, StageName: aws.String("$default")})
	dev2, _ := c.GetStage(ctx, &apigatewayv2.GetStageInput{ApiId: id, StageName: aws.String("dev")})
	if *auto2.DeploymentId == *auto.DeploymentId || *dev2.DeploymentId != *d.DeploymentId {
		t.Fatalf("after a change: autoDeploy stage on %s (was %s), dev on %s", *auto2.DeploymentId, *auto.DeploymentId, *dev2.DeploymentId)
	}
	deps, err := c.GetDeployments(ctx, &apigatewayv2.GetDeploymentsInput{ApiId: id})
	if err != nil || len(deps.Items) != 3 {
		t.Fatalf("GetDeployments %v %+v", err, deps)
	}
	gd, err := c.GetDeployment(ctx, &apigatewayv2.GetDeploymentInput{ApiId: id, DeploymentId: d.DeploymentId})
	if err != nil || *gd.Description != "first" {
		t.Fatalf("GetDeployment %v %+v", err, gd)
	}
	ud, err := c.UpdateDeployment(ctx, &apigatewayv2.UpdateDeploymentInput{ApiId: id, DeploymentId: d.DeploymentId, Description: aws.String("v1")})
	if err != nil || *ud.Description != "v1" {
		t.Fatalf("UpdateDeployment %v %+v", err, ud)
	}
	_, err = c.DeleteDeployment(ctx, &apigatewayv2.DeleteDeploymentInput{ApiId: id, DeploymentId: d.DeploymentId})
	wantAPIError(t, err, "BadRequestException", 400)
	_, err = c.DeleteDeployment(ctx, &apigatewayv2.DeleteDeploymentInput{ApiId: id, DeploymentId: auto.DeploymentId})
	noErr(t, err)
	_, err = c.GetDeployment(ctx, &apigatewayv2.GetDeploymentInput{ApiId: id, DeploymentId: auto.DeploymentId})
	wantAPIError(t, err, "NotFoundException", 404)
	_, err = c.DeleteStage(ctx, &apigatewayv2.DeleteStageInput{ApiId: id, StageName: aws.String("dev")})
	noErr(t, err)
	_, err = c.GetStage(ctx, &apigatewayv2.GetStageInput{ApiId: id, StageName: aws.String("dev")})
	wantAPIError(t, err, "NotFoundException", 404)
	// An integration no route targets can be deleted.
	for _, rid := range routeIDs[:5] {
		if _, err := c.DeleteRoute(ctx, &apigatewayv2.DeleteRouteInput{ApiId: id, RouteId: &rid}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.DeleteIntegration(ctx, &apigatewayv2.DeleteIntegrationInput{ApiId: id, IntegrationId: it.IntegrationId})
	noErr(t, err)
	_, err = c.GetIntegration(ctx, &apigatewayv2.GetIntegrationInput{ApiId: id, IntegrationId: it.IntegrationId})
	wantAPIMessage(t, err, "NotFoundException", 404, "Invalid Integration identifier specified")
	// With no routes left the autoDeploy stage keeps its deployment and says why.
	auto3, _ := c.GetStage(ctx, &apigatewayv2.GetStageInput{ApiId: id, StageName: aws.String("$default")})
	if !strings.Contains(aws.ToString(auto3.LastDeploymentStatusMessage), "no routes") || auto3.DeploymentId == nil {
		t.Fatalf("stage of an API without routes: %+v", auto3)
	}
}

func TestApigwBadInput(t *testing.T) {
	s := servertest.Start(t, "")
	c := apigwClient(t, s)
	ctx := context.Background()
	q, err := c.CreateApi(ctx, &apigatewayv2.CreateApiInput{Name: aws.String("quick"), ProtocolType: types.ProtocolTypeHttp, Target: aws.String(apigwFn)})
	noErr(t, err)
	p, err := c.CreateApi(ctx, &apigatewayv2.CreateApiInput{Name: aws.String("plain"), ProtocolType: types.ProtocolTypeHttp})
	noErr(t, err)
	qid, pid := q.ApiId, p.ApiId
	it, err := c.CreateIntegration(ctx, &apigatewayv2.CreateIntegrationInput{ApiId: pid, IntegrationType: types.IntegrationTypeAwsProxy,
		IntegrationUri: aws.String(apigwFn), PayloadFormatVersion: aws.String("2.0")})
	if err != nil {
		t.Fatal(err)
	}
	target := aws.String("integrations/" + *it.IntegrationId)
	rt, err := c.CreateRoute(ctx, &apigatewayv2.CreateRouteInput{ApiId: pid, RouteKey: aws.String("GET /pets"), Target: target})
	noErr(t, err)
	rt2, err := c.CreateRoute(ctx, &apigatewayv2.CreateRouteInput{ApiId: pid, RouteKey: aws.String("POST /pets")})
	noErr(t, err)
	_, err = c.CreateStage(ctx, &apigatewayv2.CreateStageInput{ApiId: pid, StageName: aws.String("dev")})
	noErr(t, err)
	before := apigwState(t, c)

	route := func(key string) func() error {
		return func() error {
			_, err := c.CreateRoute(ctx, &apigatewayv2.CreateRouteInput{ApiId: pid, RouteKey: aws.String(key), Target: target})
			return err
		}
	}
	integ := func(mutate func(*apigatewayv2.CreateIntegrationInput)) func() error {
		return func() error {
			in := &apigatewayv2.CreateIntegrationInput{ApiId: pid, IntegrationType: types.IntegrationTypeAwsProxy,
				IntegrationUri: aws.String(apigwFn), PayloadFormatVersion: aws.String("2.0")}
			mutate(in)
			_, err := c.CreateIntegration(ctx, in)
			return err
		}
	}
	stageIn := func(mutate func(*apigatewayv2.CreateStageInput)) func() error {
		return func() error {
			in := &apigatewayv2.CreateStageInput{ApiId: pid, StageName: aws.String("prod")}
			mutate(in)
			_, err := c.CreateStage(ctx, in)
			return err
		}
	}
	const bad, nf, conf = "BadRequestException", "NotFoundException", "ConflictException"
	tests := []struct {
		name   string
		call   func() error
		code   string
		substr string
	}{
		{"websocket", func() error {
			_, err := c.CreateApi(ctx, &apigatewayv2.CreateApiInput{Name: aws.String("ws"), ProtocolType: types.ProtocolTypeWebsocket,
				RouteSelectionExpression: aws.String("$request.body.action")})
			return err
		}, bad, "HTTP APIs"},
		{"quick create with an HTTP URL", func() error {
			_, err := c.CreateApi(ctx, &apigatewayv2.CreateApiInput{Name: aws.String("x"), ProtocolType: types.ProtocolTypeHttp,
				Target: aws.String("https://example.com/")})
			return err
		}, bad, "Invalid integration URI"},
		{"quick create with a bad route key", func() error {
			_, err := c.CreateApi(ctx, &apigatewayv2.CreateApiInput{Name: aws.String("x"), ProtocolType: types.ProtocolTypeHttp,
				Target: aws.String(apigwFn), RouteKey: aws.String("FETCH /x")})
			return err
		}, bad, "route key"},
		{"route key without target", func() error {
			_, err := c.CreateApi(ctx, &apigatewayv2.CreateApiInput{Name: aws.String("x"), ProtocolType: types.ProtocolTypeHttp,
				RouteKey: aws.String("GET /x")})
			return err
		}, bad, "Target"},
		{"credentials with origin *", func() error {
			_, err := c.CreateApi(ctx, &apigatewayv2.CreateApiInput{Name: aws.String("x"), ProtocolType: types.ProtocolTypeHttp,
				CorsConfiguration: &types.Cors{AllowOrigins: []string{"*"}, AllowCredentials: aws.Bool(true)}})
			return err
		}, bad, "allowCredentials"},
		{"cors max age", func() error {
			_, err := c.UpdateApi(ctx, &apigatewayv2.UpdateApiInput{ApiId: pid, CorsConfiguration: &types.Cors{MaxAge: aws.Int32(86401)}})
			return err
		}, bad, "maxAge"},
		{"reserved tag", func() error {
			_, err := c.CreateApi(ctx, &apigatewayv2.CreateApiInput{Name: aws.String("x"), ProtocolType: types.ProtocolTypeHttp,
				Tags: map[string]string{"aws:x": "y"}})
			return err
		}, bad, "reserved"},
		{"long name", func() error {
			_, err := c.UpdateApi(ctx, &apigatewayv2.UpdateApiInput{ApiId: pid, Name: aws.String(strings.Repeat("n", 129))})
			return err
		}, bad, "name"},
		{"route selection expression", func() error {
			_, err := c.UpdateApi(ctx, &apigatewayv2.UpdateApiInput{ApiId: pid, RouteSelectionExpression: aws.String("$request.body.action")})
			return err
		}, bad, "route selection"},
		{"route key method only", route("GET"), bad, "route key"},
		{"route key bad method", route("FETCH /pets"), bad, "route key"},
		{"route key lower-case method", route("get /pets"), bad, "route key"},
		{"route key relative path", route("GET pets"), bad, "route key"},
		{"route key greedy not last", route("GET /a/{proxy+}/b"), bad, "greedy"},
		{"route key empty segment", route("GET /a//b"), bad, "path parts"},
		{"route key trailing slash", route("GET /a/"), bad, "path parts"},
		{"route key repeated parameter", route("GET /{a}/{a}"), bad, "more than once"},
		{"route key partial parameter", route("GET /a{b}"), bad, "path parts"},
		{"route key websocket", route("$connect"), bad, "route key"},
		{"duplicate route key", route("GET /pets"), conf, "GET /pets"},
		{"duplicate route key on update", func() error {
			_, err := c.UpdateRoute(ctx, &apigatewayv2.UpdateRouteInput{ApiId: pid, RouteId: rt2.RouteId, RouteKey: aws.String("GET /pets")})
			return err
		}, conf, "GET /pets"},
		{"managed route key", func() error {
			r2, err := c.GetRoutes(ctx, &apigatewayv2.GetRoutesInput{ApiId: qid})
			if err != nil {
				return err
			}
			_, err = c.UpdateRoute(ctx, &apigatewayv2.UpdateRouteInput{ApiId: qid, RouteId: r2.Items[0].RouteId, RouteKey: aws.String("GET /x")})
			return err
		}, bad, "UpdateApi"},
		{"route target not an integration", func() error {
			_, err := c.CreateRoute(ctx, &apigatewayv2.CreateRouteInput{ApiId: pid, RouteKey: aws.String("GET /x"), Target: aws.String(apigwFn)})
			return err
		}, bad, "target"},
		{"route target missing integration", func() error {
			_, err := c.CreateRoute(ctx, &apigatewayv2.CreateRouteInput{ApiId: pid, RouteKey: aws.String("GET /x"), Target: aws.String("integrations/zzzzzzz")})
			return err
		}, bad, "does not exist"},
		{"route JWT", func() error {
			_, err := c.CreateRoute(ctx, &apigatewayv2.CreateRouteInput{ApiId: pid, RouteKey: aws.String("GET /x"), AuthorizationType: types.AuthorizationTypeJwt})
			return err
		}, bad, "not supported by nubis yet"},
		{"route CUSTOM without an authorizer on update", func() error {
			_, err := c.UpdateRoute(ctx, &apigatewayv2.UpdateRouteInput{ApiId: pid, RouteId: rt.RouteId, AuthorizationType: types.AuthorizationTypeCustom})
			return err
		}, bad, "needs an AuthorizerId"},
		{"route of a missing API", func() error {
			_, err := c.CreateRoute(ctx, &apigatewayv2.CreateRouteInput{ApiId: aws.String("abcdefghij"), RouteKey: aws.String("GET /x")})
			return err
		}, nf, "Invalid API identifier"},
		{"missing route", func() error {
			_, err := c.UpdateRoute(ctx, &apigatewayv2.UpdateRouteInput{ApiId: pid, RouteId: aws.String("zzzzzzz"), RouteKey: aws.String("GET /y")})
			return err
		}, nf, "Route identifier"},
		{"integration HTTP_PROXY", integ(func(in *apigatewayv2.CreateIntegrationInput) {
			in.IntegrationType, in.IntegrationUri = types.IntegrationTypeHttpProxy, aws.String("https://example.com")
			in.IntegrationMethod = aws.String("GET")
		}), bad, "HTTP_PROXY"},
		{"integration MOCK", integ(func(in *apigatewayv2.CreateIntegrationInput) { in.IntegrationType = types.IntegrationTypeMock }), bad, "proxy integrations"},
		{"integration URI", integ(func(in *apigatewayv2.CreateIntegrationInput) {
			in.IntegrationUri = aws.String("arn:aws:sqs:us-east-1:123456789012:q")
		}), bad, "Invalid integration URI"},
		{"integration URI other region", integ(func(in *apigatewayv2.CreateIntegrationInput) {
			in.IntegrationUri = aws.String("arn:aws:lambda:eu-west-1:123456789012:function:f")
		}), bad, "region"},
		{"integration without URI", integ(func(in *apigatewayv2.CreateIntegrationInput) { in.IntegrationUri = nil }), bad, "URI is required"},
		{"payload format missing", integ(func(in *apigatewayv2.CreateIntegrationInput) { in.PayloadFormatVersion = nil }), bad, "PayloadFormatVersion"},
		{"payload format 3.0", integ(func(in *apigatewayv2.CreateIntegrationInput) { in.PayloadFormatVersion = aws.String("3.0") }), bad, "payload format"},
		{"timeout 49", integ(func(in *apigatewayv2.CreateIntegrationInput) { in.TimeoutInMillis = aws.Int32(49) }), bad, "timeout"},
		{"timeout 30001", integ(func(in *apigatewayv2.CreateIntegrationInput) { in.TimeoutInMillis = aws.Int32(30001) }), bad, "timeout"},
		{"integration VPC link", integ(func(in *apigatewayv2.CreateIntegrationInput) { in.ConnectionType = types.ConnectionTypeVpcLink }), bad, "not supported by nubis yet"},
		{"update integration timeout", func() error {
			_, err := c.UpdateIntegration(ctx, &apigatewayv2.UpdateIntegrationInput{ApiId: pid, IntegrationId: it.IntegrationId, TimeoutInMillis: aws.Int32(0)})
			return err
		}, bad, "timeout"},
		{"delete a targeted integration", func() error {
			_, err := c.DeleteIntegration(ctx, &apigatewayv2.DeleteIntegrationInput{ApiId: pid, IntegrationId: it.IntegrationId})
			return err
		}, conf, *rt.RouteId},
		{"missing integration", func() error {
			_, err := c.GetIntegration(ctx, &apigatewayv2.GetIntegrationInput{ApiId: pid, IntegrationId: aws.String("zzzzzzz")})
			return err
		}, nf, "Integration identifier"},
		{"stage name", stageIn(func(in *apigatewayv2.CreateStageInput) { in.StageName = aws.String("pro d") }), bad, "stage name"},
		{"stage taken", stageIn(func(in *apigatewayv2.CreateStageInput) { in.StageName = aws.String("dev") }), conf, "dev"},
		{"stage route settings of a missing route", stageIn(func(in *apigatewayv2.CreateStageInput) {
			in.RouteSettings = map[string]types.RouteSettings{"GET /nope": {ThrottlingBurstLimit: aws.Int32(1)}}
		}), bad, "GET /nope"},
		{"stage logging", stageIn(func(in *apigatewayv2.CreateStageInput) {
			in.DefaultRouteSettings = &types.RouteSettings{LoggingLevel: types.LoggingLevelInfo}
		}), bad, "Execution logs"},
		{"stage negative burst", stageIn(func(in *apigatewayv2.CreateStageInput) {
			in.DefaultRouteSettings = &types.RouteSettings{ThrottlingBurstLimit: aws.Int32(-1)}
		}), bad, "burst"},
		{"stage variable name", stageIn(func(in *apigatewayv2.CreateStageInput) { in.StageVariables = map[string]string{"a-b": "x"} }), bad, "variable"},
		{"stage missing deployment", stageIn(func(in *apigatewayv2.CreateStageInput) { in.DeploymentId = aws.String("zzzzzz") }), nf, "Deployment"},
		{"missing stage", func() error {
			_, err := c.UpdateStage(ctx, &apigatewayv2.UpdateStageInput{ApiId: pid, StageName: aws.String("nope"), AutoDeploy: aws.Bool(true)})
			return err
		}, nf, "stage"},
		{"deployment of an autoDeploy stage", func() error {
			_, err := c.CreateDeployment(ctx, &apigatewayv2.CreateDeploymentInput{ApiId: qid, StageName: aws.String("$default")})
			return err
		}, bad, "autoDeploy"},
		{"deployment to a missing stage", func() error {
			_, err := c.CreateDeployment(ctx, &apigatewayv2.CreateDeploymentInput{ApiId: pid, StageName: aws.String("nope")})
			return err
		}, nf, "stage"},
		{"missing deployment", func() error {
			_, err := c.GetDeployment(ctx, &apigatewayv2.GetDeploymentInput{ApiId: pid, DeploymentId: aws.String("zzzzzz")})
			return err
		}, nf, "Deployment identifier"},
		{"maxResults 0", func() error {
			_, err := c.GetApis(ctx, &apigatewayv2.GetApisInput{MaxResults: aws.String("0")})
			return err
		}, bad, "maxResults"},
		{"bad nextToken", func() error {
			_, err := c.GetRoutes(ctx, &apigatewayv2.GetRoutesInput{ApiId: pid, NextToken: aws.String("!!!")})
			return err
		}, bad, "nextToken"},
		{"untag a missing stage", func() error {
			_, err := c.UntagResource(ctx, &apigatewayv2.UntagResourceInput{ResourceArn: aws.String("arn:aws:apigateway:us-east-1::/apis/" + *pid + "/stages/nope"),
				TagKeys: []string{"a"}})
			return err
		}, nf, "stage"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantAPIMessage(t, tc.call(), tc.code, map[string]int{bad: 400, nf: 404, conf: 409}[tc.code], tc.substr)
		})
	}
	// What the SDK refuses to send.
	for _, tc := range []struct{ name, method, path, body, substr string }{
		{"no name", "POST", "/v2/apis", `{"protocolType":"HTTP"}`, "Name"},
		{"no protocol", "POST", "/v2/apis", `{"name":"x"}`, "ProtocolType"},
		{"bad protocol", "POST", "/v2/apis", `{"name":"x","protocolType":"REST"}`, "protocol"},
		{"malformed JSON", "POST", "/v2/apis", `{"name":`, "Invalid request body"},
		{"wrong type", "POST", "/v2/apis/" + *pid + "/integrations", `{"integrationType":"AWS_PROXY","timeoutInMillis":"x"}`, "Invalid request body"},
		{"no route key", "POST", "/v2/apis/" + *pid + "/routes", `{}`, "Route key"},
		{"no integration type", "POST", "/v2/apis/" + *pid + "/integrations", `{}`, "IntegrationType"},
		{"no stage name", "POST", "/v2/apis/" + *pid + "/stages", `{}`, "Stage name"},
		{"maxResults not a number", "GET", "/v2/apis?maxResults=ten", "", "maxResults"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := apigwRaw(t, s, tc.method, tc.path, tc.body)
			var body map[string]string
			json.Unmarshal([]byte(r.Body), &body)
			if r.Status != 400 || r.Header.Get("X-Amzn-Errortype") != bad || !strings.Contains(body["message"], tc.substr) {
				t.Fatalf("%d %s %s", r.Status, r.Header.Get("X-Amzn-Errortype"), r.Body)
			}
		})
	}
	if after := apigwState(t, c); after != before {
		t.Fatalf("refused requests changed the state:\n%s\n%s", before, after)
	}
	// An API without routes cannot be deployed.
	empty, err := c.CreateApi(ctx, &apigatewayv2.CreateApiInput{Name: aws.String("empty"), ProtocolType: types.ProtocolTypeHttp})
	noErr(t, err)
	_, err = c.CreateDeployment(ctx, &apigatewayv2.CreateDeploymentInput{ApiId: empty.ApiId})
	wantAPIMessage(t, err, bad, 400, "no routes")
	if deps, err := c.GetDeployments(ctx, &apigatewayv2.GetDeploymentsInput{ApiId: empty.ApiId}); err != nil || len(deps.Items) != 0 {
		t.Fatalf("deployments %v %+v", err, deps)
	}
	// An API has at most 10 stages.
	for i := range 10 {
		_, err := c.CreateStage(ctx, &apigatewayv2.CreateStageInput{ApiId: empty.ApiId, StageName: aws.String(fmt.Sprint("s", i))})
		noErr(t, err)
	}
	_, err = c.CreateStage(ctx, &apigatewayv2.CreateStageInput{ApiId: empty.ApiId, StageName: aws.String("s10")})
	wantAPIMessage(t, err, "TooManyRequestsException", 429, "Maximum number of Stages")
}

func TestApigwDeleteCascadesAndRestart(t *testing.T) {
	dir := t.TempDir()
	s := servertest.Start(t, dir)
	c := apigwClient(t, s)
	ctx := context.Background()
	keep, err := c.CreateApi(ctx, &apigatewayv2.CreateApiInput{Name: aws.String("keep"), ProtocolType: types.ProtocolTypeHttp,
		Target: aws.String(apigwFn), RouteKey: aws.String("POST /mean"), Tags: map[string]string{"k": "v"},
		CorsConfiguration: &types.Cors{AllowOrigins: []string{"https://example.com"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateStage(ctx, &apigatewayv2.CreateStageInput{ApiId: keep.ApiId, StageName: aws.String("prod"),
		StageVariables: map[string]string{"v": "1"}, AutoDeploy: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	gone, err := c.CreateApi(ctx, &apigatewayv2.CreateApiInput{Name: aws.String("gone"), ProtocolType: types.ProtocolTypeHttp, Target: aws.String(apigwFn)})
	noErr(t, err)
	_, err = c.CreateStage(ctx, &apigatewayv2.CreateStageInput{ApiId: gone.ApiId, StageName: aws.String("dev")})
	noErr(t, err)
	_, err = c.DeleteApi(ctx, &apigatewayv2.DeleteApiInput{ApiId: gone.ApiId})
	noErr(t, err)
	before := apigwState(t, c)
	s.Stop(t)

	// Nothing of the deleted API is left in the store.
	st, err := server.OpenStore(ctx, dir, nil)
	noErr(t, err)
	kvs, err := st.List(ctx, "apigw/", "", 0)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, kv := range kvs {
		if strings.Contains(kv.Key, *gone.ApiId) {
			t.Errorf("left after DeleteApi: %s", kv.Key)
		}
		keys = append(keys, kv.Key)
	}
	// keep: the API, its integration, route, two stages and their two deployments.
	if len(keys) != 7 {
		t.Fatalf("%d keys: %v", len(keys), keys)
	}

	s2 := servertest.Start(t, dir)
	c2 := apigwClient(t, s2)
	after := apigwState(t, c2)
	u1, _ := url.Parse(s.Endpoint())
	u2, _ := url.Parse(s2.Endpoint())
	// The endpoint follows the server's port; everything else is as it was.
	if strings.ReplaceAll(after, ":"+u2.Port(), ":"+u1.Port()) != before {
		t.Fatalf("state changed across a restart:\n%s\n%s", before, after)
	}
	got, err := c2.GetApi(ctx, &apigatewayv2.GetApiInput{ApiId: keep.ApiId})
	if err != nil || got.Tags["k"] != "v" || *got.ApiEndpoint != "http://"+*keep.ApiId+".execute-api.localhost:"+u2.Port() {
		t.Fatalf("GetApi after restart: %v %+v", err, got)
	}
	_, err = c2.GetApi(ctx, &apigatewayv2.GetApiInput{ApiId: gone.ApiId})
	wantAPIError(t, err, "NotFoundException", 404)
}
