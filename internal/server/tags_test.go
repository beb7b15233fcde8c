package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/nubis/nubis/internal/server/servertest"
)

func tagStrings(tags []types.TagDescription) string {
	var out []string
	for _, t := range tags {
		out = append(out, fmt.Sprintf("%s/%s/%s=%s", *t.ResourceId, t.ResourceType, *t.Key, *t.Value))
	}
	return strings.Join(out, " ")
}

func TestTags(t *testing.T) {
	s := servertest.Start(t, "")
	c := ec2Client(t, s)
	ctx := context.Background()
	var ids []string
	for _, n := range []string{"a", "b"} {
		out, err := c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String(n), KeyType: types.KeyTypeEd25519})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, *out.KeyPairId)
	}
	if ids[0] > ids[1] {
		ids[0], ids[1] = ids[1], ids[0]
	}
	a, b := ids[0], ids[1]
	tag := func(k, v string) types.Tag { return types.Tag{Key: aws.String(k), Value: aws.String(v)} }
	if _, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{a, b},
		Tags: []types.Tag{tag("env", "dev"), tag("owner", "ana"), tag("empty", "")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{b}, Tags: []types.Tag{tag("env", "prod")}}); err != nil {
		t.Fatal(err)
	}
	all, err := c.DescribeTags(ctx, &ec2.DescribeTagsInput{})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%[1]s/key-pair/empty= %[1]s/key-pair/env=dev %[1]s/key-pair/owner=ana %[2]s/key-pair/empty= %[2]s/key-pair/env=prod %[2]s/key-pair/owner=ana", a, b)
	if got := tagStrings(all.Tags); got != want {
		t.Fatalf("DescribeTags:\n got %s\nwant %s", got, want)
	}
	f := func(name string, values ...string) types.Filter {
		return types.Filter{Name: aws.String(name), Values: values}
	}
	for _, tc := range []struct {
		filters []types.Filter
		want    string
	}{
		{[]types.Filter{f("key", "env")}, fmt.Sprintf("%s/key-pair/env=dev %s/key-pair/env=prod", a, b)},
		{[]types.Filter{f("value", "p*")}, fmt.Sprintf("%s/key-pair/env=prod", b)},
		{[]types.Filter{f("resource-id", a), f("key", "o*")}, fmt.Sprintf("%s/key-pair/owner=ana", a)},
		{[]types.Filter{f("resource-type", "instance")}, ""},
		{[]types.Filter{f("tag:env", "prod"), f("key", "owner")}, fmt.Sprintf("%s/key-pair/owner=ana", b)},
	} {
		out, err := c.DescribeTags(ctx, &ec2.DescribeTagsInput{Filters: tc.filters})
		if err != nil {
			t.Fatal(err)
		}
		if got := tagStrings(out.Tags); got != tc.want {
			t.Errorf("DescribeTags(%v) = %s, want %s", tc.filters, got, tc.want)
		}
	}
	// Pagination: 6 tags, 5 per page, with the SDK's paginator.
	var pages []string
	p := ec2.NewDescribeTagsPaginator(c, &ec2.DescribeTagsInput{MaxResults: aws.Int32(5)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, tagStrings(out.Tags))
	}
	if len(pages) != 2 || strings.Join(pages, " ") != want {
		t.Fatalf("paged DescribeTags = %q, want 2 pages of %s", pages, want)
	}
	_, err = c.DescribeTags(ctx, &ec2.DescribeTagsInput{MaxResults: aws.Int32(4)})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	_, err = c.DescribeTags(ctx, &ec2.DescribeTagsInput{NextToken: aws.String("bogus!")})
	wantAPIError(t, err, "InvalidPaginationToken", 400)
	_, err = c.DescribeTags(ctx, &ec2.DescribeTagsInput{Filters: []types.Filter{f("colour", "red")}})
	wantAPIError(t, err, "InvalidParameterValue", 400)

	// DeleteTags: a value given deletes only on a match; an empty value only an empty tag; no value any.
	if _, err := c.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{a, b},
		Tags: []types.Tag{tag("env", "prod"), tag("empty", ""), {Key: aws.String("owner")}}}); err != nil {
		t.Fatal(err)
	}
	all, _ = c.DescribeTags(ctx, &ec2.DescribeTagsInput{})
	if got, want := tagStrings(all.Tags), fmt.Sprintf("%s/key-pair/env=dev", a); got != want {
		t.Fatalf("after DeleteTags: %s, want %s", got, want)
	}

	// Refusals change nothing, even for the resources of the request that exist.
	before := tagStrings(all.Tags)
	_, err = c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{a, "key-0123456789abcdef0"}, Tags: []types.Tag{tag("x", "y")}})
	wantAPIError(t, err, "InvalidKeyPair.NotFound", 400)
	_, err = c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{"bogus"}, Tags: []types.Tag{tag("x", "y")}})
	wantAPIError(t, err, "InvalidID", 400)
	_, err = c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{a}, Tags: []types.Tag{tag("aws:x", "y")}})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	_, err = c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{a}, Tags: []types.Tag{tag(strings.Repeat("k", 129), "y")}})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	_, err = c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{a}, Tags: []types.Tag{tag("x", "y")}, DryRun: aws.Bool(true)})
	wantAPIError(t, err, "DryRunOperation", 412)
	many := make([]types.Tag, 51)
	for i := range many {
		many[i] = tag(fmt.Sprint("t", i), "v")
	}
	_, err = c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{a}, Tags: many})
	wantAPIError(t, err, "TagLimitExceeded", 400)
	_, err = c.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{b, "key-0123456789abcdef0"}})
	wantAPIError(t, err, "InvalidKeyPair.NotFound", 400)
	all, _ = c.DescribeTags(ctx, &ec2.DescribeTagsInput{})
	if got := tagStrings(all.Tags); got != before {
		t.Fatalf("refused requests changed tags: %s, was %s", got, before)
	}
	r := s.Do(t, servertest.Raw{Body: "Action=CreateTags&Version=2016-11-15&ResourceId.1=" + a})
	if r.Status != 400 || !strings.Contains(r.Body, "<Code>MissingParameter</Code>") {
		t.Fatalf("CreateTags without tags: %d %s", r.Status, r.Body)
	}
	// Describing key pairs shows their tags.
	d, err := c.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyPairIds: []string{a}})
	if err != nil || len(d.KeyPairs[0].Tags) != 1 || *d.KeyPairs[0].Tags[0].Key != "env" {
		t.Fatalf("DescribeKeyPairs tags: %+v %v", d, err)
	}
}
