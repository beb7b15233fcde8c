package server_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/nubis/nubis/internal/server"
	"github.com/nubis/nubis/internal/server/servertest"
)

// sendSSHPublicKey calls ec2-instance-connect's SendSSHPublicKey (JSON 1.1) by hand: the SDK's
// client for it is not a dependency of nubis.
func sendSSHPublicKey(t *testing.T, s *servertest.Server, body string) servertest.Response {
	t.Helper()
	return s.Do(t, servertest.Raw{Service: "ec2-instance-connect", Body: body, ContentType: "application/x-amz-json-1.1",
		Header: http.Header{"X-Amz-Target": {"AWSEC2InstanceConnectService.SendSSHPublicKey"}}})
}

// TestInstanceConnect: a key pushed with SendSSHPublicKey lets the real ssh in for its minute
// (shortened here) and no longer; an instance launched without a key pair is reachable so; bad
// requests get the service's errors.
func TestInstanceConnect(t *testing.T) {
	needInstances(t)
	ctx := context.Background()
	s := servertest.StartConfig(t, server.Config{InstanceConnectTTL: 4 * time.Second})
	c := ec2.NewFromConfig(s.Config(t, nil))
	out, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(defaultImage(t, c)), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		SecurityGroupIds: []string{sshGroup(t, c)}})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	removeAtEnd(t, s, id)
	waitRunning(t, c, id)
	ip := aws.ToString(describeOne(t, c, id).PublicIpAddress)

	dir := t.TempDir()
	key := filepath.Join(dir, "eic")
	if b, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, b)
	}
	pub, _ := os.ReadFile(key + ".pub")
	if _, err := sshRun(t, key, ip, "true"); err == nil {
		t.Fatal("ssh got in before the key was pushed")
	}
	body := `{"InstanceId": "` + id + `", "InstanceOSUser": "ec2-user", "SSHPublicKey": "` + strings.TrimSpace(string(pub)) + `"}`
	if r := sendSSHPublicKey(t, s, body); r.Status != 200 || !strings.Contains(r.Body, `"Success":true`) {
		t.Fatalf("SendSSHPublicKey: %d %s", r.Status, r.Body)
	}
	if out := mustSSH(t, key, ip, "whoami"); strings.TrimSpace(out) != "ec2-user" {
		t.Fatalf("whoami: %q", out)
	}
	time.Sleep(5 * time.Second) // the key's time is up
	if _, err := sshRun(t, key, ip, "true"); err == nil {
		t.Fatal("ssh still got in after the key expired")
	}

	for _, tc := range []struct{ body, code string }{
		{`{"InstanceId": "i-0123456789abcdef0", "InstanceOSUser": "ec2-user", "SSHPublicKey": "` + strings.TrimSpace(string(pub)) + `"}`, "EC2InstanceNotFoundException"},
		{`{"InstanceId": "` + id + `", "InstanceOSUser": "ec2-user", "SSHPublicKey": "ssh-ed25519 not-a-key-at-all-but-long-enough-to-pass-the-length-check-of-eighty-chars x"}`, "InvalidArgsException"},
		{`{"InstanceId": "` + id + `", "InstanceOSUser": "no/slash", "SSHPublicKey": "` + strings.TrimSpace(string(pub)) + `"}`, "InvalidArgsException"},
		{`{"InstanceId": "bad", "InstanceOSUser": "ec2-user", "SSHPublicKey": "` + strings.TrimSpace(string(pub)) + `"}`, "InvalidArgsException"},
	} {
		if r := sendSSHPublicKey(t, s, tc.body); r.Status != 400 || !strings.Contains(r.Body, tc.code) {
			t.Errorf("%s: %d %s", tc.body, r.Status, r.Body)
		}
	}
	if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, c, id)
	if r := sendSSHPublicKey(t, s, body); r.Status != 400 || !strings.Contains(r.Body, "EC2InstanceStateInvalidException") {
		t.Errorf("to a stopped instance: %d %s", r.Status, r.Body)
	}
	if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	waitTerminated(t, c, id)
}
