package server_test

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"golang.org/x/crypto/ssh"

	"github.com/nubis/nubis/internal/server/servertest"
)

func ec2Client(t *testing.T, s *servertest.Server) *ec2.Client {
	return ec2.NewFromConfig(s.Config(t, nil))
}

// wantAPIError fails unless err is the AWS error code with the HTTP status.
func wantAPIError(t *testing.T, err error, code string, status int) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("got %v, want API error %s", err, code)
	}
	if ae.ErrorCode() != code {
		t.Fatalf("got error %s (%s), want %s", ae.ErrorCode(), ae.ErrorMessage(), code)
	}
	var re *smithyhttp.ResponseError
	if status != 0 && errors.As(err, &re) && re.HTTPStatusCode() != status {
		t.Fatalf("%s: HTTP status %d, want %d", code, re.HTTPStatusCode(), status)
	}
}

func keyNames(t *testing.T, c *ec2.Client) []string {
	t.Helper()
	out, err := c.DescribeKeyPairs(context.Background(), &ec2.DescribeKeyPairsInput{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, kp := range out.KeyPairs {
		names = append(names, *kp.KeyName)
	}
	sort.Strings(names)
	return names
}

func TestCreateKeyPairTypesAndFormats(t *testing.T) {
	s := servertest.Start(t, "")
	c := ec2Client(t, s)
	ctx := context.Background()
	tests := []struct {
		typ    types.KeyType
		format types.KeyFormat
		header string
	}{
		{"", "", "-----BEGIN RSA PRIVATE KEY-----"},
		{types.KeyTypeRsa, types.KeyFormatPem, "-----BEGIN RSA PRIVATE KEY-----"},
		{types.KeyTypeEd25519, types.KeyFormatPem, "-----BEGIN OPENSSH PRIVATE KEY-----"},
		{types.KeyTypeRsa, types.KeyFormatPpk, "PuTTY-User-Key-File-"},
		{types.KeyTypeEd25519, types.KeyFormatPpk, "PuTTY-User-Key-File-"},
	}
	for i, tc := range tests {
		name := fmt.Sprintf("key-%d-%s-%s", i, tc.typ, tc.format)
		t.Run(name, func(t *testing.T) {
			out, err := c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String(name), KeyType: tc.typ, KeyFormat: tc.format})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(*out.KeyMaterial, tc.header) {
				t.Fatalf("key material starts %q, want %q", (*out.KeyMaterial)[:30], tc.header)
			}
			if !strings.HasPrefix(*out.KeyPairId, "key-") || len(*out.KeyPairId) != 21 {
				t.Fatalf("key pair id %q", *out.KeyPairId)
			}
			d, err := c.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{name}, IncludePublicKey: aws.Bool(true)})
			if err != nil {
				t.Fatal(err)
			}
			kp := d.KeyPairs[0]
			if *kp.KeyFingerprint != *out.KeyFingerprint || *kp.KeyPairId != *out.KeyPairId || kp.CreateTime == nil {
				t.Fatalf("describe %+v does not match create %+v", kp, out)
			}
			wantType := tc.typ
			if wantType == "" {
				wantType = types.KeyTypeRsa
			}
			if kp.KeyType != wantType {
				t.Fatalf("key type %q, want %q", kp.KeyType, wantType)
			}
			if tc.format == types.KeyFormatPpk {
				return
			}
			// The fingerprint, computed here independently of nubis.
			priv, err := ssh.ParseRawPrivateKey([]byte(*out.KeyMaterial))
			if err != nil {
				t.Fatal(err)
			}
			signer, _ := ssh.NewSignerFromKey(priv)
			var want string
			switch k := priv.(type) {
			case *rsa.PrivateKey:
				der, _ := x509.MarshalPKCS8PrivateKey(k)
				want = colonHex(sha1Sum(der))
			default:
				sum := sha256.Sum256(signer.PublicKey().Marshal())
				want = base64.StdEncoding.EncodeToString(sum[:])
			}
			if *out.KeyFingerprint != want {
				t.Fatalf("fingerprint %s, want %s", *out.KeyFingerprint, want)
			}
			pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(*kp.PublicKey))
			if err != nil || string(pub.Marshal()) != string(signer.PublicKey().Marshal()) {
				t.Fatalf("DescribeKeyPairs PublicKey %q does not match the private key (%v)", *kp.PublicKey, err)
			}
		})
	}
}

func sha1Sum(b []byte) []byte { s := sha1.Sum(b); return s[:] }

func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02x", c)
	}
	return strings.Join(parts, ":")
}

