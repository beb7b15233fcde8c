package server_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/nubis/nubis/internal/server/servertest"
)

func publishLayer(t *testing.T, c *lambda.Client, name string, files ...zipEntry) *lambda.PublishLayerVersionOutput {
	t.Helper()
	out, err := c.PublishLayerVersion(context.Background(), &lambda.PublishLayerVersionInput{LayerName: aws.String(name),
		Content: &types.LayerVersionContentInput{ZipFile: makeZip(t, files...)}, CompatibleRuntimes: []types.Runtime{types.RuntimePython312},
		Description: aws.String("helpers")})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLayersControlPlane: versions are numbered and never reused, listed newest first, found by
// ARN, downloadable, deleted; bad input gets Lambda's errors.
func TestLayersControlPlane(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, "")
	c := lambda.NewFromConfig(s.Config(t, nil))
	v1 := publishLayer(t, c, "helpers", zipEntry{name: "python/helper.py", body: "X = 1\n"})
	v2 := publishLayer(t, c, "helpers", zipEntry{name: "python/helper.py", body: "X = 2\n"})
	account := s.Identity().Account().ID
	if v1.Version != 1 || v2.Version != 2 || aws.ToString(v2.LayerVersionArn) != "arn:aws:lambda:us-east-1:"+account+":layer:helpers:2" ||
		aws.ToString(v2.LayerArn) != "arn:aws:lambda:us-east-1:"+account+":layer:helpers" || v2.Content == nil || v2.Content.CodeSize == 0 {
		t.Fatalf("published: %+v %+v", v1, v2)
	}
	// Content.Location downloads the zip.
	resp, err := http.Get(aws.ToString(v2.Content.Location))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || int64(len(body)) != v2.Content.CodeSize {
		t.Fatalf("download: %d, %d bytes", resp.StatusCode, len(body))
	}
	lv, err := c.ListLayerVersions(ctx, &lambda.ListLayerVersionsInput{LayerName: aws.String("helpers")})
	if err != nil || len(lv.LayerVersions) != 2 || lv.LayerVersions[0].Version != 2 {
		t.Fatalf("ListLayerVersions: %+v %v", lv, err)
	}
	byARN, err := c.GetLayerVersionByArn(ctx, &lambda.GetLayerVersionByArnInput{Arn: v1.LayerVersionArn})
	if err != nil || byARN.Version != 1 {
		t.Fatalf("GetLayerVersionByArn: %+v %v", byARN, err)
	}
	ll, err := c.ListLayers(ctx, &lambda.ListLayersInput{CompatibleRuntime: types.RuntimePython312})
	if err != nil || len(ll.Layers) != 1 || ll.Layers[0].LatestMatchingVersion.Version != 2 {
		t.Fatalf("ListLayers: %+v %v", ll, err)
	}
	if ll, err := c.ListLayers(ctx, &lambda.ListLayersInput{CompatibleRuntime: types.RuntimeNodejs20x}); err != nil || len(ll.Layers) != 0 {
		t.Fatalf("ListLayers for node: %+v %v", ll, err)
	}
	if _, err := c.DeleteLayerVersion(ctx, &lambda.DeleteLayerVersionInput{LayerName: aws.String("helpers"), VersionNumber: aws.Int64(2)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteLayerVersion(ctx, &lambda.DeleteLayerVersionInput{LayerName: aws.String("helpers"), VersionNumber: aws.Int64(2)}); err != nil {
		t.Fatalf("deleting a deleted version again: %v", err)
	}
	_, err = c.GetLayerVersion(ctx, &lambda.GetLayerVersionInput{LayerName: aws.String("helpers"), VersionNumber: aws.Int64(2)})
	wantAPIError(t, err, "ResourceNotFoundException", 404)
	if v3 := publishLayer(t, c, "helpers", zipEntry{name: "python/helper.py", body: "X = 3\n"}); v3.Version != 3 {
		t.Fatalf("a version number was reused: %d", v3.Version)
	}

	_, err = c.PublishLayerVersion(ctx, &lambda.PublishLayerVersionInput{LayerName: aws.String("bad name"),
		Content: &types.LayerVersionContentInput{ZipFile: makeZip(t, zipEntry{name: "a", body: "a"})}})
	wantAPIError(t, err, "ValidationException", 400)
	_, err = c.PublishLayerVersion(ctx, &lambda.PublishLayerVersionInput{LayerName: aws.String("empty"), Content: &types.LayerVersionContentInput{}})
	wantAPIError(t, err, "InvalidParameterValueException", 400)
	_, err = c.PublishLayerVersion(ctx, &lambda.PublishLayerVersionInput{LayerName: aws.String("notzip"),
		Content: &types.LayerVersionContentInput{ZipFile: []byte("not a zip")}})
	wantAPIError(t, err, "InvalidParameterValueException", 400)
	// A function cannot use a missing or deleted version, two versions of one layer, or six layers.
	for _, layers := range [][]string{
		{"arn:aws:lambda:us-east-1:" + account + ":layer:helpers:9"},
		{aws.ToString(v2.LayerVersionArn)},
		{aws.ToString(v1.LayerVersionArn), "arn:aws:lambda:us-east-1:" + account + ":layer:helpers:3"},
		{"a", "b", "c", "d", "e", "f"},
	} {
		_, err := c.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("withlayers"), Runtime: types.RuntimePython312,
			Role: aws.String(role), Handler: aws.String("app.handler"), Layers: layers,
			Code: &types.FunctionCode{ZipFile: makeZip(t, zipEntry{name: "app.py", body: "def handler(e, c): return 1\n"})}})
		wantAPIError(t, err, "InvalidParameterValueException", 400)
	}
	if _, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("withlayers")}); err == nil {
		t.Fatal("a refused function was created")
	}
}

