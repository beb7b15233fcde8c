package servertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Raw describes a hand-made API request, for what the SDKs refuse to send (missing parameters,
// unknown actions, stale signatures). Zero fields take the server's defaults.
type Raw struct {
	Method      string // default POST
	Path        string // default "/"
	Query       string // raw query string
	Body        string
	ContentType string // default form encoding when Body is set
	Header      http.Header
	Service     string // signing name, default "ec2"
	Region      string // default us-east-1
	KeyID       string // default the admin key
	Secret      string // default the admin key's secret
	SignedAt    time.Time
	// PayloadHash is the payload hash to sign with (default: the body's SHA-256).
	PayloadHash string
	// Unsigned sends the request without any signature.
	Unsigned bool
	// Presign puts the signature in the query string, valid for Expires.
	Presign bool
	Expires time.Duration
}

// Response is what the server answered.
type Response struct {
	Status int
	Header http.Header
	Body   string
}

// Do signs (unless Unsigned) and sends r, and returns the response.
func (s *Server) Do(tb testing.TB, r Raw) Response {
	tb.Helper()
	if r.Method == "" {
		r.Method = http.MethodPost
	}
	if r.Path == "" {
		r.Path = "/"
	}
	if r.Service == "" {
		r.Service = "ec2"
	}
	if r.Region == "" {
		r.Region = "us-east-1"
	}
	if r.KeyID == "" {
		r.KeyID, r.Secret = s.Key.ID, s.Key.Secret
	}
	if r.SignedAt.IsZero() {
		r.SignedAt = time.Now()
	}
	u := s.Endpoint() + r.Path
	if r.Query != "" {
		u += "?" + r.Query
	}
	req, err := http.NewRequest(r.Method, u, strings.NewReader(r.Body))
	if err != nil {
		tb.Fatal(err)
	}
	for k, vs := range r.Header {
		req.Header[k] = vs
	}
	if r.Body != "" && r.ContentType == "" {
		r.ContentType = "application/x-www-form-urlencoded; charset=utf-8"
	}
	if r.ContentType != "" {
		req.Header.Set("Content-Type", r.ContentType)
	}
	if !r.Unsigned {
		sum := sha256.Sum256([]byte(r.Body))
		hash := hex.EncodeToString(sum[:])
		if r.PayloadHash != "" {
			hash = r.PayloadHash
		}
		creds := aws.Credentials{AccessKeyID: r.KeyID, SecretAccessKey: r.Secret}
		signer := v4.NewSigner()
		if r.Presign {
			if r.Expires == 0 {
				r.Expires = 15 * time.Minute
			}
			q := req.URL.Query()
			q.Set("X-Amz-Expires", strconv.Itoa(int(r.Expires/time.Second)))
			req.URL.RawQuery = q.Encode()
			signed, _, err := signer.PresignHTTP(context.Background(), creds, req, hash,
				r.Service, r.Region, r.SignedAt)
			if err != nil {
				tb.Fatal(err)
			}
			pu, err := url.Parse(signed)
			if err != nil {
				tb.Fatal(err)
			}
			req.URL = pu
		} else if err := signer.SignHTTP(context.Background(), creds, req, hash,
			r.Service, r.Region, r.SignedAt); err != nil {
			tb.Fatal(err)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: string(bytes.TrimSpace(b))}
}
