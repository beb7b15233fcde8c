package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/nubis/nubis/internal/server/servertest"
)

func TestLambdaUpdatesVersionsAliases(t *testing.T) {
	dataDir := t.TempDir()
	s := servertest.Start(t, dataDir)
	c := lambda.NewFromConfig(s.Config(t, nil))
	ctx := context.Background()
	created := createMean(t, c, "calc", func(in *lambda.CreateFunctionInput) { in.Publish = true })
	if *created.Version != "1" {
		t.Fatalf("CreateFunction with Publish returned version %s", *created.Version)
	}
	cfg, err := c.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("calc")})
	if err != nil {
		t.Fatal(err)
	}
	// A stale RevisionId is refused and changes nothing.
	_, err = c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("calc"),
		MemorySize: aws.Int32(256), RevisionId: aws.String("00000000-0000-0000-0000-000000000000")})
	wantAPIError(t, err, "PreconditionFailedException", 412)
	_, err = c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("calc"), Timeout: aws.Int32(5000)})
	wantAPIError(t, err, "InvalidParameterValueException", 400)
	up, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("calc"),
		MemorySize: aws.Int32(256), Timeout: aws.Int32(10), RevisionId: cfg.RevisionId,
		Environment: &types.Environment{Variables: map[string]string{"KEY": "v"}}})
	if err != nil {
		t.Fatal(err)
	}
	if *up.MemorySize != 256 || *up.Timeout != 10 || *up.RevisionId == *cfg.RevisionId || *up.Handler != *cfg.Handler {
		t.Fatalf("UpdateFunctionConfiguration: %+v", up)
	}
	waitUpdated(t, c, "calc")

	// New code: InProgress, then Successful; the waiter sees it through.
	code2 := makeZip(t, zipEntry{name: "lambda_function.py", body: meanHandler + "\n# v2\n"})
	uc, err := c.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("calc"), ZipFile: code2})
	if err != nil {
		t.Fatal(err)
	}
	if uc.LastUpdateStatus != types.LastUpdateStatusInProgress || *uc.CodeSha256 == *created.CodeSha256 {
		t.Fatalf("UpdateFunctionCode: %s %s", uc.LastUpdateStatus, *uc.CodeSha256)
	}
	waitUpdated(t, c, "calc")
	_, err = c.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("calc"), ZipFile: []byte("not a zip")})
	wantAPIError(t, err, "InvalidParameterValueException", 400)

	// Versions: 2 is published; publishing again without a change returns 2.
	v2, err := c.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("calc"), Description: aws.String("second")})
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("calc")})
	if err != nil || *v2.Version != "2" || *again.Version != "2" || *v2.MemorySize != 256 || *v2.Description != "second" {
		t.Fatalf("PublishVersion: %v %v %v", v2, again, err)
	}
	_, err = c.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("calc"), CodeSha256: aws.String("bogus")})
	wantAPIError(t, err, "InvalidParameterValueException", 400)
	var versions []string
	p := lambda.NewListVersionsByFunctionPaginator(c, &lambda.ListVersionsByFunctionInput{FunctionName: aws.String("calc"), MaxItems: aws.Int32(1)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page.Versions {
			versions = append(versions, *v.Version)
		}
	}
	if fmt.Sprint(versions) != "[$LATEST 1 2]" {
		t.Fatalf("versions %v", versions)
	}
	v1, _ := c.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("calc"), Qualifier: aws.String("1")})
	if *v1.MemorySize != 128 || *v1.CodeSha256 != *created.CodeSha256 {
		t.Fatalf("version 1 changed: %+v", v1)
	}

	// Aliases.
	live, err := c.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String("calc"), Name: aws.String("live"), FunctionVersion: aws.String("1")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String("calc"), Name: aws.String("live"), FunctionVersion: aws.String("2")})
	wantAPIError(t, err, "ResourceConflictException", 409)
	_, err = c.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String("calc"), Name: aws.String("next"), FunctionVersion: aws.String("9")})
	wantAPIError(t, err, "ResourceNotFoundException", 404)
	_, err = c.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String("calc"), Name: aws.String("123"), FunctionVersion: aws.String("1")})
	wantAPIError(t, err, "ValidationException", 400)
	byAlias, err := c.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("calc:live")})
	if err != nil || *byAlias.Version != "1" {
		t.Fatalf("by alias: %v %v", byAlias, err)
	}
	_, err = c.UpdateAlias(ctx, &lambda.UpdateAliasInput{FunctionName: aws.String("calc"), Name: aws.String("live"), FunctionVersion: aws.String("2"),
		RevisionId: aws.String("stale")})
	wantAPIError(t, err, "PreconditionFailedException", 412)
	ua, err := c.UpdateAlias(ctx, &lambda.UpdateAliasInput{FunctionName: aws.String("calc"), Name: aws.String("live"), FunctionVersion: aws.String("2"),
		RevisionId: live.RevisionId, RoutingConfig: &types.AliasRoutingConfiguration{AdditionalVersionWeights: map[string]float64{"1": 0.1}}})
	if err != nil || *ua.FunctionVersion != "2" || ua.RoutingConfig.AdditionalVersionWeights["1"] != 0.1 {
		t.Fatalf("UpdateAlias: %v %v", ua, err)
	}
	_, err = c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("calc"), Qualifier: aws.String("1")})
	wantAPIError(t, err, "ResourceConflictException", 409)
	_, err = c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("calc"), Qualifier: aws.String("$LATEST")})
	wantAPIError(t, err, "InvalidParameterValueException", 400)
	aliases, err := c.ListAliases(ctx, &lambda.ListAliasesInput{FunctionName: aws.String("calc")})
	if err != nil || len(aliases.Aliases) != 1 {
		t.Fatalf("ListAliases: %v %v", aliases, err)
	}
	_, err = c.GetAlias(ctx, &lambda.GetAliasInput{FunctionName: aws.String("calc"), Name: aws.String("nope")})
	wantAPIError(t, err, "ResourceNotFoundException", 404)

	// Concurrency and tags.
	if _, err := c.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String("calc"), ReservedConcurrentExecutions: aws.Int32(10)}); err != nil {
		t.Fatal(err)
	}
	_, err = c.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String("calc"), ReservedConcurrentExecutions: aws.Int32(950)})
	wantAPIError(t, err, "InvalidParameterValueException", 400)
	gc, err := c.GetFunctionConcurrency(ctx, &lambda.GetFunctionConcurrencyInput{FunctionName: aws.String("calc")})
	if err != nil || *gc.ReservedConcurrentExecutions != 10 {
		t.Fatalf("GetFunctionConcurrency: %v %v", gc, err)
	}
	arn := "arn:aws:lambda:us-east-1:" + s.Identity().Account().ID + ":function:calc"
	if _, err := c.TagResource(ctx, &lambda.TagResourceInput{Resource: aws.String(arn), Tags: map[string]string{"a": "1", "b": "2"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UntagResource(ctx, &lambda.UntagResourceInput{Resource: aws.String(arn), TagKeys: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	tags, err := c.ListTags(ctx, &lambda.ListTagsInput{Resource: aws.String(arn)})
	if err != nil || fmt.Sprint(tags.Tags) != "map[b:2]" {
		t.Fatalf("ListTags: %v %v", tags, err)
	}
	_, err = c.ListTags(ctx, &lambda.ListTagsInput{Resource: aws.String(arn + "x")})
	wantAPIError(t, err, "ResourceNotFoundException", 404)

	// Everything survives a restart.
	s.Stop(t)
	s = servertest.Start(t, dataDir)
	c = lambda.NewFromConfig(s.Config(t, nil))
	got, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("calc:live")})
	if err != nil || *got.Configuration.Version != "2" || *got.Concurrency.ReservedConcurrentExecutions != 10 || got.Tags["b"] != "2" ||
		got.Configuration.State != types.StateActive {
		t.Fatalf("after restart: %+v %v", got, err)
	}

	// Deleting a version, an alias, then the function.
	if _, err := c.DeleteAlias(ctx, &lambda.DeleteAliasInput{FunctionName: aws.String("calc"), Name: aws.String("live")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("calc"), Qualifier: aws.String("1")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("calc"), Qualifier: aws.String("1")})
	wantAPIError(t, err, "ResourceNotFoundException", 404)
	if _, err := c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("calc")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("calc")})
	wantAPIError(t, err, "ResourceNotFoundException", 404)
	_, err = c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("calc")})
	wantAPIError(t, err, "ResourceNotFoundException", 404)
}