func TestCreateKeyPairErrors(t *testing.T) {
	s := servertest.Start(t, "")
	c := ec2Client(t, s)
	ctx := context.Background()
	if _, err := c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("k")}); err != nil {
		t.Fatal(err)
	}
	_, err := c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("k"), KeyType: types.KeyTypeEd25519})
	wantAPIError(t, err, "InvalidKeyPair.Duplicate", 400)
	_, err = c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("x"), KeyType: "dsa"})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	_, err = c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("x"), KeyFormat: "der"})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	_, err = c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String(strings.Repeat("a", 256))})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	_, err = c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("schlüssel")})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	_, err = c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("x"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{{Key: aws.String("a"), Value: aws.String("b")}}}}})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	_, err = c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("x"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeKeyPair, Tags: []types.Tag{{Key: aws.String("aws:x"), Value: aws.String("b")}}}}})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	_, err = c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("x"), DryRun: aws.Bool(true)})
	wantAPIError(t, err, "DryRunOperation", 412)
	// The SDKs refuse to send a request without KeyName; a hand-made one gets MissingParameter.
	r := s.Do(t, servertest.Raw{Body: "Action=CreateKeyPair&Version=2016-11-15"})
	if r.Status != 400 || !strings.Contains(r.Body, "<Code>MissingParameter</Code>") {
		t.Fatalf("CreateKeyPair without KeyName: %d %s", r.Status, r.Body)
	}
	if got := fmt.Sprint(keyNames(t, c)); got != "[k]" {
		t.Fatalf("after refused creates, key pairs are %s, want [k]", got)
	}
}

func TestImportKeyPair(t *testing.T) {
	s := servertest.Start(t, "")
	c := ec2Client(t, s)
	ctx := context.Background()

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaPub, _ := ssh.NewPublicKey(&rsaKey.PublicKey)
	pkix, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	md := md5.Sum(pkix)
	out, err := c.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String("imported-rsa"),
		PublicKeyMaterial: ssh.MarshalAuthorizedKey(rsaPub),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeKeyPair,
			Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("ml")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := colonHex(md[:]); *out.KeyFingerprint != want {
		t.Fatalf("imported RSA fingerprint %s, want %s (MD5 of the DER public key)", *out.KeyFingerprint, want)
	}
	if len(out.Tags) != 1 || *out.Tags[0].Key != "team" {
		t.Fatalf("tags %+v", out.Tags)
	}

	edPub, _, _, _, err := ssh.ParseAuthorizedKey([]byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHjG/LKW5P0lTDSJt3C6xl5CvAqEvdMBhwEzaHiM3SVE test@host"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(edPub.Marshal())
	out, err = c.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String("imported-ed"),
		PublicKeyMaterial: []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHjG/LKW5P0lTDSJt3C6xl5CvAqEvdMBhwEzaHiM3SVE test@host\n")})
	if err != nil {
		t.Fatal(err)
	}
	if want := base64.StdEncoding.EncodeToString(sum[:]); *out.KeyFingerprint != want {
		t.Fatalf("imported ed25519 fingerprint %s, want %s", *out.KeyFingerprint, want)
	}
	d, err := c.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{"imported-ed"}})
	if err != nil || d.KeyPairs[0].KeyType != types.KeyTypeEd25519 {
		t.Fatalf("describe imported ed25519: %+v %v", d, err)
	}

	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallPub, _ := ssh.NewPublicKey(&small.PublicKey)
	for name, material := range map[string][]byte{
		"garbage":   []byte("not a key"),
		"rsa-1024":  ssh.MarshalAuthorizedKey(smallPub),
		"truncated": []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHjG/LKW5P0lTDSJt3C6xl5C"),
	} {
		_, err := c.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String(name), PublicKeyMaterial: material})
		wantAPIError(t, err, "InvalidKey.Format", 400)
	}
	_, err = c.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String("imported-rsa"), PublicKeyMaterial: ssh.MarshalAuthorizedKey(rsaPub)})
	wantAPIError(t, err, "InvalidKeyPair.Duplicate", 400)
	r := s.Do(t, servertest.Raw{Body: "Action=ImportKeyPair&Version=2016-11-15&KeyName=nokey"})
	if r.Status != 400 || !strings.Contains(r.Body, "<Code>MissingParameter</Code>") {
		t.Fatalf("ImportKeyPair without material: %d %s", r.Status, r.Body)
	}
	r = s.Do(t, servertest.Raw{Body: "Action=ImportKeyPair&Version=2016-11-15&KeyName=bad64&PublicKeyMaterial=%%%"})
	if r.Status != 400 || !strings.Contains(r.Body, "<Code>InvalidParameterValue</Code>") {
		t.Fatalf("ImportKeyPair with malformed encoding: %d %s", r.Status, r.Body)
	}
	if got := fmt.Sprint(keyNames(t, c)); got != "[imported-ed imported-rsa]" {
		t.Fatalf("key pairs %s", got)
	}
}

