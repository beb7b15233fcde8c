package e2e

import (
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nubis/nubis/internal/network"
	"github.com/nubis/nubis/internal/testenv"
)

// calculateMean is the script the walkthrough fetches with curl and runs on the instance.
const calculateMean = `import sys
nums = [float(x) for x in sys.argv[1:]]
print(sum(nums) / len(nums))
`

// randomForest trains a scikit-learn random forest on numpy data, offline.
const randomForest = `import numpy as np
from sklearn.ensemble import RandomForestClassifier
rng = np.random.default_rng(0)
X = rng.normal(size=(600, 4))
y = (X[:, 0] + X[:, 1] > 0).astype(int)
clf = RandomForestClassifier(n_estimators=50, random_state=0).fit(X[:500], y[:500])
print("accuracy %.2f" % clf.score(X[500:], y[500:]))
`

func needInstances(t *testing.T) {
	t.Helper()
	testenv.Need(t, os.Geteuid() == 0, "instances need root")
	need(t, "runc")
	need(t, "ssh")
	needDebianAWS(t)
	testenv.LockInstances(t)
}

func ssh(t *testing.T, key, ip, command string) (string, error) { return testenv.SSH(key, ip, command) }

func mustSSH(t *testing.T, key, ip, command string) string {
	t.Helper()
	return testenv.MustSSH(t, key, ip, command)
}

// launch runs one instance of the image named name with the CLI and waits until it runs; it
// returns its id and public address.
func launch(t *testing.T, c cli, dataDir, imageName, keyName string, extra ...string) (id, ip string) {
	t.Helper()
	ami := strings.TrimSpace(c.ok("ec2", "describe-images", "--filters", "Name=name,Values="+imageName,
		"--query", "Images[0].ImageId", "--output", "text"))
	if !strings.HasPrefix(ami, "ami-") {
		t.Fatalf("image %s: %q", imageName, ami)
	}
	group := strings.TrimSpace(c.ok("ec2", "describe-security-groups", "--filters", "Name=group-name,Values=ssh",
		"--query", "SecurityGroups[0].GroupId", "--output", "text"))
	if group == "None" {
		// The console's "Allow SSH traffic from anywhere", by hand.
		group = strings.TrimSpace(c.ok("ec2", "create-security-group", "--group-name", "ssh", "--description", "SSH",
			"--query", "GroupId", "--output", "text"))
		c.ok("ec2", "authorize-security-group-ingress", "--group-id", group, "--protocol", "tcp", "--port", "22", "--cidr", "0.0.0.0/0")
	}
	args := append([]string{"ec2", "run-instances", "--image-id", ami, "--instance-type", "t2.micro",
		"--key-name", keyName, "--security-group-ids", group, "--count", "1",
		"--query", "Instances[0].InstanceId", "--output", "text"}, extra...)
	id = strings.TrimSpace(c.ok(args...))
	t.Cleanup(func() { removeInstance(dataDir, id) })
	c.ok("ec2", "wait", "instance-running", "--instance-ids", id)
	ip = strings.TrimSpace(c.ok("ec2", "describe-instances", "--instance-ids", id,
		"--query", "Reservations[0].Instances[0].PublicIpAddress", "--output", "text"))
	return id, ip
}

// removeInstance makes sure a test leaves no instance behind, even when it fails half-way: the
// machine's container, its disk's mount and its network link go.
func removeInstance(dataDir, id string) {
	root := filepath.Join(dataDir, "instances", "sandboxes", "runc")
	exec.Command("runc", "--root", root, "kill", "--all", id, "KILL").Run()
	exec.Command("runc", "--root", root, "delete", "--force", id).Run()
	syscall.Unmount(filepath.Join(dataDir, "instances", "machines", id, "rootfs"), syscall.MNT_DETACH)
	if l, err := net.InterfaceByName(network.HostIfName(id)); err == nil {
		exec.Command("ip", "link", "del", l.Name).Run()
	}
}

