package server_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/nubis/nubis/internal/server"
	"github.com/nubis/nubis/internal/server/servertest"
)

// TestDescribeInstances launches six instances in one call and reads them back with filters and
// pages, as the aws CLI's paginator does; then ClientToken makes a retried RunInstances idempotent.
func TestDescribeInstances(t *testing.T) {
	needInstances(t)
	s := servertest.StartConfig(t, server.Config{DataDir: t.TempDir(), TerminatedTTL: 2 * time.Second})
	c := ec2Client(t, s)
	ctx := context.Background()
	ami := defaultImage(t, c)
	run := &ec2.RunInstancesInput{ImageId: aws.String(ami), InstanceType: types.InstanceTypeT2Nano,
		MinCount: aws.Int32(6), MaxCount: aws.Int32(6), ClientToken: aws.String("launch-6"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance,
			Tags: []types.Tag{{Key: aws.String("fleet"), Value: aws.String("six")}}}}}
	out, err := c.RunInstances(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, in := range out.Instances {
		ids = append(ids, *in.InstanceId)
		removeAtEnd(t, s, *in.InstanceId)
	}
	again, err := c.RunInstances(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	if *again.ReservationId != *out.ReservationId || len(again.Instances) != 6 {
		t.Fatalf("a retry with the same ClientToken launched again: %s vs %s", *again.ReservationId, *out.ReservationId)
	}
	waitRunning(t, c, ids...)

	var seen []string
	p := ec2.NewDescribeInstancesPaginator(c, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5),
		Filters: []types.Filter{{Name: aws.String("tag:fleet"), Values: []string{"six"}},
			{Name: aws.String("instance-state-name"), Values: []string{"running"}}}})
	pages := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, r := range page.Reservations {
			for _, in := range r.Instances {
				seen = append(seen, *in.InstanceId)
			}
		}
	}
	slices.Sort(seen)
	want := slices.Sorted(slices.Values(ids))
	if pages != 2 || !slices.Equal(seen, want) {
		t.Fatalf("%d pages with %v, want 2 pages with %v", pages, seen, want)
	}
	one := describeOne(t, c, ids[3])
	for name, value := range map[string]string{"private-ip-address": *one.PrivateIpAddress, "ip-address": *one.PublicIpAddress,
		"instance-id": ids[3], "instance-type": "t2.nano", "image-id": ami} {
		got, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String(name), Values: []string{value}}}})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range got.Reservations {
			n += len(r.Instances)
		}
		if name == "private-ip-address" || name == "ip-address" || name == "instance-id" {
			if n != 1 {
				t.Errorf("filter %s=%s: %d instances", name, value, n)
			}
		} else if n != 6 {
			t.Errorf("filter %s=%s: %d instances", name, value, n)
		}
	}
	status, err := c.DescribeInstanceStatus(ctx, &ec2.DescribeInstanceStatusInput{InstanceIds: ids})
	if err != nil {
		t.Fatal(err)
	}
	if len(status.InstanceStatuses) != 6 || status.InstanceStatuses[0].InstanceStatus.Status != types.SummaryStatusOk {
		t.Fatalf("status: %+v", status.InstanceStatuses)
	}
	// Attributes: the type changes only while stopped; termination protection refuses terminate.
	_, err = c.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(ids[0]),
		InstanceType: &types.AttributeValue{Value: aws.String("t2.micro")}})
	wantAPIError(t, err, "IncorrectInstanceState", 400)
	if _, err := c.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(ids[0]),
		DisableApiTermination: &types.AttributeBooleanValue{Value: aws.Bool(true)}}); err != nil {
		t.Fatal(err)
	}
	_, err = c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids})
	wantAPIError(t, err, "OperationNotPermitted", 400)
	attr, err := c.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: aws.String(ids[0]),
		Attribute: types.InstanceAttributeNameDisableApiTermination})
	if err != nil || !*attr.DisableApiTermination.Value {
		t.Fatalf("disableApiTermination: %v %+v", err, attr)
	}
	if _, err := c.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(ids[0]),
		DisableApiTermination: &types.AttributeBooleanValue{Value: aws.Bool(false)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: ids[:1], Force: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, c, ids[0])
	if _, err := c.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(ids[0]),
		InstanceType: &types.AttributeValue{Value: aws.String("t2.micro")}}); err != nil {
		t.Fatal(err)
	}
	if got := describeOne(t, c, ids[0]).InstanceType; got != types.InstanceTypeT2Micro {
		t.Fatalf("type after modify: %s", got)
	}
	if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids}); err != nil {
		t.Fatal(err)
	}
	waitTerminated(t, c, ids...)
	// Terminated instances stay visible for a while (here 2 s), then are gone.
	time.Sleep(2500 * time.Millisecond)
	_, err = c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids[:1]})
	wantAPIError(t, err, "InvalidInstanceID.NotFound", 400)
	if all, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{}); err != nil || len(all.Reservations) != 0 {
		t.Fatalf("after the terminated instances expired: %v %+v", err, all)
	}
}
