package server_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/nubis/nubis/internal/server"
	"github.com/nubis/nubis/internal/server/servertest"
)

// cloudConfig exercises the cloud-config modules the issue names.
const cloudConfig = `#cloud-config
users:
  - default
  - name: alice
    shell: /bin/bash
    sudo: ALL=(ALL) NOPASSWD:ALL
write_files:
  - path: /etc/motd.d/hello
    content: |
      written by cloud-config
    permissions: '0640'
runcmd:
  - echo runcmd ran > /var/tmp/runcmd
  - [ sh, -c, "id -un > /var/tmp/runcmd-user" ]
`

// launchOne runs one instance and waits until it runs.
func launchOne(t *testing.T, s *servertest.Server, c *ec2.Client, in *ec2.RunInstancesInput) types.Instance {
	t.Helper()
	if in.MinCount == nil {
		in.MinCount, in.MaxCount = aws.Int32(1), aws.Int32(1)
	}
	if in.SecurityGroupIds == nil {
		in.SecurityGroupIds = []string{sshGroup(t, c)}
	}
	out, err := c.RunInstances(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	id := *out.Instances[0].InstanceId
	removeAtEnd(t, s, id)
	waitRunning(t, c, id)
	return describeOne(t, c, id)
}

// TestInstanceGuest checks what an instance is from inside: cloud-config user data, its memory
// limit, isolation from another instance (metadata, files, processes) while the VPC connects
// them, and `shutdown -h now` stopping or terminating it as InstanceInitiatedShutdownBehavior says.
func TestInstanceGuest(t *testing.T) {
	needInstances(t)
	s := servertest.StartConfig(t, server.Config{DataDir: t.TempDir()})
	c := ec2Client(t, s)
	ctx := context.Background()
	ami := defaultImage(t, c)
	key := keyFile(t, c, "guest")
	a := launchOne(t, s, c, &ec2.RunInstancesInput{ImageId: aws.String(ami), InstanceType: types.InstanceTypeT2Nano,
		KeyName: aws.String("guest"), UserData: aws.String(b64(cloudConfig)),
		MetadataOptions: &types.InstanceMetadataOptionsRequest{HttpTokens: types.HttpTokensStateOptional}})
	b := launchOne(t, s, c, &ec2.RunInstancesInput{ImageId: aws.String(ami), InstanceType: types.InstanceTypeT2Micro,
		KeyName: aws.String("guest"), InstanceInitiatedShutdownBehavior: types.ShutdownBehaviorTerminate,
		Placement: &types.Placement{AvailabilityZone: aws.String("us-east-1b")}})
	ipA, ipB := *a.PublicIpAddress, *b.PublicIpAddress

	// cloud-config: runcmd ran as root, write_files wrote with its mode, the user exists.
	waitFor(t, 30*time.Second, func() bool {
		out, _ := sshRun(t, key, ipA, "cat /var/tmp/runcmd /var/tmp/runcmd-user 2>/dev/null")
		return out == "runcmd ran\nroot\n"
	})
	if out := mustSSH(t, key, ipA, "stat -c %a /etc/motd.d/hello; sudo cat /etc/motd.d/hello; id alice; sudo -n sudo -l -U alice | tail -1"); !strings.Contains(out, "640\nwritten by cloud-config\n") ||
		!strings.Contains(out, "uid=") || !strings.Contains(out, "NOPASSWD: ALL") {
		t.Fatalf("cloud-config results:\n%s", out)
	}
	// Tokenless metadata reads are allowed when HttpTokens is optional; each instance sees its own.
	if out := mustSSH(t, key, ipA, "curl -s http://169.254.169.254/latest/meta-data/instance-id"); out != *a.InstanceId {
		t.Fatalf("a's metadata: %q", out)
	}
	if out := mustSSH(t, key, ipB, "curl -s -o /dev/null -w %{http_code} http://169.254.169.254/latest/meta-data/instance-id"); out != "401" {
		t.Fatalf("b requires tokens, a tokenless read got %q", out)
	}
	// The VPC's resolver (169.254.169.253, in resolv.conf) knows the instances' private names.
	bName := "ip-" + strings.ReplaceAll(ipB, ".", "-")
	if out := mustSSH(t, key, ipA, "getent hosts "+bName+" "+bName+".ec2.internal; getent hosts no-such-host.ec2.internal || echo unknown"); !strings.Contains(out, ipB+" ") ||
		strings.Count(out, ipB) != 2 || !strings.Contains(out, "unknown") {
		t.Fatalf("resolving b's name from a:\n%s", out)
	}
	// The resolver answers at the VPC's base address plus two as well (a query made by hand: the
	// image has no dig).
	query := base64.StdEncoding.EncodeToString([]byte(dnsQueryPy))
	if out := mustSSH(t, key, ipA, "echo "+query+" | base64 -d | python3 - "+bName+".ec2.internal 172.31.0.2"); out != ipB {
		t.Fatalf("resolving b's name at 172.31.0.2 from a: %q", out)
	}
	// Nor another instance's, at its address.
	if out, err := sshRun(t, key, ipA, "curl -s -m 3 http://"+ipB+"/latest/meta-data/instance-id"); err == nil || strings.Contains(out, *b.InstanceId) {
		t.Fatalf("a read b's metadata: %v %q", err, out)
	}
	// Instances of a VPC reach each other (different subnets: a in 1a, b in 1b).
	if out := mustSSH(t, key, ipA, "timeout 5 bash -c 'echo > /dev/tcp/"+ipB+"/22' && echo reached"); !strings.Contains(out, "reached") {
		t.Fatalf("a cannot reach b: %s", out)
	}
	// But they see nothing of each other: files, processes.
	mustSSH(t, key, ipB, "echo secret > /home/ec2-user/b-only; nohup sleep 777 >/dev/null 2>&1 &")
	if out := mustSSH(t, key, ipA, "ls /home/ec2-user/b-only 2>&1; pgrep -x sleep || echo no-such-process; ps -e | wc -l"); !strings.Contains(out, "No such file") ||
		!strings.Contains(out, "no-such-process") {
		t.Fatalf("a sees b's files or processes:\n%s", out)
	}
	// The type's memory is a real limit: t2.nano has 512 MiB.
	out, _ := sshRun(t, key, ipA, "python3 -c 'x = bytearray(700 << 20); print(\"allocated\")'")
	if strings.Contains(out, "allocated") {
		t.Fatalf("a t2.nano allocated 700 MiB:\n%s", out)
	}

	// shutdown -h now inside: a stops (the default behavior), b terminates.
	sshRun(t, key, ipA, "sudo shutdown -h now")
	waitStopped(t, c, *a.InstanceId)
	if st := describeOne(t, c, *a.InstanceId).StateReason; st == nil || *st.Code != "Client.InstanceInitiatedShutdown" {
		t.Fatalf("state reason after shutdown inside: %+v", st)
	}
	sshRun(t, key, ipB, "sudo poweroff")
	waitTerminated(t, c, *b.InstanceId)
	// a starts again; user data does not run twice.
	if _, err := c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{*a.InstanceId}}); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, c, *a.InstanceId)
	if out := mustSSH(t, key, ipA, "cat /var/tmp/runcmd"); out != "runcmd ran\n" {
		t.Fatalf("after a restart: %q", out)
	}
	if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{*a.InstanceId}}); err != nil {
		t.Fatal(err)
	}
	waitTerminated(t, c, *a.InstanceId)
}

// dnsQueryPy asks the DNS server argv[2] for the A record of argv[1] and prints the address.
const dnsQueryPy = `import socket, struct, sys
name, server = sys.argv[1], sys.argv[2]
q = struct.pack(">HHHHHH", 0x4e42, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(q, (server, 53))
r = s.recv(512)
print(socket.inet_ntoa(r[-4:]), end="")
`
