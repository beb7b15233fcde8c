package server_test

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/nubis/nubis/internal/netns"
	"github.com/nubis/nubis/internal/netns/netnstest"
	"github.com/nubis/nubis/internal/network"
	"github.com/nubis/nubis/internal/server"
	"github.com/nubis/nubis/internal/server/servertest"
)

// reachable tells whether a TCP connection to addr opens within 300 ms, from this host or, with
// ns, from inside that network namespace.
func reachable(ns *netns.NS, addr string) bool {
	dial := func() error {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err
	}
	if ns == nil {
		return dial() == nil
	}
	return ns.Do(context.Background(), dial) == nil
}

// within fails unless ok becomes true within d (the API's promise for rule changes is 1 s).
func within(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	start := time.Now()
	for !ok() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%s after %v", what, time.Since(start).Round(time.Millisecond))
}

func tcpPerm(port int32, cidr string) []types.IpPermission {
	return []types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(port), ToPort: aws.Int32(port),
		IpRanges: []types.IpRange{{CidrIp: aws.String(cidr), Description: aws.String("my IP")}}}}
}

// TestSecurityGroupsEnforced is the console's "Edit inbound rules → SSH from My IP" with the real
// ssh: refused without a rule, reachable within a second of authorize, refused again within a
// second of revoke, while another address on the VPC stays refused throughout; then an HTTP port
// and ICMP likewise, and the rules survive a restart of nubis.
func TestSecurityGroupsEnforced(t *testing.T) {
	needInstances(t)
	dataDir := t.TempDir()
	s := servertest.StartConfig(t, server.Config{DataDir: dataDir})
	c := ec2Client(t, s)
	ctx := context.Background()
	ami := defaultImage(t, c)
	key := keyFile(t, c, "sg")
	web, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("web"), Description: aws.String("web servers")})
	if err != nil {
		t.Fatal(err)
	}
	inst := launchOne(t, s, c, &ec2.RunInstancesInput{ImageId: aws.String(ami), KeyName: aws.String("sg"),
		SecurityGroupIds: []string{*web.GroupId}})
	ip := *inst.PublicIpAddress
	// The host reaches the instance from its address on the VPC's bridge: the subnet's gateway.
	myIP := netip.MustParsePrefix(ip+"/20").Masked().Addr().Next().String() + "/32"

	// "Another IP": a namespace of its own on the same VPC bridge.
	other := netnstest.New(t)
	hostIf := network.HostIfName("other-" + *inst.InstanceId)
	err = network.Attach(ctx, network.Attachment{NetNS: other.Path(), HostIf: hostIf, Bridge: network.BridgeName(*inst.VpcId),
		Address: netip.MustParsePrefix("172.31.15.251/20"), Gateway: netip.MustParseAddr("172.31.0.1"),
		OnLink: []netip.Prefix{netip.MustParsePrefix("172.31.0.0/16")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { network.Detach(context.Background(), hostIf) })

	ssh := ip + ":22"
	if reachable(nil, ssh) || reachable(other, ssh) {
		t.Fatal("port 22 is reachable without a rule")
	}
	if _, err := c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: web.GroupId,
		IpPermissions: tcpPerm(22, myIP)}); err != nil {
		t.Fatal(err)
	}
	within(t, time.Second, "ssh allowed", func() bool { return reachable(nil, ssh) })
	if out := mustSSH(t, key, ip, "echo in"); out != "in\n" {
		t.Fatalf("ssh: %q", out)
	}
	if reachable(other, ssh) {
		t.Fatal("another IP reaches port 22")
	}
	_, err = c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: web.GroupId, IpPermissions: tcpPerm(22, myIP)})
	wantAPIError(t, err, "InvalidPermission.Duplicate", 400)

	// An HTTP server on 8000, and ICMP: refused until a rule allows them.
	mustSSH(t, key, ip, "nohup python3 -m http.server 8000 >/dev/null 2>&1 &")
	time.Sleep(500 * time.Millisecond)
	if reachable(nil, ip+":8000") {
		t.Fatal("port 8000 is reachable without a rule")
	}
	ping := func() bool { return exec.Command("ping", "-c1", "-W1", ip).Run() == nil }
	if ping() {
		t.Fatal("ping answered without an ICMP rule")
	}
	if _, err := c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: web.GroupId,
		IpPermissions: append(tcpPerm(8000, myIP), types.IpPermission{IpProtocol: aws.String("icmp"), FromPort: aws.Int32(-1), ToPort: aws.Int32(-1),
			IpRanges: []types.IpRange{{CidrIp: aws.String(myIP)}}})}); err != nil {
		t.Fatal(err)
	}
	within(t, time.Second, "port 8000 allowed", func() bool { return reachable(nil, ip+":8000") })
	if !ping() {
		t.Fatal("ping unanswered with an ICMP rule")
	}
	if reachable(other, ip+":8000") {
		t.Fatal("another IP reaches port 8000")
	}

	// Revoke: new connections are refused within a second.
	if _, err := c.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: web.GroupId, IpPermissions: tcpPerm(22, myIP)}); err != nil {
		t.Fatal(err)
	}
	within(t, time.Second, "ssh refused", func() bool { return !reachable(nil, ssh) })
	_, err = c.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: web.GroupId, IpPermissions: tcpPerm(22, myIP)})
	wantAPIError(t, err, "InvalidPermission.NotFound", 400)

	// Groups that cannot go.
	_, err = c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: web.GroupId})
	wantAPIError(t, err, "DependencyViolation", 400)
	_, err = c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupName: aws.String("default")})
	wantAPIError(t, err, "CannotDelete", 400)
	_, err = c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("web"), Description: aws.String("again")})
	wantAPIError(t, err, "InvalidGroup.Duplicate", 400)
	rules, err := c.DescribeSecurityGroupRules(ctx, &ec2.DescribeSecurityGroupRulesInput{
		Filters: []types.Filter{{Name: aws.String("group-id"), Values: []string{*web.GroupId}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rules.SecurityGroupRules) != 3 { // 8000 and icmp in, all out
		t.Fatalf("rules: %+v", rules.SecurityGroupRules)
	}

	// ModifySecurityGroupRules: the 8000 rule becomes an 8001 rule, and 8000 is refused.
	var rule8000 string
	for _, r := range rules.SecurityGroupRules {
		if r.FromPort != nil && *r.FromPort == 8000 {
			rule8000 = *r.SecurityGroupRuleId
		}
	}
	if _, err := c.ModifySecurityGroupRules(ctx, &ec2.ModifySecurityGroupRulesInput{GroupId: web.GroupId,
		SecurityGroupRules: []types.SecurityGroupRuleUpdate{{SecurityGroupRuleId: aws.String(rule8000),
			SecurityGroupRule: &types.SecurityGroupRuleRequest{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(8001), ToPort: aws.Int32(8001), CidrIpv4: aws.String(myIP)}}}}); err != nil {
		t.Fatal(err)
	}
	within(t, time.Second, "port 8000 refused after the rule changed", func() bool { return !reachable(nil, ip+":8000") })
	if _, err := c.ModifySecurityGroupRules(ctx, &ec2.ModifySecurityGroupRulesInput{GroupId: web.GroupId,
		SecurityGroupRules: []types.SecurityGroupRuleUpdate{{SecurityGroupRuleId: aws.String(rule8000),
			SecurityGroupRule: &types.SecurityGroupRuleRequest{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(8000), ToPort: aws.Int32(8000), CidrIpv4: aws.String(myIP)}}}}); err != nil {
		t.Fatal(err)
	}
	within(t, time.Second, "port 8000 allowed again", func() bool { return reachable(nil, ip+":8000") })

	// A restart of nubis: the rules are in the store, and the firewall is rebuilt from it.
	s.Stop(t)
	s = servertest.StartConfig(t, server.Config{DataDir: dataDir})
	c = ec2Client(t, s)
	if !reachable(nil, ip+":8000") || reachable(nil, ssh) {
		t.Fatal("after a restart, the rules in force differ")
	}
	if _, err := c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: web.GroupId,
		IpPermissions: tcpPerm(22, "0.0.0.0/0")}); err != nil {
		t.Fatal(err)
	}
	within(t, time.Second, "ssh from anywhere", func() bool { return reachable(other, ssh) })
	if out := mustSSH(t, key, ip, "curl -s -o /dev/null -w %{http_code} http://127.0.0.1:8000/"); !strings.HasPrefix(out, "200") {
		t.Fatalf("the instance's own server: %q", out)
	}
	if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{*inst.InstanceId}}); err != nil {
		t.Fatal(err)
	}
	waitTerminated(t, c, *inst.InstanceId)
	if _, err := c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: web.GroupId}); err != nil {
		t.Fatal(err)
	}
}

