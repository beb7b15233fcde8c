package server_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/nubis/nubis/internal/server/servertest"
)

func tagValue(tags []types.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

// TestLaunchTemplates: versions, the default, describe and its filters, deletes, and the errors,
// all without running anything.
func TestLaunchTemplates(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	s := servertest.Start(t, dataDir)
	c := ec2.NewFromConfig(s.Config(t, nil))
	img := defaultImage(t, c)
	lt, err := c.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("web"),
		VersionDescription: aws.String("first"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(img), InstanceType: types.InstanceTypeT3Micro,
			UserData: aws.String(base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\necho hi\n"))),
			TagSpecifications: []types.LaunchTemplateTagSpecificationRequest{{ResourceType: types.ResourceTypeInstance,
				Tags: []types.Tag{{Key: aws.String("app"), Value: aws.String("web")}}}}},
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeLaunchTemplate, Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("a")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(lt.LaunchTemplate.LaunchTemplateId)
	if !strings.HasPrefix(id, "lt-") || aws.ToInt64(lt.LaunchTemplate.DefaultVersionNumber) != 1 || tagValue(lt.LaunchTemplate.Tags, "team") != "a" {
		t.Fatalf("created: %+v", lt.LaunchTemplate)
	}
	v2, err := c.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{LaunchTemplateName: aws.String("web"), SourceVersion: aws.String("1"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{InstanceType: types.InstanceTypeT3Small}})
	if err != nil {
		t.Fatal(err)
	}
	if d := v2.LaunchTemplateVersion.LaunchTemplateData; aws.ToInt64(v2.LaunchTemplateVersion.VersionNumber) != 2 ||
		d.InstanceType != types.InstanceTypeT3Small || aws.ToString(d.ImageId) != img || len(d.TagSpecifications) != 1 ||
		aws.ToBool(v2.LaunchTemplateVersion.DefaultVersion) {
		t.Fatalf("version 2: %+v %+v", v2.LaunchTemplateVersion, d)
	}
	if _, err := c.ModifyLaunchTemplate(ctx, &ec2.ModifyLaunchTemplateInput{LaunchTemplateId: aws.String(id), DefaultVersion: aws.String("2")}); err != nil {
		t.Fatal(err)
	}
	vs, err := c.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: aws.String(id),
		Versions: []string{"$Default", "1"}})
	if err != nil || len(vs.LaunchTemplateVersions) != 2 || aws.ToInt64(vs.LaunchTemplateVersions[0].VersionNumber) != 2 ||
		!aws.ToBool(vs.LaunchTemplateVersions[0].DefaultVersion) || aws.ToString(vs.LaunchTemplateVersions[1].VersionDescription) != "first" {
		t.Fatalf("versions: %+v %v", vs, err)
	}
	if _, err := c.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("db-1"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{InstanceType: types.InstanceTypeR5Large}}); err != nil {
		t.Fatal(err)
	}
	// The $Latest version of every template, when no template is named.
	all, err := c.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{Versions: []string{"$Latest"}})
	if err != nil || len(all.LaunchTemplateVersions) != 2 {
		t.Fatalf("$Latest of every template: %+v %v", all, err)
	}
	d, err := c.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{Filters: []types.Filter{{Name: aws.String("tag:team"), Values: []string{"a"}}}})
	if err != nil || len(d.LaunchTemplates) != 1 || aws.ToInt64(d.LaunchTemplates[0].LatestVersionNumber) != 2 {
		t.Fatalf("describe by tag: %+v %v", d, err)
	}
	var names []string
	p := ec2.NewDescribeLaunchTemplatesPaginator(c, &ec2.DescribeLaunchTemplatesInput{MaxResults: aws.Int32(1)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range page.LaunchTemplates {
			names = append(names, aws.ToString(l.LaunchTemplateName))
		}
	}
	if len(names) != 2 {
		t.Fatalf("paged: %v", names)
	}

	// Errors.
	for _, tc := range []struct {
		name string
		call func() error
		code string
	}{
		{"name in use", func() error {
			_, err := c.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("web"),
				LaunchTemplateData: &types.RequestLaunchTemplateData{InstanceType: types.InstanceTypeT3Micro}})
			return err
		}, "InvalidLaunchTemplateName.AlreadyExistsException"},
		{"bad name", func() error {
			_, err := c.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("a b"),
				LaunchTemplateData: &types.RequestLaunchTemplateData{InstanceType: types.InstanceTypeT3Micro}})
			return err
		}, "InvalidLaunchTemplateName.MalformedException"},
		{"bad type", func() error {
			_, err := c.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("x-1"),
				LaunchTemplateData: &types.RequestLaunchTemplateData{InstanceType: "t9.huge"}})
			return err
		}, "InvalidParameterValue"},
		{"unknown id", func() error {
			_, err := c.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: aws.String("lt-0123456789abcdef0")})
			return err
		}, "InvalidLaunchTemplateId.NotFound"},
		{"unknown name", func() error {
			_, err := c.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateName: aws.String("nope")})
			return err
		}, "InvalidLaunchTemplateName.NotFoundException"},
		{"unknown version", func() error {
			_, err := c.ModifyLaunchTemplate(ctx, &ec2.ModifyLaunchTemplateInput{LaunchTemplateId: aws.String(id), DefaultVersion: aws.String("9")})
			return err
		}, "InvalidLaunchTemplateId.VersionNotFound"},
		{"run from an unknown template", func() error {
			_, err := c.RunInstances(ctx, &ec2.RunInstancesInput{MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
				LaunchTemplate: &types.LaunchTemplateSpecification{LaunchTemplateName: aws.String("nope")}})
			return err
		}, "InvalidLaunchTemplateName.NotFoundException"},
	} {
		t.Run(tc.name, func(t *testing.T) { wantAPIError(t, tc.call(), tc.code, 400) })
	}
	del, err := c.DeleteLaunchTemplateVersions(ctx, &ec2.DeleteLaunchTemplateVersionsInput{LaunchTemplateId: aws.String(id), Versions: []string{"1", "2"}})
	if err != nil || len(del.SuccessfullyDeletedLaunchTemplateVersions) != 1 || len(del.UnsuccessfullyDeletedLaunchTemplateVersions) != 1 ||
		del.UnsuccessfullyDeletedLaunchTemplateVersions[0].ResponseError.Code != "launchTemplateVersionIsDefault" {
		t.Fatalf("delete versions: %+v %v", del, err)
	}

	// All of it survives a restart; then the template is deleted.
	s.Stop(t)
	s = servertest.Start(t, dataDir)
	c = ec2.NewFromConfig(s.Config(t, nil))
	if d, err := c.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{LaunchTemplateNames: []string{"web"}}); err != nil ||
		len(d.LaunchTemplates) != 1 || aws.ToInt64(d.LaunchTemplates[0].DefaultVersionNumber) != 2 {
		t.Fatalf("after restart: %+v %v", d, err)
	}
	if _, err := c.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{LaunchTemplateIds: []string{id}})
	wantAPIError(t, err, "InvalidLaunchTemplateId.NotFound", 400)
}

