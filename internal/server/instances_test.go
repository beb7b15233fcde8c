package server_test

import (
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/nubis/nubis/internal/network"
	"github.com/nubis/nubis/internal/server"
	"github.com/nubis/nubis/internal/server/servertest"
	"github.com/nubis/nubis/internal/testenv"
)

func defaultImage(t *testing.T, c *ec2.Client) string {
	t.Helper()
	out, err := c.DescribeImages(context.Background(), &ec2.DescribeImagesInput{
		Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"debian-12-amd64-nubis"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Images) != 1 {
		t.Fatalf("default image: got %d images", len(out.Images))
	}
	return *out.Images[0].ImageId
}

// needInstances skips (or fails under NUBIS_REQUIRE_ALL=1) unless this host can run instances.
func needInstances(t *testing.T) {
	t.Helper()
	testenv.Need(t, os.Geteuid() == 0, "instances need root")
	_, err := exec.LookPath("runc")
	testenv.Need(t, err == nil, "instances need runc (apt-get install runc)")
	_, err = exec.LookPath("ssh")
	testenv.Need(t, err == nil, "the instance tests need ssh (apt-get install openssh-client)")
	testenv.LockInstances(t)
}

// keyFile creates a key pair and saves its private key as ssh wants it (0400).
func keyFile(t *testing.T, c *ec2.Client, name string) string {
	t.Helper()
	out, err := c.CreateKeyPair(context.Background(), &ec2.CreateKeyPairInput{KeyName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name+".pem")
	if err := os.WriteFile(path, []byte(*out.KeyMaterial), 0o400); err != nil {
		t.Fatal(err)
	}
	return path
}

// sshGroup creates (once per server) a security group that lets SSH in from anywhere, as the
// console's launch wizard makes one: without it the default group refuses the host.
func sshGroup(t *testing.T, c *ec2.Client) string {
	t.Helper()
	ctx := context.Background()
	got, err := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{
		Filters: []types.Filter{{Name: aws.String("group-name"), Values: []string{"launch-wizard-1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.SecurityGroups) == 1 {
		return *got.SecurityGroups[0].GroupId
	}
	g, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("launch-wizard-1"),
		Description: aws.String("SSH from anywhere")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: g.GroupId,
		IpPermissions: []types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22),
			IpRanges: []types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	return *g.GroupId
}

func sshRun(t *testing.T, key, ip, command string) (string, error) {
	return testenv.SSH(key, ip, command)
}

func mustSSH(t *testing.T, key, ip, command string) string {
	t.Helper()
	return testenv.MustSSH(t, key, ip, command)
}

func describeOne(t *testing.T, c *ec2.Client, id string) types.Instance {
	t.Helper()
	out, err := c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Reservations) != 1 || len(out.Reservations[0].Instances) != 1 {
		t.Fatalf("describe %s: %+v", id, out.Reservations)
	}
	return out.Reservations[0].Instances[0]
}

func waitRunning(t *testing.T, c *ec2.Client, ids ...string) {
	t.Helper()
	w := ec2.NewInstanceRunningWaiter(c, func(o *ec2.InstanceRunningWaiterOptions) { o.MinDelay, o.MaxDelay = 200*time.Millisecond, time.Second })
	if err := w.Wait(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: ids}, 5*time.Minute); err != nil {
		t.Fatalf("wait running: %v", err)
	}
}

func waitStopped(t *testing.T, c *ec2.Client, ids ...string) {
	t.Helper()
	w := ec2.NewInstanceStoppedWaiter(c, func(o *ec2.InstanceStoppedWaiterOptions) { o.MinDelay, o.MaxDelay = 200*time.Millisecond, time.Second })
	if err := w.Wait(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: ids}, 2*time.Minute); err != nil {
		t.Fatalf("wait stopped: %v", err)
	}
}

func waitTerminated(t *testing.T, c *ec2.Client, ids ...string) {
	t.Helper()
	w := ec2.NewInstanceTerminatedWaiter(c, func(o *ec2.InstanceTerminatedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 200*time.Millisecond, time.Second
	})
	if err := w.Wait(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: ids}, 2*time.Minute); err != nil {
		t.Fatalf("wait terminated: %v", err)
	}
}