// TestLayersRun: a function imports a module from its layer (in /opt/python), sees a later layer's
// file win over an earlier one's, and keeps its layer version after that version is deleted;
// changing the layers in the configuration changes what runs.
func TestLayersRun(t *testing.T) {
	needSandboxes(t)
	ctx := context.Background()
	s := servertest.Start(t, "")
	c := lambda.NewFromConfig(s.Config(t, nil))
	base := publishLayer(t, c, "base", zipEntry{name: "python/helper.py", body: "WHO = 'base'\n"},
		zipEntry{name: "python/basic.py", body: "def mean(xs): return sum(xs) / len(xs)\n"},
		zipEntry{name: "bin/tool", body: "#!/bin/sh\necho tool from a layer\n", mode: 0o755})
	over := publishLayer(t, c, "override", zipEntry{name: "python/helper.py", body: "WHO = 'override'\n"})
	handler := "import subprocess, helper, basic\n" +
		"def handler(e, c):\n" +
		"    return {'who': helper.WHO, 'mean': basic.mean(e['nums']), 'tool': subprocess.run(['tool'], capture_output=True, text=True).stdout.strip()}\n"
	createMean(t, c, "layered", func(in *lambda.CreateFunctionInput) {
		in.Runtime, in.Handler = types.RuntimePython312, aws.String("app.handler")
		in.Code.ZipFile = makeZip(t, zipEntry{name: "app.py", body: handler})
		in.Layers = []string{aws.ToString(base.LayerVersionArn), aws.ToString(over.LayerVersionArn)}
	})
	got := invoke(t, c, "layered", `{"nums": [1, 2, 3]}`)
	if got.payload != `{"who": "override", "mean": 2.0, "tool": "tool from a layer"}` {
		t.Fatalf("with both layers: %s (%s)\n%s", got.payload, got.fnError, got.log)
	}
	cfg, err := c.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("layered")})
	if err != nil || len(cfg.Layers) != 2 || aws.ToString(cfg.Layers[1].Arn) != aws.ToString(over.LayerVersionArn) || cfg.Layers[0].CodeSize == 0 {
		t.Fatalf("configuration's layers: %+v %v", cfg.Layers, err)
	}
	// Deleted, the version stays with the function that uses it: a version published after the
	// delete runs with it, in a new environment.
	if _, err := c.DeleteLayerVersion(ctx, &lambda.DeleteLayerVersionInput{LayerName: aws.String("override"), VersionNumber: aws.Int64(1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("layered")}); err != nil {
		t.Fatal(err)
	}
	if got := invoke(t, c, "layered:1", `{"nums": [5]}`); !strings.Contains(got.payload, `"who": "override"`) || !strings.Contains(got.log, "Init Duration") {
		t.Fatalf("version 1 after its layer was deleted: %s (%s)\n%s", got.payload, got.fnError, got.log)
	}
	// Only the base layer now: its helper answers.
	if _, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("layered"),
		Layers: []string{aws.ToString(base.LayerVersionArn)}}); err != nil {
		t.Fatal(err)
	}
	waitUpdated(t, c, "layered")
	if got := invoke(t, c, "layered", `{"nums": [4]}`); !strings.Contains(got.payload, `"who": "base"`) {
		t.Fatalf("with the base layer only: %s (%s)", got.payload, got.fnError)
	}
	// No layers: the import fails as it would on AWS.
	if _, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("layered"),
		Layers: []string{}}); err != nil {
		t.Fatal(err)
	}
	waitUpdated(t, c, "layered")
	if got := invoke(t, c, "layered", `{"nums": [4]}`); got.fnError == "" || !strings.Contains(got.payload, "No module named 'helper'") {
		t.Fatalf("without layers: %s (%s)", got.payload, got.fnError)
	}
}

// TestCodeGarbage: at start, code blobs, unpacked code and merged layers that no version uses any
// more are removed; what versions and layer versions use is kept.
func TestCodeGarbage(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	s := servertest.Start(t, dataDir)
	c := lambda.NewFromConfig(s.Config(t, nil))
	layer := publishLayer(t, c, "kept", zipEntry{name: "python/k.py", body: "K = 1\n"})
	createMean(t, c, "gc", func(in *lambda.CreateFunctionInput) { in.Layers = []string{aws.ToString(layer.LayerVersionArn)} })
	if _, err := c.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("gc"),
		ZipFile: makeZip(t, zipEntry{name: "lambda_function.py", body: meanHandler + "\n# v2\n"})}); err != nil {
		t.Fatal(err)
	}
	waitUpdated(t, c, "gc")
	createMean(t, c, "gone", func(in *lambda.CreateFunctionInput) {
		in.Code.ZipFile = makeZip(t, zipEntry{name: "lambda_function.py", body: meanHandler + "\n# gone\n"})
	})
	if _, err := c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("gone")}); err != nil {
		t.Fatal(err)
	}
	count := func(dir string) int {
		entries, _ := os.ReadDir(filepath.Join(dataDir, "lambda", dir))
		return len(entries)
	}
	if count("code") != 4 || count("task") != 3 {
		t.Fatalf("before the restart: %d blobs, %d task dirs", count("code"), count("task"))
	}
	s.Stop(t)
	s = servertest.Start(t, dataDir)
	// Left: the layer's blob and gc's second code (and its task dir).
	if count("code") != 2 || count("task") != 1 || count("opt") != 1 {
		t.Fatalf("after the restart: %d blobs, %d task dirs, %d opt dirs", count("code"), count("task"), count("opt"))
	}
	c = lambda.NewFromConfig(s.Config(t, nil))
	if out, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("gc")}); err != nil || len(out.Configuration.Layers) != 1 {
		t.Fatalf("gc after the restart: %v %v", out, err)
	}
}
