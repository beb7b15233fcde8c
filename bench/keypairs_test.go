package bench

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/nubis/nubis/internal/server"
	"github.com/nubis/nubis/internal/server/servertest"
)

// keyPairs is how many key pairs DescribeKeyPairs returns.
const keyPairs = 10

// startWithKeyPairs starts a server and creates keyPairs ed25519 key pairs in it.
func startWithKeyPairs(b *testing.B) *servertest.Server {
	s := servertest.Start(b, "")
	c := ec2.NewFromConfig(s.Config(b, nil))
	for i := range keyPairs {
		_, err := c.CreateKeyPair(b.Context(), &ec2.CreateKeyPairInput{
			KeyName: aws.String(fmt.Sprintf("bench-%02d", i)), KeyType: types.KeyTypeEd25519,
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// BenchmarkDescribeKeyPairs is the target: DescribeKeyPairs of 10 key pairs through the
// aws-sdk-go-v2 EC2 client (signed with SigV4 by the SDK), sequential over one connection.
func BenchmarkDescribeKeyPairs(b *testing.B) {
	s := startWithKeyPairs(b)
	cfg, dials := sdkConfig(b, s)
	c := ec2.NewFromConfig(cfg)
	measure(b, dials, func() error {
		out, err := c.DescribeKeyPairs(b.Context(), &ec2.DescribeKeyPairsInput{})
		if err != nil {
			return err
		}
		if len(out.KeyPairs) != keyPairs {
			return fmt.Errorf("DescribeKeyPairs returned %d key pairs, want %d", len(out.KeyPairs), keyPairs)
		}
		return nil
	})
}

// BenchmarkDescribeKeyPairsHandSigned is the same call without the SDK client: a hand-built
// request signed with the SDK's SigV4 signer, whose XML answer is not decoded but only has its key
// names counted. Its difference from BenchmarkDescribeKeyPairs is the SDK client's own cost.
func BenchmarkDescribeKeyPairsHandSigned(b *testing.B) {
	s := startWithKeyPairs(b)
	hc, dials := oneConnClient()
	creds := aws.Credentials{AccessKeyID: s.Key.ID, SecretAccessKey: s.Key.Secret}
	signer := v4.NewSigner()
	const body = "Action=DescribeKeyPairs&Version=2016-11-15"
	sum := sha256.Sum256([]byte(body))
	hash := hex.EncodeToString(sum[:])
	url := s.Endpoint() + "/"
	measure(b, dials, func() error {
		req, err := http.NewRequestWithContext(b.Context(), http.MethodPost, url, strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		if err := signer.SignHTTP(b.Context(), creds, req, hash, "ec2", server.DefaultRegion, time.Now()); err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("DescribeKeyPairs: %s: %s", resp.Status, data)
		}
		if n := bytes.Count(data, []byte("<keyName>")); n != keyPairs {
			return fmt.Errorf("DescribeKeyPairs returned %d key names, want %d", n, keyPairs)
		}
		return nil
	})
}
