package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/nubis/nubis/internal/image"
	"github.com/nubis/nubis/internal/server"
	"github.com/nubis/nubis/internal/server/servertest"
)

func waitImage(t *testing.T, c *ec2.Client, id string) {
	t.Helper()
	w := ec2.NewImageAvailableWaiter(c, func(o *ec2.ImageAvailableWaiterOptions) { o.MinDelay, o.MaxDelay = 200*time.Millisecond, time.Second })
	if err := w.Wait(context.Background(), &ec2.DescribeImagesInput{ImageIds: []string{id}}, 2*time.Minute); err != nil {
		reason := ""
		if out, derr := c.DescribeImages(context.Background(), &ec2.DescribeImagesInput{ImageIds: []string{id}}); derr == nil && len(out.Images) == 1 && out.Images[0].StateReason != nil {
			reason = aws.ToString(out.Images[0].StateReason.Message)
		}
		t.Fatalf("wait image available: %v (%s)", err, reason)
	}
}

// TestImages makes an image of an instance, launches from it and from a copy of it, registers one
// from a root file system, and deregisters them: their layers go once nothing uses them.
func TestImages(t *testing.T) {
	needInstances(t)
	s := servertest.StartConfig(t, server.Config{DataDir: t.TempDir()})
	c := ec2Client(t, s)
	ctx := context.Background()
	ami := defaultImage(t, c)
	key := keyFile(t, c, "img")
	src := launchOne(t, s, c, &ec2.RunInstancesInput{ImageId: aws.String(ami), KeyName: aws.String("img")})
	mustSSH(t, key, *src.PublicIpAddress, "echo baked > /home/ec2-user/baked.txt; sudo rm /etc/issue")

	made, err := c.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: src.InstanceId, Name: aws.String("my image (1)"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeImage, Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("ml")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	waitImage(t, c, *made.ImageId)
	_, err = c.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: src.InstanceId, Name: aws.String("my image (1)")})
	wantAPIError(t, err, "InvalidAMIName.Duplicate", 400)
	// The instance was rebooted for the copy, and runs again.
	waitRunning(t, c, *src.InstanceId)

	copied, err := c.CopyImage(ctx, &ec2.CopyImageInput{SourceImageId: made.ImageId, SourceRegion: aws.String("us-east-1"), Name: aws.String("my copy")})
	if err != nil {
		t.Fatal(err)
	}
	own, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"},
		Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"my *"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(own.Images) != 2 {
		t.Fatalf("own images: %+v", own.Images)
	}
	tagged, _ := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("tag:team"), Values: []string{"ml"}}}})
	if len(tagged.Images) != 1 || *tagged.Images[0].ImageId != *made.ImageId {
		t.Fatalf("images tagged team=ml: %+v", tagged.Images)
	}

	// Launched from the copy: the file is there and the deleted one is gone (whiteouts work as
	// a lower layer).
	fromCopy := launchOne(t, s, c, &ec2.RunInstancesInput{ImageId: copied.ImageId, KeyName: aws.String("img")})
	if out := mustSSH(t, key, *fromCopy.PublicIpAddress, "cat baked.txt; ls /etc/issue 2>&1 | grep -c 'No such'"); out != "baked\n1\n" {
		t.Fatalf("instance of the copy: %q", out)
	}
	// Deregistering the image leaves the copy and the instances working.
	if _, err := c.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: made.ImageId}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{*made.ImageId}})
	wantAPIError(t, err, "InvalidAMIID.NotFound", 400)
	_, err = c.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(ami)})
	wantAPIError(t, err, "AuthFailure", 0)

	// Registered from a root file system on the host (here: the default image's).
	root := (&image.Builder{}).Path(image.EC2Default)
	reg, err := c.RegisterImage(ctx, &ec2.RegisterImageInput{Name: aws.String("registered"), ImageLocation: aws.String(root)})
	if err != nil {
		t.Fatal(err)
	}
	fromReg := launchOne(t, s, c, &ec2.RunInstancesInput{ImageId: reg.ImageId, KeyName: aws.String("img")})
	if out := mustSSH(t, key, *fromReg.PublicIpAddress, "python3 -c 'print(6*7)'"); out != "42\n" {
		t.Fatalf("instance of the registered image: %q", out)
	}
	_, err = c.RegisterImage(ctx, &ec2.RegisterImageInput{Name: aws.String("nothing"), ImageLocation: aws.String("/nonexistent.tar")})
	wantAPIError(t, err, "InvalidParameterValue", 400)

	// Everything goes: the layers with the last user.
	for _, id := range []string{*copied.ImageId, *reg.ImageId} {
		if _, err := c.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(id)}); err != nil {
			t.Fatal(err)
		}
	}
	ids := []string{*src.InstanceId, *fromCopy.InstanceId, *fromReg.InstanceId}
	if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids}); err != nil {
		t.Fatal(err)
	}
	waitTerminated(t, c, ids...)
	layers, _ := os.ReadDir(filepath.Join(s.DataDir, "instances", "images"))
	var names []string
	for _, l := range layers {
		names = append(names, l.Name())
	}
	// Layers younger than a minute are kept (they may be in the making); these are all recorded
	// as unused, which the next collection after that minute deletes. Check the records instead.
	if out, _ := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}}); len(out.Images) != 0 {
		t.Fatalf("images left: %+v (layers %s)", out.Images, strings.Join(names, " "))
	}
}