func TestLambdaListFunctionsPagination(t *testing.T) {
	s := servertest.Start(t, "")
	c := lambda.NewFromConfig(s.Config(t, nil))
	for _, n := range []string{"c", "a", "b"} {
		createMean(t, c, n)
	}
	var names []string
	pages := 0
	p := lambda.NewListFunctionsPaginator(c, &lambda.ListFunctionsInput{MaxItems: aws.Int32(2)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, f := range page.Functions {
			names = append(names, *f.FunctionName)
		}
	}
	if fmt.Sprint(names) != "[a b c]" || pages != 2 {
		t.Fatalf("ListFunctions pages: %v in %d pages", names, pages)
	}
	_, err := c.ListFunctions(context.Background(), &lambda.ListFunctionsInput{MaxItems: aws.Int32(0)})
	wantAPIError(t, err, "ValidationException", 400)
}

func TestLambdaPermissions(t *testing.T) {
	dataDir := t.TempDir()
	s := servertest.Start(t, dataDir)
	c := lambda.NewFromConfig(s.Config(t, nil))
	ctx := context.Background()
	createMean(t, c, "calc")
	_, err := c.GetPolicy(ctx, &lambda.GetPolicyInput{FunctionName: aws.String("calc")})
	wantAPIError(t, err, "ResourceNotFoundException", 404)
	acct := s.Identity().Account().ID
	src := "arn:aws:execute-api:us-east-1:" + acct + ":abc123/*/*/calc"
	out, err := c.AddPermission(ctx, &lambda.AddPermissionInput{FunctionName: aws.String("calc"), StatementId: aws.String("apigw-invoke"),
		Action: aws.String("lambda:InvokeFunction"), Principal: aws.String("apigateway.amazonaws.com"), SourceArn: aws.String(src)})
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(*out.Statement), &st); err != nil || st["Sid"] != "apigw-invoke" ||
		st["Principal"].(map[string]any)["Service"] != "apigateway.amazonaws.com" ||
		st["Resource"] != "arn:aws:lambda:us-east-1:"+acct+":function:calc" {
		t.Fatalf("statement %s (%v)", *out.Statement, err)
	}
	_, err = c.AddPermission(ctx, &lambda.AddPermissionInput{FunctionName: aws.String("calc"), StatementId: aws.String("apigw-invoke"),
		Action: aws.String("lambda:InvokeFunction"), Principal: aws.String("apigateway.amazonaws.com")})
	wantAPIError(t, err, "ResourceConflictException", 409)
	_, err = c.AddPermission(ctx, &lambda.AddPermissionInput{FunctionName: aws.String("calc"), StatementId: aws.String("bad sid"),
		Action: aws.String("lambda:InvokeFunction"), Principal: aws.String("apigateway.amazonaws.com")})
	wantAPIError(t, err, "ValidationException", 400)
	_, err = c.AddPermission(ctx, &lambda.AddPermissionInput{FunctionName: aws.String("nope"), StatementId: aws.String("x"),
		Action: aws.String("lambda:InvokeFunction"), Principal: aws.String("apigateway.amazonaws.com")})
	wantAPIError(t, err, "ResourceNotFoundException", 404)

	// The policy survives a restart.
	s.Stop(t)
	s = servertest.Start(t, dataDir)
	c = lambda.NewFromConfig(s.Config(t, nil))
	pol, err := c.GetPolicy(ctx, &lambda.GetPolicyInput{FunctionName: aws.String("calc")})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Version   string
		Statement []struct {
			Sid       string
			Condition map[string]map[string]string
		}
	}
	if err := json.Unmarshal([]byte(*pol.Policy), &doc); err != nil || doc.Version != "2012-10-17" || len(doc.Statement) != 1 ||
		doc.Statement[0].Condition["ArnLike"]["AWS:SourceArn"] != src || pol.RevisionId == nil {
		t.Fatalf("GetPolicy: %s (%v)", *pol.Policy, err)
	}
	_, err = c.RemovePermission(ctx, &lambda.RemovePermissionInput{FunctionName: aws.String("calc"), StatementId: aws.String("other")})
	wantAPIError(t, err, "ResourceNotFoundException", 404)
	if _, err := c.RemovePermission(ctx, &lambda.RemovePermissionInput{FunctionName: aws.String("calc"), StatementId: aws.String("apigw-invoke")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetPolicy(ctx, &lambda.GetPolicyInput{FunctionName: aws.String("calc")})
	wantAPIError(t, err, "ResourceNotFoundException", 404)
}
