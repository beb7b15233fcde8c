package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/nubis/nubis/internal/server"
	"github.com/nubis/nubis/internal/server/servertest"
)

// TestVPCs creates a VPC with a subnet, launches an instance in it and one in the default VPC: the
// host reaches both, they cannot reach each other; then everything is deleted in the order AWS
// requires (DependencyViolation otherwise).
func TestVPCs(t *testing.T) {
	needInstances(t)
	s := servertest.StartConfig(t, server.Config{DataDir: t.TempDir()})
	c := ec2Client(t, s)
	ctx := context.Background()
	ami := defaultImage(t, c)
	key := keyFile(t, c, "vpc")

	_, err := c.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.0.0.0/8")})
	wantAPIError(t, err, "InvalidVpc.Range", 400)
	vpc, err := c.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.20.0.0/16"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeVpc, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("lab")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	vpcID := *vpc.Vpc.VpcId
	_, err = c.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: aws.String(vpcID), CidrBlock: aws.String("10.30.1.0/24")})
	wantAPIError(t, err, "InvalidSubnet.Range", 400)
	sub, err := c.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: aws.String(vpcID), CidrBlock: aws.String("10.20.1.0/24"),
		AvailabilityZone: aws.String("us-east-1b")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: aws.String(vpcID), CidrBlock: aws.String("10.20.1.128/25")})
	wantAPIError(t, err, "InvalidSubnet.Conflict", 400)
	subnetID := *sub.Subnet.SubnetId
	got, err := c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: []types.Filter{{Name: aws.String("tag:Name"), Values: []string{"lab"}}}})
	if err != nil || len(got.Vpcs) != 1 || *got.Vpcs[0].CidrBlock != "10.20.0.0/16" || *got.Vpcs[0].IsDefault {
		t.Fatalf("describe the new VPC: %v %+v", err, got)
	}

	// A group in the new VPC that lets SSH in; the default VPC's groups do not belong to it.
	g, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("lab-ssh"), Description: aws.String("ssh"), VpcId: aws.String(vpcID)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: g.GroupId, IpPermissions: tcpPerm(22, "0.0.0.0/0")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		SubnetId: aws.String(subnetID), SecurityGroupIds: []string{sshGroup(t, c)}})
	wantAPIError(t, err, "InvalidParameter", 400)

	inLab := launchOne(t, s, c, &ec2.RunInstancesInput{ImageId: aws.String(ami), KeyName: aws.String("vpc"),
		SubnetId: aws.String(subnetID), SecurityGroupIds: []string{*g.GroupId}})
	inDefault := launchOne(t, s, c, &ec2.RunInstancesInput{ImageId: aws.String(ami), KeyName: aws.String("vpc")})
	labIP, defIP := *inLab.PrivateIpAddress, *inDefault.PrivateIpAddress
	if !strings.HasPrefix(labIP, "10.20.1.") || *inLab.Placement.AvailabilityZone != "us-east-1b" || *inLab.VpcId != vpcID {
		t.Fatalf("instance in the new subnet: %s in %s, %s", labIP, *inLab.Placement.AvailabilityZone, *inLab.VpcId)
	}
	if out := mustSSH(t, key, labIP, "hostname"); out != "ip-"+strings.ReplaceAll(labIP, ".", "-")+"\n" {
		t.Fatalf("hostname: %q", out)
	}
	// The two VPCs do not reach each other, either way.
	for _, pair := range [][2]string{{labIP, defIP}, {defIP, labIP}} {
		if out, err := sshRun(t, key, pair[0], "timeout 3 bash -c 'echo > /dev/tcp/"+pair[1]+"/22' && echo reached"); err == nil && strings.Contains(out, "reached") {
			t.Fatalf("%s reached %s across VPCs", pair[0], pair[1])
		}
	}
	nis, err := c.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{Filters: []types.Filter{
		{Name: aws.String("attachment.instance-id"), Values: []string{*inLab.InstanceId}}}})
	if err != nil || len(nis.NetworkInterfaces) != 1 || *nis.NetworkInterfaces[0].PrivateIpAddress != labIP ||
		*nis.NetworkInterfaces[0].SubnetId != subnetID {
		t.Fatalf("network interfaces: %v %+v", err, nis)
	}

	// Deleting in the wrong order is refused; in the right order it works.
	_, err = c.DeleteSubnet(ctx, &ec2.DeleteSubnetInput{SubnetId: aws.String(subnetID)})
	wantAPIError(t, err, "DependencyViolation", 400)
	_, err = c.DeleteVpc(ctx, &ec2.DeleteVpcInput{VpcId: aws.String(vpcID)})
	wantAPIError(t, err, "DependencyViolation", 400)
	ids := []string{*inLab.InstanceId, *inDefault.InstanceId}
	if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids}); err != nil {
		t.Fatal(err)
	}
	waitTerminated(t, c, ids...)
	for _, op := range []func() error{
		func() error {
			_, err := c.DeleteSubnet(ctx, &ec2.DeleteSubnetInput{SubnetId: aws.String(subnetID)})
			return err
		},
		func() error {
			_, err := c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: g.GroupId})
			return err
		},
		func() error { _, err := c.DeleteVpc(ctx, &ec2.DeleteVpcInput{VpcId: aws.String(vpcID)}); return err },
	} {
		if err := op(); err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{VpcIds: []string{vpcID}})
	wantAPIError(t, err, "InvalidVpcID.NotFound", 400)
}
