package server_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/nubis/nubis/internal/server"
	"github.com/nubis/nubis/internal/server/servertest"
)

// TestDefaultVPC checks the default VPC as AWS creates it: 172.31.0.0/16, one default /20 subnet
// per Availability Zone, and the default security group.
func TestDefaultVPC(t *testing.T) {
	s := servertest.Start(t, "")
	c := ec2Client(t, s)
	ctx := context.Background()
	vpcs, err := c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: []types.Filter{{Name: aws.String("is-default"), Values: []string{"true"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(vpcs.Vpcs) != 1 || *vpcs.Vpcs[0].CidrBlock != "172.31.0.0/16" || !*vpcs.Vpcs[0].IsDefault {
		t.Fatalf("default VPC: %+v", vpcs.Vpcs)
	}
	vpcID := *vpcs.Vpcs[0].VpcId
	subnets, err := c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []types.Filter{{Name: aws.String("vpc-id"), Values: []string{vpcID}}}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"us-east-1a": "172.31.0.0/20", "us-east-1b": "172.31.16.0/20", "us-east-1c": "172.31.32.0/20"}
	if len(subnets.Subnets) != len(want) {
		t.Fatalf("subnets: %+v", subnets.Subnets)
	}
	for _, sn := range subnets.Subnets {
		if want[*sn.AvailabilityZone] != *sn.CidrBlock || !*sn.DefaultForAz || *sn.AvailableIpAddressCount != 4091 {
			t.Fatalf("subnet %s in %s: %s, %d free", *sn.SubnetId, *sn.AvailabilityZone, *sn.CidrBlock, *sn.AvailableIpAddressCount)
		}
	}
	groups, err := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupNames: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(groups.SecurityGroups) != 1 || *groups.SecurityGroups[0].VpcId != vpcID {
		t.Fatalf("default group: %+v", groups.SecurityGroups)
	}
	_, err = c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{"subnet-0123456789abcdef0"}})
	wantAPIError(t, err, "InvalidSubnetID.NotFound", 400)
	_, err = c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{VpcIds: []string{"vpc-0123456789abcdef0"}})
	wantAPIError(t, err, "InvalidVpcID.NotFound", 400)
	_, err = c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{"sg-0123456789abcdef0"}})
	wantAPIError(t, err, "InvalidGroup.NotFound", 400)
}

// TestZonesSetting: the zones are a setting; the default VPC has a /20 subnet in each.
func TestZonesSetting(t *testing.T) {
	s := servertest.StartConfig(t, server.Config{Zones: []string{"us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"}})
	c := ec2Client(t, s)
	ctx := context.Background()
	zs, err := c.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{})
	if err != nil || len(zs.AvailabilityZones) != 4 || *zs.AvailabilityZones[3].ZoneName != "us-east-1d" {
		t.Fatalf("zones: %v %+v", err, zs)
	}
	sn, err := c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []types.Filter{{Name: aws.String("availability-zone"), Values: []string{"us-east-1d"}}}})
	if err != nil || len(sn.Subnets) != 1 || *sn.Subnets[0].CidrBlock != "172.31.48.0/20" {
		t.Fatalf("subnet of us-east-1d: %v %+v", err, sn)
	}
	if _, err := server.New(ctx, server.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Zones: []string{"eu-west-1a"}}); err == nil {
		t.Fatal("a zone of another region was accepted")
	}
}
