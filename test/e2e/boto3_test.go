package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

const boto3Script = `
import os, boto3, botocore
ep = os.environ["AWS_ENDPOINT_URL"]
sts = boto3.client("sts", endpoint_url=ep)
ident = sts.get_caller_identity()
assert ident["Arn"] == "arn:aws:iam::%s:root" % ident["Account"], ident
ec2 = boto3.client("ec2", endpoint_url=ep)
kp = ec2.create_key_pair(KeyName="py", KeyType="ed25519",
    TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "lang", "Value": "python"}]}])
assert kp["KeyMaterial"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----"), kp
pairs = ec2.describe_key_pairs(Filters=[{"Name": "tag:lang", "Values": ["py*"]}])["KeyPairs"]
assert [p["KeyName"] for p in pairs] == ["py"], pairs
try:
    ec2.describe_key_pairs(KeyNames=["missing"])
    raise SystemExit("no error for a missing key pair")
except botocore.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "InvalidKeyPair.NotFound", e.response
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400
ec2.delete_key_pair(KeyName="py")
print("ok", boto3.__version__)
`

// TestBoto3 drives nubis with Debian's boto3, as a data scientist's notebook would.
func TestBoto3(t *testing.T) {
	python := "/usr/bin/python3"
	needBoto3(t)
	dataDir := t.TempDir()
	startServer(t, dataDir)
	cmd := exec.Command(python, "-c", boto3Script)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env(t, dataDir) {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "ok ") {
		t.Fatalf("boto3: %v\n%s", err, out)
	}
	t.Log(strings.TrimSpace(string(out)))
}
