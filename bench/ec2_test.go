package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/nubis/nubis/internal/server/servertest"
	"github.com/nubis/nubis/internal/testenv"
)

// The EC2 benchmarks: the default image, t2.micro, a key pair, and the real ssh client.
// BenchmarkInstanceLaunch times from RunInstances to the first successful SSH command, one
// instance at a time (10 launches); BenchmarkInstanceStopStart times StopInstances until the
// instance is stopped and StartInstances until it runs again (5 cycles); BenchmarkTwentyInstances
// launches 20 instances in one RunInstances call, waits for all to answer SSH, and measures the
// host memory they take beyond their own processes. They do a fixed amount of work whatever
// -benchtime says.

const (
	launches   = 10
	stopCycles = 5
	fleetSize  = 20
)

type ec2Bench struct {
	s     *servertest.Server
	c     *ec2.Client
	ami   string
	key   string
	group string
}

func startEC2(b *testing.B) *ec2Bench {
	needSandboxes(b)
	_, err := exec.LookPath("ssh")
	testenv.Need(b, err == nil, "the EC2 benchmarks need ssh")
	testenv.LockInstances(b)
	s := servertest.Start(b, "")
	c := ec2.NewFromConfig(s.Config(b, nil))
	imgs, err := c.DescribeImages(b.Context(), &ec2.DescribeImagesInput{
		Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"debian-12-amd64-nubis"}}}})
	if err != nil || len(imgs.Images) != 1 {
		b.Fatalf("default image: %v", err)
	}
	kp, err := c.CreateKeyPair(b.Context(), &ec2.CreateKeyPairInput{KeyName: aws.String("bench")})
	if err != nil {
		b.Fatal(err)
	}
	key := filepath.Join(b.TempDir(), "bench.pem")
	if err := os.WriteFile(key, []byte(*kp.KeyMaterial), 0o400); err != nil {
		b.Fatal(err)
	}
	g, err := c.CreateSecurityGroup(b.Context(), &ec2.CreateSecurityGroupInput{GroupName: aws.String("ssh"), Description: aws.String("SSH")})
	if err != nil {
		b.Fatal(err)
	}
	_, err = c.AuthorizeSecurityGroupIngress(b.Context(), &ec2.AuthorizeSecurityGroupIngressInput{GroupId: g.GroupId,
		IpPermissions: []types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22),
			IpRanges: []types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}}}}})
	if err != nil {
		b.Fatal(err)
	}
	return &ec2Bench{s: s, c: c, ami: *imgs.Images[0].ImageId, key: key, group: *g.GroupId}
}

// run launches n instances in one call and returns their ids and addresses.
func (e *ec2Bench) run(b *testing.B, n int) (ids, ips []string) {
	out, err := e.c.RunInstances(b.Context(), &ec2.RunInstancesInput{ImageId: aws.String(e.ami),
		InstanceType: types.InstanceTypeT2Micro, KeyName: aws.String("bench"), SecurityGroupIds: []string{e.group},
		MinCount: aws.Int32(int32(n)), MaxCount: aws.Int32(int32(n))})
	if err != nil {
		b.Fatal(err)
	}
	for _, in := range out.Instances {
		ids = append(ids, *in.InstanceId)
		ips = append(ips, *in.PrivateIpAddress)
	}
	b.Cleanup(func() {
		e.c.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: ids})
		w := ec2.NewInstanceTerminatedWaiter(e.c, func(o *ec2.InstanceTerminatedWaiterOptions) { o.MinDelay = 100 * time.Millisecond })
		w.Wait(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: ids}, time.Minute)
	})
	return ids, ips
}

