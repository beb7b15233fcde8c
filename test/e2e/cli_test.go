package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// awsCLIs returns the aws CLIs to test: Debian's v2 at /usr/bin/aws (required), and a different aws
// earlier on PATH (often v1) when there is one.
func awsCLIs(t *testing.T) map[string]string {
	clis := map[string]string{}
	if _, err := os.Stat("/usr/bin/aws"); err == nil {
		clis["v2 /usr/bin/aws"] = "/usr/bin/aws"
	} else {
		needDebianAWS(t)
	}
	if p, err := exec.LookPath("aws"); err == nil {
		if real, _ := filepath.EvalSymlinks(p); real != "/usr/bin/aws" && p != "/usr/bin/aws" {
			clis["PATH "+p] = p
		}
	}
	if len(clis) == 0 {
		t.Skip("no aws CLI installed (make deps installs Debian's awscli)")
	}
	return clis
}

// cli runs one aws CLI command in a clean environment: only `nubis env`'s variables (so no
// ~/.aws of the machine counts) and --endpoint-url, which Debian's CLI v2.9 needs because it
// predates AWS_ENDPOINT_URL.
type cli struct {
	t    *testing.T
	bin  string
	env  map[string]string
	home string
}

func (c cli) run(args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	cmd := exec.Command(c.bin, append([]string{"--endpoint-url", c.env["AWS_ENDPOINT_URL"]}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + c.home, "LANG=C.UTF-8"}
	for k, v := range c.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("running %s: %v", c.bin, err)
	}
	return out.String(), errb.String(), code
}

func (c cli) ok(args ...string) string {
	c.t.Helper()
	out, errOut, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("aws %s: exit %d\n%s", strings.Join(args, " "), code, errOut)
	}
	return out
}

