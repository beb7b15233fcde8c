package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/nubis/nubis/internal/server"
	"github.com/nubis/nubis/internal/server/servertest"
)

func waitVolume(t *testing.T, c *ec2.Client, id string, state types.VolumeState) {
	t.Helper()
	var last string
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := c.DescribeVolumes(context.Background(), &ec2.DescribeVolumesInput{VolumeIds: []string{id}})
		if err == nil && len(out.Volumes) == 1 && out.Volumes[0].State == state {
			return
		}
		last = fmt.Sprint(err, len(out.Volumes))
		if err == nil && len(out.Volumes) == 1 {
			last = string(out.Volumes[0].State)
		}
		if time.Now().After(deadline) {
			t.Fatalf("volume %s not %s within 30 s: %s", id, state, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestVolumes: a volume is created, attached (it appears at /mnt/sdf as an ext4 file system of
// its size), written, detached, attached to another instance with the file still there; it
// survives the instance's stop and start and a restart of nubis; a snapshot restores into a new
// larger volume with the same file; a volume attaches only in its own zone.
func TestVolumes(t *testing.T) {
	needInstances(t)
	dataDir := t.TempDir()
	s := servertest.StartConfig(t, server.Config{DataDir: dataDir})
	c := ec2Client(t, s)
	ctx := context.Background()
	ami := defaultImage(t, c)
	key := keyFile(t, c, "vol")
	a := launchOne(t, s, c, &ec2.RunInstancesInput{ImageId: aws.String(ami), KeyName: aws.String("vol")})
	b := launchOne(t, s, c, &ec2.RunInstancesInput{ImageId: aws.String(ami), KeyName: aws.String("vol")})
	far := launchOne(t, s, c, &ec2.RunInstancesInput{ImageId: aws.String(ami), KeyName: aws.String("vol"),
		Placement: &types.Placement{AvailabilityZone: aws.String("us-east-1c")}})

	// The root volume is an EBS volume too: listed, of its size (8 GiB), enforced.
	roots, err := c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []types.Filter{
		{Name: aws.String("attachment.instance-id"), Values: []string{*a.InstanceId}}}})
	if err != nil || len(roots.Volumes) != 1 || *roots.Volumes[0].Size != 8 || *roots.Volumes[0].Attachments[0].Device != "/dev/xvda" ||
		!*roots.Volumes[0].Attachments[0].DeleteOnTermination {
		t.Fatalf("root volume: %v %+v", err, roots.Volumes)
	}
	if out := mustSSH(t, key, *a.PublicIpAddress, "df -BG --output=size / | tail -1"); strings.TrimSpace(out) != "8G" {
		t.Fatalf("root file system size: %q", out)
	}
	_, err = c.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: roots.Volumes[0].VolumeId})
	wantAPIError(t, err, "OperationNotPermitted", 400)

	_, err = c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(0)})
	wantAPIError(t, err, "MissingParameter", 400)
	_, err = c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(20000)})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	vol, err := c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1),
		VolumeType: types.VolumeTypeGp3})
	if err != nil {
		t.Fatal(err)
	}
	id := *vol.VolumeId
	waitVolume(t, c, id, types.VolumeStateAvailable)
	if _, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("data")}}}); err != nil {
		t.Fatal(err)
	}
	if got, err := c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []types.Filter{{Name: aws.String("tag:Name"), Values: []string{"data"}}}}); err != nil ||
		len(got.Volumes) != 1 || *got.Volumes[0].VolumeId != id {
		t.Fatalf("volumes tagged Name=data: %v %+v", err, got)
	}
	_, err = c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(id), InstanceId: far.InstanceId, Device: aws.String("/dev/sdf")})
	wantAPIError(t, err, "InvalidVolume.ZoneMismatch", 400)

	attach := func(inst types.Instance) {
		t.Helper()
		if _, err := c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(id), InstanceId: inst.InstanceId, Device: aws.String("/dev/sdf")}); err != nil {
			t.Fatal(err)
		}
		waitVolume(t, c, id, types.VolumeStateInUse)
	}
	attach(a)
	ipA, ipB := *a.PublicIpAddress, *b.PublicIpAddress
	// The volume is a file system of its size, writable by root.
	out := mustSSH(t, key, ipA, "df -BM --output=size,target /mnt/sdf | tail -1; echo kept | sudo tee /mnt/sdf/data.txt")
	if !strings.Contains(out, "/mnt/sdf") || !strings.Contains(out, "kept") {
		t.Fatalf("the volume in a:\n%s", out)
	}
	if f := strings.Fields(out)[0]; f < "900M" && len(f) <= 4 {
		t.Fatalf("size of a 1 GiB volume: %s", f)
	}
	// Its size is enforced.
	out, _ = sshRun(t, key, ipA, "sudo dd if=/dev/zero of=/mnt/sdf/fill bs=1M count=1100 2>&1; sudo rm -f /mnt/sdf/fill")
	if !strings.Contains(out, "No space left on device") {
		t.Fatalf("writing 1100 MiB into a 1 GiB volume:\n%s", out)
	}
	_, err = c.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(id)})
	wantAPIError(t, err, "VolumeInUse", 400)
	_, err = c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(id), InstanceId: b.InstanceId, Device: aws.String("/dev/sdg")})
	wantAPIError(t, err, "VolumeInUse", 400)

	// It survives the instance's stop and start, and a restart of nubis.
	if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{*a.InstanceId}}); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, c, *a.InstanceId)
	s.Stop(t)
	s = servertest.StartConfig(t, server.Config{DataDir: dataDir})
	c = ec2Client(t, s)
	if _, err := c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{*a.InstanceId}}); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, c, *a.InstanceId)
	if out := mustSSH(t, key, ipA, "cat /mnt/sdf/data.txt"); out != "kept\n" {
		t.Fatalf("after stop, restart and start: %q", out)
	}

	// Detached from a, attached to b: the file is there.
	if _, err := c.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	waitVolume(t, c, id, types.VolumeStateAvailable)
	if out, _ := sshRun(t, key, ipA, "ls /mnt/sdf/data.txt 2>&1"); !strings.Contains(out, "No such file") {
		t.Fatalf("a still sees the detached volume: %s", out)
	}
	attach(b)
	if out := mustSSH(t, key, ipB, "cat /mnt/sdf/data.txt"); out != "kept\n" {
		t.Fatalf("in b: %q", out)
	}

	// A snapshot, restored into a new, larger volume.
	snap, err := c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(id), Description: aws.String("backup")})
	if err != nil {
		t.Fatal(err)
	}
	w := ec2.NewSnapshotCompletedWaiter(c, func(o *ec2.SnapshotCompletedWaiterOptions) { o.MinDelay = 200 * time.Millisecond })
	if err := w.Wait(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{*snap.SnapshotId}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), SnapshotId: snap.SnapshotId, Size: aws.Int32(1),
		VolumeType: types.VolumeTypeSt1})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	restored, err := c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), SnapshotId: snap.SnapshotId, Size: aws.Int32(2)})
	if err != nil {
		t.Fatal(err)
	}
	waitVolume(t, c, *restored.VolumeId, types.VolumeStateAvailable)
	if _, err := c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: restored.VolumeId, InstanceId: a.InstanceId, Device: aws.String("/dev/sdh")}); err != nil {
		t.Fatal(err)
	}
	if out := mustSSH(t, key, ipA, "cat /mnt/sdh/data.txt; df -BG --output=size /mnt/sdh | tail -1"); !strings.HasPrefix(out, "kept\n") || !strings.Contains(out, "2G") {
		t.Fatalf("the restored volume: %q", out)
	}
	// Grow while attached: the file system grows with it.
	_, err = c.ModifyVolume(ctx, &ec2.ModifyVolumeInput{VolumeId: restored.VolumeId, Size: aws.Int32(1)})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	// (Online growth needs CAP_SYS_RESOURCE; without it the file system grows before the next
	// mount, here after a stop and start.)
	mod, err := c.ModifyVolume(ctx, &ec2.ModifyVolumeInput{VolumeId: aws.String(id), Size: aws.Int32(3)})
	if err != nil {
		t.Fatal(err)
	}
	if mod.VolumeModification.ModificationState != types.VolumeModificationStateCompleted {
		if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{*b.InstanceId}}); err != nil {
			t.Fatal(err)
		}
		waitStopped(t, c, *b.InstanceId)
		if _, err := c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{*b.InstanceId}}); err != nil {
			t.Fatal(err)
		}
		waitRunning(t, c, *b.InstanceId)
	}
	if out := mustSSH(t, key, ipB, "df -BG --output=size /mnt/sdf | tail -1; cat /mnt/sdf/data.txt"); !strings.Contains(out, "3G") || !strings.Contains(out, "kept") {
		t.Fatalf("after growing to 3 GiB: %q", out)
	}

	ids := []string{*a.InstanceId, *b.InstanceId, *far.InstanceId}
	if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids}); err != nil {
		t.Fatal(err)
	}
	waitTerminated(t, c, ids...)
	// Root volumes go with their instances; attached volumes outlive them (DeleteOnTermination is
	// false for them).
	if _, err := c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{*roots.Volumes[0].VolumeId}}); err == nil {
		t.Fatal("the root volume of a terminated instance is still there")
	}
	for _, v := range []string{id, *restored.VolumeId} {
		waitVolume(t, c, v, types.VolumeStateAvailable)
		if _, err := c.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(v)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: snap.SnapshotId}); err != nil {
		t.Fatal(err)
	}
}