// sshUntil runs `true` over ssh until it succeeds (or a minute passes). It waits for port 22
// to accept first, so that it does not start an ssh process every few milliseconds meanwhile.
func (e *ec2Bench) sshUntil(ip string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, "22"), 100*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("port 22 of %s: %w", ip, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for {
		err := exec.Command("ssh", "-i", e.key, "-o", "BatchMode=yes", "-o", "ConnectTimeout=2",
			"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=QUIET",
			"ec2-user@"+ip, "true").Run()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ssh %s: %w", ip, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitState polls DescribeInstances until the instance is in state.
func (e *ec2Bench) waitState(b *testing.B, id string, state types.InstanceStateName) {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		out, err := e.c.DescribeInstances(b.Context(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if err != nil {
			b.Fatal(err)
		}
		if out.Reservations[0].Instances[0].State.Name == state {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatalf("%s did not become %s", id, state)
}

func BenchmarkInstanceLaunch(b *testing.B) {
	e := startEC2(b)
	var lat []time.Duration
	for b.Loop() {
		for range launches {
			start := time.Now()
			ids, ips := e.run(b, 1)
			if err := e.sshUntil(ips[0]); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
			e.c.TerminateInstances(b.Context(), &ec2.TerminateInstancesInput{InstanceIds: ids})
		}
	}
	s := latencyStats(lat)
	results[b.Name()] = s
	for _, m := range latencyMetrics("", s) {
		b.ReportMetric(m.v, m.unit)
	}
	b.ReportMetric(float64(len(lat)), "launches")
}

func BenchmarkInstanceStopStart(b *testing.B) {
	e := startEC2(b)
	ids, ips := e.run(b, 1)
	if err := e.sshUntil(ips[0]); err != nil {
		b.Fatal(err)
	}
	var stops, starts []time.Duration
	for b.Loop() {
		for range stopCycles {
			e.waitState(b, ids[0], types.InstanceStateNameRunning)
			start := time.Now()
			if _, err := e.c.StopInstances(b.Context(), &ec2.StopInstancesInput{InstanceIds: ids}); err != nil {
				b.Fatal(err)
			}
			e.waitState(b, ids[0], types.InstanceStateNameStopped)
			stops = append(stops, time.Since(start))
			start = time.Now()
			if _, err := e.c.StartInstances(b.Context(), &ec2.StartInstancesInput{InstanceIds: ids}); err != nil {
				b.Fatal(err)
			}
			e.waitState(b, ids[0], types.InstanceStateNameRunning)
			starts = append(starts, time.Since(start))
		}
	}
	stop, start := latencyStats(stops), latencyStats(starts)
	results[b.Name()+"/stop"], results[b.Name()+"/start"] = stop, start
	for _, m := range append(latencyMetrics("stop-", stop), latencyMetrics("start-", start)...) {
		b.ReportMetric(m.v, m.unit)
	}
}

func BenchmarkTwentyInstances(b *testing.B) {
	e := startEC2(b)
	for b.Loop() {
		runtime := memAvailable()
		start := time.Now()
		ids, ips := e.run(b, fleetSize)
		var wg sync.WaitGroup
		errs := make([]error, len(ips))
		for i, ip := range ips {
			wg.Go(func() { errs[i] = e.sshUntil(ip) })
		}
		wg.Wait()
		all := time.Since(start)
		failed := 0
		for _, err := range errs {
			if err != nil {
				failed++
			}
		}
		time.Sleep(3 * time.Second) // idle
		used := int64(runtime) - int64(memAvailable())
		var own int64
		for _, id := range ids {
			own += int64(cgroupMemory(id))
		}
		perInstance := float64(used) / fleetSize / (1 << 20)
		overhead := (float64(used) - float64(own)) / fleetSize / (1 << 20)
		results[b.Name()] = stats{p50: all, errors: failed}
		b.ReportMetric(all.Seconds(), "all-ssh-s")
		b.ReportMetric(float64(fleetSize-failed), "reached")
		b.ReportMetric(perInstance, "host-MiB/instance")
		b.ReportMetric(overhead, "overhead-MiB/instance")
		tables = append(tables, fmt.Sprintf("BenchmarkTwentyInstances: %d of %d instances answered ssh %.1f s after RunInstances; "+
			"host memory %.1f MiB per idle instance, of which %.1f MiB beyond the instance's own processes (target ≤ 20 MiB)\n",
			fleetSize-failed, fleetSize, all.Seconds(), perInstance, overhead))
	}
}

// memAvailable is MemAvailable of /proc/meminfo, in bytes.
func memAvailable() uint64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cgroupMemory is what an instance's own processes use: its cgroup's memory usage (v1 or v2).
func cgroupMemory(id string) uint64 {
	for _, p := range []string{"/sys/fs/cgroup/memory/nubis-instances/" + id + "/memory.usage_in_bytes",
		"/sys/fs/cgroup/nubis-instances/" + id + "/memory.current"} {
		if b, err := os.ReadFile(p); err == nil {
			n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
			return n
		}
	}
	return 0
}
