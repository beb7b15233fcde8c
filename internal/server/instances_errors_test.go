package server_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/nubis/nubis/internal/server"
	"github.com/nubis/nubis/internal/server/servertest"
)

// TestRunInstancesErrors checks that bad input gets EC2's error and creates nothing. Validation
// happens before anything runs, so this test needs no root.
func TestRunInstancesErrors(t *testing.T) {
	s := servertest.StartConfig(t, server.Config{DataDir: t.TempDir(), MaxInstances: 3})
	c := ec2Client(t, s)
	ctx := context.Background()
	ami := defaultImage(t, c)
	if _, err := c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("k")}); err != nil {
		t.Fatal(err)
	}
	base := func(mod func(*ec2.RunInstancesInput)) *ec2.RunInstancesInput {
		in := &ec2.RunInstancesInput{ImageId: aws.String(ami), InstanceType: types.InstanceTypeT2Micro,
			KeyName: aws.String("k"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}
		mod(in)
		return in
	}
	for _, tc := range []struct {
		name string
		in   *ec2.RunInstancesInput
		code string
	}{
		{"unknown image", base(func(in *ec2.RunInstancesInput) { in.ImageId = aws.String("ami-0123456789abcdef0") }), "InvalidAMIID.NotFound"},
		{"malformed image", base(func(in *ec2.RunInstancesInput) { in.ImageId = aws.String("image-1") }), "InvalidAMIID.Malformed"},
		{"unknown type", base(func(in *ec2.RunInstancesInput) { in.InstanceType = "t2.galactic" }), "InvalidParameterValue"},
		{"type larger than the host", base(func(in *ec2.RunInstancesInput) { in.InstanceType = types.InstanceTypeM52xlarge }), "InsufficientInstanceCapacity"},
		{"unknown key", base(func(in *ec2.RunInstancesInput) { in.KeyName = aws.String("nope") }), "InvalidKeyPair.NotFound"},
		{"unknown subnet", base(func(in *ec2.RunInstancesInput) { in.SubnetId = aws.String("subnet-0123456789abcdef0") }), "InvalidSubnetID.NotFound"},
		{"unknown security group", base(func(in *ec2.RunInstancesInput) { in.SecurityGroupIds = []string{"sg-0123456789abcdef0"} }), "InvalidGroup.NotFound"},
		{"over the instance limit", base(func(in *ec2.RunInstancesInput) { in.MinCount, in.MaxCount = aws.Int32(4), aws.Int32(4) }), "InstanceLimitExceeded"},
		{"min over max", base(func(in *ec2.RunInstancesInput) { in.MinCount, in.MaxCount = aws.Int32(2), aws.Int32(1) }), "InvalidParameterValue"},
		{"user data over 16 KB", base(func(in *ec2.RunInstancesInput) {
			in.UserData = aws.String(b64(strings.Repeat("x", 16*1024+1)))
		}), "InvalidParameterValue"},
		{"root volume smaller than the image", base(func(in *ec2.RunInstancesInput) {
			in.BlockDeviceMappings = []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{VolumeSize: aws.Int32(4)}}}
		}), "InvalidBlockDeviceMapping"},
		{"bad metadata option", base(func(in *ec2.RunInstancesInput) {
			in.MetadataOptions = &types.InstanceMetadataOptionsRequest{HttpTokens: "sometimes"}
		}), "InvalidParameterValue"},
		{"bad shutdown behavior", base(func(in *ec2.RunInstancesInput) { in.InstanceInitiatedShutdownBehavior = "hibernate" }), "InvalidParameterValue"},
		{"dry run", base(func(in *ec2.RunInstancesInput) { in.DryRun = aws.Bool(true) }), "DryRunOperation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.RunInstances(ctx, tc.in)
			status := 400
			if tc.code == "DryRunOperation" {
				status = 412
			}
			wantAPIError(t, err, tc.code, status)
		})
	}
	out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Reservations) != 0 {
		t.Fatalf("refused requests created instances: %+v", out.Reservations)
	}
	for _, op := range []func() error{
		func() error {
			_, err := c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}})
			return err
		},
		func() error {
			_, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}})
			return err
		},
		func() error {
			_, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}})
			return err
		},
		func() error {
			_, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}})
			return err
		},
		func() error {
			_, err := c.GetConsoleOutput(ctx, &ec2.GetConsoleOutputInput{InstanceId: aws.String("i-0123456789abcdef0")})
			return err
		},
	} {
		if err := op(); err != nil && strings.Contains(err.Error(), "Unsupported") {
			continue // a host that cannot run instances says so first
		} else {
			wantAPIError(t, err, "InvalidInstanceID.NotFound", 400)
		}
	}
	_, err = c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"instance-1"}})
	wantAPIError(t, err, "InvalidInstanceID.Malformed", 400)
	_, err = c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{"ami-0123456789abcdef0"}})
	wantAPIError(t, err, "InvalidAMIID.NotFound", 400)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