// TestRunFromLaunchTemplate: RunInstances --launch-template takes the template's image, type,
// user data and tags, the request's own parameters win, and the instance is marked with the
// template's id and version.
func TestRunFromLaunchTemplate(t *testing.T) {
	needInstances(t)
	ctx := context.Background()
	s := servertest.Start(t, "")
	c := ec2.NewFromConfig(s.Config(t, nil))
	key := keyFile(t, c, "lt-key")
	lt, err := c.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("web"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(defaultImage(t, c)), InstanceType: types.InstanceTypeT3Micro,
			KeyName: aws.String("lt-key"), SecurityGroupIds: []string{sshGroup(t, c)},
			UserData:              aws.String(base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\necho from-template > /tmp/lt\n"))),
			DisableApiTermination: aws.Bool(true),
			TagSpecifications: []types.LaunchTemplateTagSpecificationRequest{{ResourceType: types.ResourceTypeInstance,
				Tags: []types.Tag{{Key: aws.String("app"), Value: aws.String("web")}}},
				{ResourceType: types.ResourceTypeVolume, Tags: []types.Tag{{Key: aws.String("app"), Value: aws.String("web-disk")}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	// The request's own parameters win, a false DisableApiTermination included.
	out, err := c.RunInstances(ctx, &ec2.RunInstancesInput{MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: types.InstanceTypeT3Nano,
		DisableApiTermination: aws.Bool(false),
		LaunchTemplate:        &types.LaunchTemplateSpecification{LaunchTemplateId: lt.LaunchTemplate.LaunchTemplateId, Version: aws.String("$Latest")}})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	removeAtEnd(t, s, id)
	waitRunning(t, c, id)
	inst := describeOne(t, c, id)
	if inst.InstanceType != types.InstanceTypeT3Nano || aws.ToString(inst.KeyName) != "lt-key" || tagValue(inst.Tags, "app") != "web" ||
		tagValue(inst.Tags, "aws:ec2launchtemplate:id") != aws.ToString(lt.LaunchTemplate.LaunchTemplateId) ||
		tagValue(inst.Tags, "aws:ec2launchtemplate:version") != "1" {
		t.Fatalf("instance: type %s key %s tags %+v", inst.InstanceType, aws.ToString(inst.KeyName), inst.Tags)
	}
	ip := aws.ToString(inst.PublicIpAddress)
	waitFor(t, 30e9, func() bool {
		out, err := sshRun(t, key, ip, "cat /tmp/lt")
		return err == nil && strings.TrimSpace(out) == "from-template"
	})
	if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	waitTerminated(t, c, id)
}