func TestAWSCLI(t *testing.T) {
	sshKeygen := need(t, "ssh-keygen")
	dataDir := t.TempDir()
	srv := startServer(t, dataDir)
	vars := env(t, dataDir)
	if vars["AWS_ENDPOINT_URL"] != srv.endpoint || vars["AWS_REGION"] != "us-east-1" || vars["AWS_DEFAULT_REGION"] != "us-east-1" {
		t.Fatalf("nubis env: %v (server at %s)", vars, srv.endpoint)
	}
	for name, bin := range awsCLIs(t) {
		t.Run(name, func(t *testing.T) {
			c := cli{t: t, bin: bin, env: vars, home: t.TempDir()}
			t.Log(c.ok("--version"))
			var id struct{ Account, Arn, UserId string }
			if err := json.Unmarshal([]byte(c.ok("sts", "get-caller-identity", "--output", "json")), &id); err != nil {
				t.Fatal(err)
			}
			if len(id.Account) != 12 || id.Arn != "arn:aws:iam::"+id.Account+":root" {
				t.Fatalf("get-caller-identity: %+v", id)
			}

			// The walkthrough: save the private key, ssh-keygen derives its public key.
			dir := t.TempDir()
			pem := filepath.Join(dir, "k.pem")
			material := c.ok("ec2", "create-key-pair", "--key-name", "k", "--query", "KeyMaterial", "--output", "text")
			if err := os.WriteFile(pem, []byte(material), 0o400); err != nil {
				t.Fatal(err)
			}
			pub, err := exec.Command(sshKeygen, "-y", "-f", pem).CombinedOutput()
			if err != nil {
				t.Fatalf("ssh-keygen -y refused the key: %v\n%s", err, pub)
			}
			described := strings.TrimSpace(c.ok("ec2", "describe-key-pairs", "--key-names", "k", "--include-public-key",
				"--query", "KeyPairs[0].PublicKey", "--output", "text"))
			if !strings.HasPrefix(described, strings.TrimSpace(string(pub))) {
				t.Fatalf("DescribeKeyPairs public key %q is not ssh-keygen's %q", described, pub)
			}

			// Import the public key back under another name, as a file the CLI base64-encodes.
			pubFile := filepath.Join(dir, "k.pub")
			os.WriteFile(pubFile, pub, 0o644)
			fp := strings.TrimSpace(c.ok("ec2", "import-key-pair", "--key-name", "k-imported",
				"--public-key-material", "fileb://"+pubFile, "--query", "KeyFingerprint", "--output", "text"))
			if strings.Count(fp, ":") != 15 {
				t.Fatalf("imported RSA fingerprint %q is not colon-separated MD5", fp)
			}

			// Errors come back as the CLI shows AWS's: code, operation, message, non-zero exit.
			_, errOut, code := c.run("ec2", "create-key-pair", "--key-name", "k")
			if code == 0 || !strings.Contains(errOut, "(InvalidKeyPair.Duplicate) when calling the CreateKeyPair operation") {
				t.Fatalf("duplicate create: exit %d, %s", code, errOut)
			}
			_, errOut, code = c.run("ec2", "describe-key-pairs", "--key-names", "nope")
			if code == 0 || !strings.Contains(errOut, "InvalidKeyPair.NotFound") {
				t.Fatalf("describe missing: exit %d, %s", code, errOut)
			}
			_, errOut, code = c.run("ec2", "create-key-pair", "--key-name", "dry", "--dry-run")
			if code == 0 || !strings.Contains(errOut, "DryRunOperation") {
				t.Fatalf("dry run: exit %d, %s", code, errOut)
			}
			c.ok("ec2", "create-tags", "--resources", strings.TrimSpace(c.ok("ec2", "describe-key-pairs", "--key-names", "k",
				"--query", "KeyPairs[0].KeyPairId", "--output", "text")), "--tags", "Key=project,Value=mean")
			if got := strings.TrimSpace(c.ok("ec2", "describe-key-pairs", "--filters", "Name=tag:project,Values=mean",
				"--query", "KeyPairs[].KeyName", "--output", "text")); got != "k" {
				t.Fatalf("filtered by tag: %q", got)
			}
			c.ok("ec2", "delete-key-pair", "--key-name", "k")
			c.ok("ec2", "delete-key-pair", "--key-name", "k-imported")
			c.ok("ec2", "delete-key-pair", "--key-name", "k") // missing: succeeds, as on AWS
			if got := strings.TrimSpace(c.ok("ec2", "describe-key-pairs", "--query", "length(KeyPairs)", "--output", "text")); got != "0" {
				t.Fatalf("key pairs left: %s", got)
			}
			// A wrong secret is refused.
			bad := cli{t: t, bin: bin, env: map[string]string{}, home: c.home}
			for k, v := range vars {
				bad.env[k] = v
			}
			bad.env["AWS_SECRET_ACCESS_KEY"] = strings.Repeat("z", 40)
			_, errOut, code = bad.run("sts", "get-caller-identity")
			if code == 0 || !strings.Contains(errOut, "SignatureDoesNotMatch") {
				t.Fatalf("wrong secret: exit %d, %s", code, errOut)
			}
		})
	}
}

// TestEvalEnv follows the README literally: eval "$(nubis env)" in a shell, then the aws CLI.
func TestEvalEnv(t *testing.T) {
	need(t, "bash")
	clis := awsCLIs(t)
	dataDir := t.TempDir()
	startServer(t, dataDir)
	for name, bin := range clis {
		script := `eval "$("$NUBIS" env --data-dir "$DATA")" && "$AWS" --endpoint-url "$AWS_ENDPOINT_URL" sts get-caller-identity --query Account --output text`
		cmd := exec.Command("bash", "-c", script)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "NUBIS=" + nubisBin, "DATA=" + dataDir, "AWS=" + bin}
		out, err := cmd.CombinedOutput()
		if err != nil || len(strings.TrimSpace(string(out))) != 12 {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
	}
}