// TestSecurityGroupSources: a rule whose source is another group lets in exactly that group's
// instances, and follows the group's membership (ModifyNetworkInterfaceAttribute).
func TestSecurityGroupSources(t *testing.T) {
	needInstances(t)
	s := servertest.StartConfig(t, server.Config{DataDir: t.TempDir()})
	c := ec2Client(t, s)
	ctx := context.Background()
	ami := defaultImage(t, c)
	key := keyFile(t, c, "src")
	ssh := sshGroup(t, c)
	bastion, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("bastion"), Description: aws.String("jump hosts")})
	if err != nil {
		t.Fatal(err)
	}
	app, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("app"), Description: aws.String("app servers")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: app.GroupId,
		IpPermissions: []types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22),
			UserIdGroupPairs: []types.UserIdGroupPair{{GroupId: bastion.GroupId}}}}}); err != nil {
		t.Fatal(err)
	}
	x := launchOne(t, s, c, &ec2.RunInstancesInput{ImageId: aws.String(ami), KeyName: aws.String("src"), SecurityGroupIds: []string{ssh, *bastion.GroupId}})
	y := launchOne(t, s, c, &ec2.RunInstancesInput{ImageId: aws.String(ami), KeyName: aws.String("src"), SecurityGroupIds: []string{*app.GroupId}})
	z := launchOne(t, s, c, &ec2.RunInstancesInput{ImageId: aws.String(ami), KeyName: aws.String("src"), SecurityGroupIds: []string{ssh}})
	probe := func(from types.Instance) bool {
		out, err := sshRun(t, key, *from.PublicIpAddress, "timeout 2 bash -c 'echo > /dev/tcp/"+*y.PrivateIpAddress+"/22' && echo reached")
		return err == nil && strings.Contains(out, "reached")
	}
	if !probe(x) {
		t.Fatal("a member of bastion cannot reach app")
	}
	if probe(z) {
		t.Fatal("an instance outside bastion reaches app")
	}
	// z joins bastion through its network interface: now it gets in too.
	if _, err := c.ModifyNetworkInterfaceAttribute(ctx, &ec2.ModifyNetworkInterfaceAttributeInput{
		NetworkInterfaceId: z.NetworkInterfaces[0].NetworkInterfaceId, Groups: []string{ssh, *bastion.GroupId}}); err != nil {
		t.Fatal(err)
	}
	within(t, 5*time.Second, "a new member of bastion reaches app", func() bool { return probe(z) })
	ids := []string{*x.InstanceId, *y.InstanceId, *z.InstanceId}
	if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids}); err != nil {
		t.Fatal(err)
	}
	waitTerminated(t, c, ids...)
}