// TestInstanceLifecycle launches an instance, reaches it with ssh, checks user data and the
// metadata service, stops and starts it (its disk stays) and terminates it (its disk goes).
func TestInstanceLifecycle(t *testing.T) {
	needInstances(t)
	s := servertest.StartConfig(t, server.Config{DataDir: t.TempDir()})
	c := ec2Client(t, s)
	ctx := context.Background()
	ami := defaultImage(t, c)
	key := keyFile(t, c, "lifecycle")
	userData := "#!/bin/bash\necho ran >> /var/tmp/user-data-runs\necho hello from user data\n"
	run, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), InstanceType: types.InstanceTypeT2Micro,
		KeyName: aws.String("lifecycle"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), SecurityGroupIds: []string{sshGroup(t, c)},
		UserData: aws.String(base64.StdEncoding.EncodeToString([]byte(userData))),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance,
			Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("web")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	id := *run.Instances[0].InstanceId
	removeAtEnd(t, s, id)
	if st := run.Instances[0].State.Name; st != types.InstanceStateNamePending {
		t.Fatalf("state after RunInstances: %s", st)
	}
	waitRunning(t, c, id)
	inst := describeOne(t, c, id)
	ip := *inst.PublicIpAddress
	if *inst.PrivateIpAddress != ip || !strings.HasPrefix(ip, "172.31.") {
		t.Fatalf("addresses: private %s public %s", *inst.PrivateIpAddress, ip)
	}

	if out := mustSSH(t, key, ip, "python3 --version; hostname; id -un; sudo -n true && echo sudo-ok"); !strings.Contains(out, "Python 3.11") ||
		!strings.Contains(out, "ip-"+strings.ReplaceAll(ip, ".", "-")) || !strings.Contains(out, "ec2-user") || !strings.Contains(out, "sudo-ok") {
		t.Fatalf("ssh output:\n%s", out)
	}
	// User data ran once, at first boot, with its output in cloud-init's log.
	waitFor(t, 30*time.Second, func() bool {
		out, _ := sshRun(t, key, ip, "cat /var/tmp/user-data-runs")
		return strings.TrimSpace(out) == "ran"
	})
	if out := mustSSH(t, key, ip, "cat /var/log/cloud-init-output.log"); !strings.Contains(out, "hello from user data") {
		t.Fatalf("cloud-init-output.log:\n%s", out)
	}
	// The metadata service: IMDSv2 tokens are required (the image supports them, as AWS's do).
	imds := `T=$(curl -s -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token); ` +
		`curl -s -H "X-aws-ec2-metadata-token: $T" http://169.254.169.254/latest/meta-data/instance-id; echo; ` +
		`curl -s -H "X-aws-ec2-metadata-token: $T" http://169.254.169.254/latest/meta-data/tags/instance/Name; echo; ` +
		`curl -s -o /dev/null -w '%{http_code}' http://169.254.169.254/latest/meta-data/instance-id`
	if out := mustSSH(t, key, ip, imds); !strings.HasPrefix(out, id+"\n") || !strings.HasSuffix(strings.TrimSpace(out), "401") {
		t.Fatalf("metadata service:\n%s", out)
	}

	// A file written in the home directory survives stop and start.
	mustSSH(t, key, ip, "echo kept > /home/ec2-user/notes.txt")
	if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, c, id)
	if st := describeOne(t, c, id); st.StateReason == nil || *st.StateReason.Code != "Client.UserInitiatedShutdown" {
		t.Fatalf("state reason: %+v", st.StateReason)
	}
	if _, err := c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, c, id)
	if out := mustSSH(t, key, ip, "cat /home/ec2-user/notes.txt; cat /var/tmp/user-data-runs"); out != "kept\nran\n" {
		t.Fatalf("after stop/start: %q", out)
	}
	// A reboot ends every process and boots again from the same disk; the instance stays running.
	mustSSH(t, key, ip, "nohup sleep 600 >/dev/null 2>&1 &")
	if _, err := c.RebootInstances(ctx, &ec2.RebootInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, func() bool {
		out, err := sshRun(t, key, ip, "pgrep -x sleep || echo none")
		return err == nil && strings.TrimSpace(out) == "none"
	})
	if st := describeOne(t, c, id).State.Name; st != types.InstanceStateNameRunning {
		t.Fatalf("after reboot: %s", st)
	}
	console, err := c.GetConsoleOutput(ctx, &ec2.GetConsoleOutputInput{InstanceId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	text, _ := base64.StdEncoding.DecodeString(aws.ToString(console.Output))
	if !strings.Contains(string(text), "SSH HOST KEY FINGERPRINTS") {
		t.Fatalf("console output:\n%s", text)
	}

	if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	waitTerminated(t, c, id)
	if _, err := os.Stat(filepath.Join(s.DataDir, "instances", "machines", id)); !os.IsNotExist(err) {
		t.Fatalf("the terminated instance's disk is still there: %v", err)
	}
	if _, err := sshRun(t, key, ip, "true"); err == nil {
		t.Fatal("ssh still reaches a terminated instance")
	}
	_, err = c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}})
	wantAPIError(t, err, "IncorrectInstanceState", 400)
}

// removeAtEnd makes sure a test leaves no instance behind even when it fails half-way: the
// machine's container, its disk's mount and its network link go before the data dir does.
func removeAtEnd(t *testing.T, s *servertest.Server, id string) {
	t.Cleanup(func() {
		root := filepath.Join(s.DataDir, "instances", "sandboxes", "runc")
		exec.Command("runc", "--root", root, "kill", "--all", id, "KILL").Run()
		exec.Command("runc", "--root", root, "delete", "--force", id).Run()
		syscall.Unmount(filepath.Join(s.DataDir, "instances", "machines", id, "rootfs"), syscall.MNT_DETACH)
		exec.Command("ip", "link", "del", network.HostIfName(id)).Run()
	})
}

func waitFor(t *testing.T, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
