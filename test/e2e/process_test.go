package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/nubis/nubis/internal/server/servertest"
)

func ec2Client(vars map[string]string) *ec2.Client {
	return ec2.New(ec2.Options{
		Region:           vars["AWS_REGION"],
		BaseEndpoint:     aws.String(vars["AWS_ENDPOINT_URL"]),
		Credentials:      credentials.NewStaticCredentialsProvider(vars["AWS_ACCESS_KEY_ID"], vars["AWS_SECRET_ACCESS_KEY"], ""),
		RetryMaxAttempts: 1,
		// The SDK's keep-alive race (see servertest.HTTPClient) would fail a few calls.
		HTTPClient: servertest.HTTPClient(),
	})
}

// TestSIGKILLLosesNothingCommitted kills the server with SIGKILL while clients are creating key
// pairs, restarts it, and checks that every key pair whose creation was acknowledged, and the
// credentials, survived. Three rounds on one data dir.
func TestSIGKILLLosesNothingCommitted(t *testing.T) {
	dataDir := t.TempDir()
	var acked []string
	var firstVars map[string]string
	for round := 0; round < 3; round++ {
		srv := startServer(t, dataDir)
		vars := env(t, dataDir)
		if firstVars == nil {
			firstVars = vars
		} else if vars["AWS_ACCESS_KEY_ID"] != firstVars["AWS_ACCESS_KEY_ID"] || vars["AWS_SECRET_ACCESS_KEY"] != firstVars["AWS_SECRET_ACCESS_KEY"] {
			t.Fatalf("round %d: credentials changed across a SIGKILL", round)
		}
		c := ec2Client(vars)
		// Everything acknowledged before is still there.
		out, err := c.DescribeKeyPairs(context.Background(), &ec2.DescribeKeyPairsInput{})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		have := map[string]bool{}
		for _, kp := range out.KeyPairs {
			have[*kp.KeyName] = true
		}
		for _, n := range acked {
			if !have[n] {
				t.Fatalf("round %d: key pair %s was acknowledged before SIGKILL and is gone", round, n)
			}
		}
		// Four writers create key pairs until the server dies under them.
		var mu sync.Mutex
		var wg sync.WaitGroup
		okCount := 0
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					name := fmt.Sprintf("r%d-w%d-%d", round, w, i)
					_, err := c.CreateKeyPair(context.Background(), &ec2.CreateKeyPairInput{KeyName: aws.String(name), KeyType: types.KeyTypeEd25519})
					if err != nil {
						return // the server is gone
					}
					mu.Lock()
					acked = append(acked, name)
					okCount++
					mu.Unlock()
				}
			}()
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			n := okCount
			mu.Unlock()
			if n >= 20 || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		srv.cmd.Process.Kill()
		wg.Wait()
		<-srv.done
		if okCount == 0 {
			t.Fatalf("round %d: no write succeeded before the kill", round)
		}
	}
	srv := startServer(t, dataDir)
	_ = srv
	out, err := ec2Client(env(t, dataDir)).DescribeKeyPairs(context.Background(), &ec2.DescribeKeyPairsInput{})
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, kp := range out.KeyPairs {
		have[*kp.KeyName] = true
	}
	for _, n := range acked {
		if !have[n] {
			t.Fatalf("key pair %s was acknowledged and is gone after the last restart", n)
		}
	}
	t.Logf("%d acknowledged key pairs all survived 3 SIGKILLs", len(acked))
}

// TestGracefulStop sends SIGTERM while a request is in flight: the request completes, the server
// exits 0, removes its runtime file and releases the data dir.
func TestGracefulStop(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			dataDir := t.TempDir()
			srv := startServer(t, dataDir)
			vars := env(t, dataDir)
			body := "Action=CreateKeyPair&Version=2016-11-15&KeyName=inflight&KeyType=ed25519"
			req, _ := http.NewRequest("POST", srv.endpoint+"/", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			sum := sha256.Sum256([]byte(body))
			err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: vars["AWS_ACCESS_KEY_ID"],
				SecretAccessKey: vars["AWS_SECRET_ACCESS_KEY"]}, req, hex.EncodeToString(sum[:]), "ec2", "us-east-1", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			// Send the headers and half the body, then signal, then the rest.
			conn, err := net.Dial("tcp", strings.TrimPrefix(srv.endpoint, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var head strings.Builder
			fmt.Fprintf(&head, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", req.Host, len(body))
			for k, vs := range req.Header {
				fmt.Fprintf(&head, "%s: %s\r\n", k, vs[0])
			}
			head.WriteString("\r\n")
			io.WriteString(conn, head.String()+body[:10])
			time.Sleep(200 * time.Millisecond)
			srv.cmd.Process.Signal(sig)
			time.Sleep(300 * time.Millisecond)
			io.WriteString(conn, body[10:])
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("in-flight request was not answered: %v", err)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || !strings.Contains(string(b), "<keyName>inflight</keyName>") {
				t.Fatalf("in-flight request: %d %s", resp.StatusCode, b)
			}
			select {
			case <-srv.done:
				if err := srv.err; err != nil {
					t.Fatalf("exit: %v\n%s", err, srv.logs)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("server did not exit")
			}
			if _, err := os.Stat(filepath.Join(dataDir, "server.json")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("server.json left behind: %v", err)
			}
			if !strings.Contains(srv.logs.String(), `"msg":"stopped"`) {
				t.Fatalf("no clean stop in the log:\n%s", srv.logs)
			}
			// The data dir is free again, and the in-flight write was committed.
			startServer(t, dataDir)
			out, err := ec2Client(env(t, dataDir)).DescribeKeyPairs(context.Background(), &ec2.DescribeKeyPairsInput{KeyNames: []string{"inflight"}})
			if err != nil || len(out.KeyPairs) != 1 {
				t.Fatalf("in-flight key pair after restart: %v", err)
			}
		})
	}
}

func TestSecondServerRefused(t *testing.T) {
	dataDir := t.TempDir()
	startServer(t, dataDir)
	out, err := exec.Command(nubisBin, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("second server: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "already running with data dir "+dataDir) {
		t.Fatalf("second server's message is not clear: %s", out)
	}
}

func TestDataDirPermissions(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "new")
	srv := startServer(t, dataDir)
	env(t, dataDir)
	for _, f := range []string{"", "nubis.db", "nubis.db-wal", "nubis.db-shm", "nubis.lock", "server.json"} {
		st, err := os.Stat(filepath.Join(dataDir, f))
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o600)
		if f == "" {
			want = 0o700
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", filepath.Join(dataDir, f), st.Mode().Perm(), want)
		}
	}
	if err := srv.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, 0, "nubis serve [flags]"},
		{[]string{"help", "serve"}, 0, "--listen"},
		{[]string{"serve", "--help"}, 0, "--data-dir"},
		{[]string{"env", "--help"}, 0, "AWS_ENDPOINT_URL"},
		{[]string{"version"}, 0, "nubis "},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"serve", "--log-format", "xml"}, 2, "--log-format must be text or json"},
		{[]string{}, 2, "Usage:"},
		{[]string{"serve", "--region", "mars"}, 2, "not an AWS region name"},
	} {
		out, err := exec.Command(nubisBin, tc.args...).CombinedOutput()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		if code != tc.code || !strings.Contains(string(out), tc.want) {
			t.Errorf("nubis %v: exit %d, output %q; want exit %d and %q", tc.args, code, out, tc.code, tc.want)
		}
	}
}