func TestDescribeKeyPairsFilters(t *testing.T) {
	s := servertest.Start(t, "")
	c := ec2Client(t, s)
	ctx := context.Background()
	ids := map[string]string{}
	fps := map[string]string{}
	for _, n := range []string{"web-1", "web-2", "db-1"} {
		tags := []types.Tag{{Key: aws.String("role"), Value: aws.String(strings.Split(n, "-")[0])}}
		if n == "db-1" {
			tags = append(tags, types.Tag{Key: aws.String("backup"), Value: aws.String("")})
		}
		out, err := c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String(n), KeyType: types.KeyTypeEd25519,
			TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeKeyPair, Tags: tags}}})
		if err != nil {
			t.Fatal(err)
		}
		ids[n], fps[n] = *out.KeyPairId, *out.KeyFingerprint
	}
	f := func(name string, values ...string) types.Filter {
		return types.Filter{Name: aws.String(name), Values: values}
	}
	tests := []struct {
		in   ec2.DescribeKeyPairsInput
		want string
	}{
		{ec2.DescribeKeyPairsInput{}, "[db-1 web-1 web-2]"},
		{ec2.DescribeKeyPairsInput{KeyNames: []string{"web-2", "db-1"}}, "[db-1 web-2]"},
		{ec2.DescribeKeyPairsInput{KeyPairIds: []string{ids["web-1"]}}, "[web-1]"},
		{ec2.DescribeKeyPairsInput{Filters: []types.Filter{f("key-name", "web-*")}}, "[web-1 web-2]"},
		{ec2.DescribeKeyPairsInput{Filters: []types.Filter{f("key-name", "?b-1", "web-2")}}, "[db-1 web-2]"},
		{ec2.DescribeKeyPairsInput{Filters: []types.Filter{f("key-pair-id", ids["db-1"])}}, "[db-1]"},
		{ec2.DescribeKeyPairsInput{Filters: []types.Filter{f("fingerprint", fps["web-2"])}}, "[web-2]"},
		{ec2.DescribeKeyPairsInput{Filters: []types.Filter{f("tag:role", "web")}}, "[web-1 web-2]"},
		{ec2.DescribeKeyPairsInput{Filters: []types.Filter{f("tag-key", "backup")}}, "[db-1]"},
		{ec2.DescribeKeyPairsInput{Filters: []types.Filter{f("tag:role", "web"), f("key-name", "*2")}}, "[web-2]"},
		{ec2.DescribeKeyPairsInput{Filters: []types.Filter{f("key-name", "nothing*")}}, "[]"},
	}
	for _, tc := range tests {
		out, err := c.DescribeKeyPairs(ctx, &tc.in)
		if err != nil {
			t.Fatalf("%+v: %v", tc.in, err)
		}
		var names []string
		for _, kp := range out.KeyPairs {
			names = append(names, *kp.KeyName)
			if kp.PublicKey != nil {
				t.Fatalf("PublicKey returned without IncludePublicKey")
			}
		}
		if got := fmt.Sprint(names); got != tc.want {
			t.Errorf("DescribeKeyPairs(%+v) = %s, want %s", tc.in, got, tc.want)
		}
	}
	_, err := c.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{"web-1", "nope"}})
	wantAPIError(t, err, "InvalidKeyPair.NotFound", 400)
	_, err = c.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyPairIds: []string{"key-0123456789abcdef0"}})
	wantAPIError(t, err, "InvalidKeyPair.NotFound", 400)
	_, err = c.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{Filters: []types.Filter{f("colour", "red")}})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	_, err = c.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{DryRun: aws.Bool(true)})
	wantAPIError(t, err, "DryRunOperation", 412)
}

func TestDeleteKeyPair(t *testing.T) {
	s := servertest.Start(t, "")
	c := ec2Client(t, s)
	ctx := context.Background()
	a, err := c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("a"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeKeyPair, Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("b"), KeyType: types.KeyTypeEd25519}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyName: aws.String("b"), DryRun: aws.Bool(true)})
	wantAPIError(t, err, "DryRunOperation", 412)
	if _, err := c.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyPairId: a.KeyPairId}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyName: aws.String("b")}); err != nil {
		t.Fatal(err)
	}
	// Deleting what does not exist succeeds, as on AWS.
	if _, err := c.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyName: aws.String("b")}); err != nil {
		t.Fatalf("deleting a missing key pair: %v", err)
	}
	if _, err := c.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyPairId: aws.String("key-0123456789abcdef0")}); err != nil {
		t.Fatalf("deleting a missing key pair id: %v", err)
	}
	if got := keyNames(t, c); len(got) != 0 {
		t.Fatalf("key pairs left: %v", got)
	}
	tags, err := c.DescribeTags(ctx, &ec2.DescribeTagsInput{})
	if err != nil || len(tags.Tags) != 0 {
		t.Fatalf("tags of a deleted key pair remain: %+v %v", tags, err)
	}
	// The name is free again.
	if _, err := c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("a")}); err != nil {
		t.Fatal(err)
	}
	r := s.Do(t, servertest.Raw{Body: "Action=DeleteKeyPair&Version=2016-11-15"})
	if r.Status != 400 || !strings.Contains(r.Body, "<Code>MissingParameter</Code>") {
		t.Fatalf("DeleteKeyPair without name or id: %d %s", r.Status, r.Body)
	}
}