// createKey saves a new key pair's private key as key.pem, readable by others as a redirect
// leaves it: protectKey makes it usable.
func createKey(t *testing.T, c cli, name string) string {
	t.Helper()
	pem := c.ok("ec2", "create-key-pair", "--key-name", name, "--query", "KeyMaterial", "--output", "text")
	path := filepath.Join(t.TempDir(), name+".pem")
	if err := os.WriteFile(path, []byte(pem), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// protectKey checks that ssh refuses the key file while others can read it, then does what the
// user does: chmod 400.
func protectKey(t *testing.T, key, ip string) {
	t.Helper()
	if out, err := ssh(t, key, ip, "true"); err == nil || !strings.Contains(out, "UNPROTECTED PRIVATE KEY FILE") {
		t.Fatalf("ssh accepted a key file others can read: %v %s", err, out)
	}
	if err := os.Chmod(key, 0o400); err != nil {
		t.Fatal(err)
	}
}

// TestEC2Walkthrough follows the path with Debian's aws CLI v2 and the real ssh:
// create-key-pair, run-instances, wait, ssh, python3 runs a script fetched with curl, a random
// forest trains on the data-science image, a file in the home directory survives stop and start,
// terminate takes the instance and its disk.
func TestEC2Walkthrough(t *testing.T) {
	needInstances(t)
	dataDir := t.TempDir()
	startServer(t, dataDir)
	c := cli{t: t, bin: "/usr/bin/aws", env: env(t, dataDir), home: t.TempDir()}
	key := createKey(t, c, "my-key")

	id, ip := launch(t, c, dataDir, "debian-12-amd64-nubis", "my-key")
	protectKey(t, key, ip)
	if out := mustSSH(t, key, ip, "python3 --version"); !strings.HasPrefix(out, "Python 3.") {
		t.Fatalf("python3 --version: %s", out)
	}
	// The script comes from a web server on the host, at the VPC's gateway address.
	l, err := net.Listen("tcp", "172.31.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(calculateMean)) })}
	go srv.Serve(l)
	defer srv.Close()
	out := mustSSH(t, key, ip, "curl -s -o calculate_mean.py http://"+l.Addr().String()+"/calculate_mean.py && python3 calculate_mean.py 1 2 3")
	if strings.TrimSpace(out) != "2.0" {
		t.Fatalf("calculate_mean.py: %q", out)
	}
	mustSSH(t, key, ip, "echo 'my notes' > /home/ec2-user/notes.txt")
	// EC2 Instance Connect, as the console's Connect button: a fresh key pushed for a minute.
	eic := filepath.Join(t.TempDir(), "eic")
	if b, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", eic).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, b)
	}
	c.ok("ec2-instance-connect", "send-ssh-public-key", "--instance-id", id, "--instance-os-user", "ec2-user",
		"--ssh-public-key", "file://"+eic+".pub")
	if out := mustSSH(t, eic, ip, "cat /home/ec2-user/notes.txt"); out != "my notes\n" {
		t.Fatalf("through EC2 Instance Connect: %q", out)
	}
	c.ok("ec2", "stop-instances", "--instance-ids", id)
	c.ok("ec2", "wait", "instance-stopped", "--instance-ids", id)
	if _, err := ssh(t, key, ip, "true"); err == nil {
		t.Fatal("ssh reaches a stopped instance")
	}
	c.ok("ec2", "start-instances", "--instance-ids", id)
	c.ok("ec2", "wait", "instance-running", "--instance-ids", id)
	if out := mustSSH(t, key, ip, "cat /home/ec2-user/notes.txt"); out != "my notes\n" {
		t.Fatalf("after stop and start: %q", out)
	}

	dsID, dsIP := launch(t, c, dataDir, "debian-12-amd64-datascience-nubis", "my-key")
	os.WriteFile(filepath.Join(t.TempDir(), "rf.py"), []byte(randomForest), 0o644)
	out = mustSSH(t, key, dsIP, "cat > rf.py <<'EOF'\n"+randomForest+"EOF\npython3 rf.py")
	if !strings.HasPrefix(out, "accuracy 0.9") && !strings.HasPrefix(out, "accuracy 1.0") {
		t.Fatalf("random forest: %s", out)
	}

	c.ok("ec2", "terminate-instances", "--instance-ids", id, dsID)
	c.ok("ec2", "wait", "instance-terminated", "--instance-ids", id, dsID)
	for _, i := range []string{id, dsID} {
		if _, err := os.Stat(filepath.Join(dataDir, "instances", "machines", i)); !os.IsNotExist(err) {
			t.Fatalf("the disk of terminated %s is still there (%v)", i, err)
		}
	}
	if _, err := ssh(t, key, ip, "true"); err == nil {
		t.Fatal("ssh reaches a terminated instance")
	}
	_, errOut, code := c.run("ec2", "start-instances", "--instance-ids", id)
	if code == 0 || !strings.Contains(errOut, "IncorrectInstanceState") {
		t.Fatalf("starting a terminated instance: exit %d %s", code, errOut)
	}
}

// TestInstancesSurviveSIGKILL kills the server while an instance runs: the instance keeps
// running (ssh works), and the restarted server takes it back with its metadata service; then it
// stops and terminates it and nothing is left on the host.
func TestInstancesSurviveSIGKILL(t *testing.T) {
	needInstances(t)
	dataDir := t.TempDir()
	s := startServer(t, dataDir)
	c := cli{t: t, bin: "/usr/bin/aws", env: env(t, dataDir), home: t.TempDir()}
	key := createKey(t, c, "k")
	id, ip := launch(t, c, dataDir, "debian-12-amd64-nubis", "k", "--metadata-options", "HttpTokens=optional")
	protectKey(t, key, ip)
	mustSSH(t, key, ip, "nohup sleep 1000 >/dev/null 2>&1 &")
	s.stop(t, syscall.SIGKILL)
	if out := mustSSH(t, key, ip, "pgrep -c sleep"); strings.TrimSpace(out) != "1" {
		t.Fatalf("after SIGKILL of nubis, the instance's processes: %q", out)
	}
	startServer(t, dataDir)
	c.env = env(t, dataDir) // the new server's endpoint
	state := strings.TrimSpace(c.ok("ec2", "describe-instances", "--instance-ids", id,
		"--query", "Reservations[0].Instances[0].State.Name", "--output", "text"))
	if state != "running" {
		t.Fatalf("after restart: %s", state)
	}
	if out := mustSSH(t, key, ip, "curl -s http://169.254.169.254/latest/meta-data/instance-id"); out != id {
		t.Fatalf("metadata after restart: %q", out)
	}
	c.ok("ec2", "terminate-instances", "--instance-ids", id)
	c.ok("ec2", "wait", "instance-terminated", "--instance-ids", id)
	out, _ := exec.Command("runc", "--root", filepath.Join(dataDir, "instances", "sandboxes", "runc"), "list", "-q").Output()
	if strings.TrimSpace(string(out)) != "" {
		t.Fatalf("containers left: %s", out)
	}
	if _, err := net.InterfaceByName(network.HostIfName(id)); err == nil {
		t.Fatalf("network link %s left", network.HostIfName(id))
	}
}

// TestEC2NetworkAndVolumesCLI drives security groups and EBS volumes with Debian's aws CLI v2:
// SSH only from "my IP" (the host's address on the VPC bridge), then a volume made, attached,
// written, snapshotted and restored.
func TestEC2NetworkAndVolumesCLI(t *testing.T) {
	needInstances(t)
	dataDir := t.TempDir()
	startServer(t, dataDir)
	c := cli{t: t, bin: "/usr/bin/aws", env: env(t, dataDir), home: t.TempDir()}
	key := createKey(t, c, "k")
	id, ip := launch(t, c, dataDir, "debian-12-amd64-nubis", "k")
	protectKey(t, key, ip)

	// Replace "SSH from anywhere" by "SSH from my IP".
	sg := strings.TrimSpace(c.ok("ec2", "describe-instances", "--instance-ids", id,
		"--query", "Reservations[0].Instances[0].SecurityGroups[0].GroupId", "--output", "text"))
	myIP := netip.MustParsePrefix(ip+"/20").Masked().Addr().Next().String() + "/32"
	c.ok("ec2", "authorize-security-group-ingress", "--group-id", sg, "--protocol", "tcp", "--port", "22", "--cidr", myIP)
	c.ok("ec2", "revoke-security-group-ingress", "--group-id", sg, "--protocol", "tcp", "--port", "22", "--cidr", "0.0.0.0/0")
	_, errOut, code := c.run("ec2", "revoke-security-group-ingress", "--group-id", sg, "--protocol", "tcp", "--port", "22", "--cidr", "0.0.0.0/0")
	if code == 0 || !strings.Contains(errOut, "InvalidPermission.NotFound") {
		t.Fatalf("revoking a rule twice: exit %d %s", code, errOut)
	}
	rules := c.ok("ec2", "describe-security-group-rules", "--filters", "Name=group-id,Values="+sg,
		"--query", "SecurityGroupRules[?IsEgress==`false`].CidrIpv4", "--output", "text")
	if strings.TrimSpace(rules) != myIP {
		t.Fatalf("ingress rules: %q", rules)
	}
	if out := mustSSH(t, key, ip, "echo still in"); out != "still in\n" {
		t.Fatalf("ssh from my IP: %q", out)
	}

	// A volume: created, attached as /dev/sdf (a file system at /mnt/sdf), written, snapshotted,
	// restored into a new volume attached as /dev/sdg.
	vol := strings.TrimSpace(c.ok("ec2", "create-volume", "--availability-zone", "us-east-1a", "--size", "2",
		"--volume-type", "gp3", "--query", "VolumeId", "--output", "text"))
	c.ok("ec2", "wait", "volume-available", "--volume-ids", vol)
	c.ok("ec2", "attach-volume", "--volume-id", vol, "--instance-id", id, "--device", "/dev/sdf")
	c.ok("ec2", "wait", "volume-in-use", "--volume-ids", vol)
	mustSSH(t, key, ip, "echo results | sudo tee /mnt/sdf/results.txt >/dev/null")
	snap := strings.TrimSpace(c.ok("ec2", "create-snapshot", "--volume-id", vol, "--description", "results",
		"--query", "SnapshotId", "--output", "text"))
	c.ok("ec2", "wait", "snapshot-completed", "--snapshot-ids", snap)
	restored := strings.TrimSpace(c.ok("ec2", "create-volume", "--availability-zone", "us-east-1a", "--snapshot-id", snap,
		"--query", "VolumeId", "--output", "text"))
	c.ok("ec2", "wait", "volume-available", "--volume-ids", restored)
	c.ok("ec2", "attach-volume", "--volume-id", restored, "--instance-id", id, "--device", "/dev/sdg")
	if out := mustSSH(t, key, ip, "cat /mnt/sdg/results.txt"); out != "results\n" {
		t.Fatalf("restored volume: %q", out)
	}
	// Every aws CLI on this machine (Debian's v2, and a v1 earlier on PATH if any) reads them.
	for name, bin := range awsCLIs(t) {
		other := cli{t: t, bin: bin, env: c.env, home: t.TempDir()}
		for _, q := range [][]string{
			{"describe-instances", "--instance-ids", id, "--query", "Reservations[0].Instances[0].State.Name"},
			{"describe-volumes", "--volume-ids", vol, "--query", "Volumes[0].Attachments[0].Device"},
			{"describe-security-groups", "--group-ids", sg, "--query", "SecurityGroups[0].IpPermissions[0].IpRanges[0].CidrIp"},
			{"describe-snapshots", "--snapshot-ids", snap, "--query", "Snapshots[0].State"},
			{"describe-subnets", "--filters", "Name=default-for-az,Values=true", "--query", "length(Subnets)"},
			{"describe-images", "--owners", "self", "--query", "length(Images)"},
		} {
			want := map[string]string{"describe-instances": "running", "describe-volumes": "/dev/sdf", "describe-security-groups": myIP,
				"describe-snapshots": "completed", "describe-subnets": "3", "describe-images": "0"}[q[0]]
			if got := strings.TrimSpace(other.ok(append([]string{"ec2"}, append(q, "--output", "text")...)...)); got != want {
				t.Fatalf("%s: aws ec2 %s: %q, want %q", name, q[0], got, want)
			}
		}
	}
	_, errOut, code = c.run("ec2", "delete-volume", "--volume-id", vol)
	if code == 0 || !strings.Contains(errOut, "VolumeInUse") {
		t.Fatalf("deleting an attached volume: exit %d %s", code, errOut)
	}
	c.ok("ec2", "terminate-instances", "--instance-ids", id)
	c.ok("ec2", "wait", "instance-terminated", "--instance-ids", id)
	c.ok("ec2", "wait", "volume-available", "--volume-ids", vol, restored)
	c.ok("ec2", "delete-volume", "--volume-id", vol)
	c.ok("ec2", "delete-volume", "--volume-id", restored)
	c.ok("ec2", "delete-snapshot", "--snapshot-id", snap)
}
