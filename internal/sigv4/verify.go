package sigv4

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// KeyLookup returns the secret key of an access key id, or an error
// wrapping ErrUnknownKey when there is no such key.
type KeyLookup interface {
	SecretKey(ctx context.Context, accessKeyID string) (string, error)
}

// ErrUnknownKey is wrapped by KeyLookup errors for access key ids that do
// not exist.
var ErrUnknownKey = errors.New("unknown access key")

// DefaultMaxSkew is the clock skew AWS tolerates between a request's signing
// time and its own clock.
const DefaultMaxSkew = 15 * time.Minute

// Verifier verifies signed requests. Its fields must not change once it is
// in use; it is then safe for concurrent use.
type Verifier struct {
	Keys    KeyLookup        // required
	Region  string           // the only region accepted in the scope
	Now     func() time.Time // nil means time.Now
	MaxSkew time.Duration    // 0 means DefaultMaxSkew
}

// Result describes a verified request.
type Result struct {
	Scope     Scope
	SignedAt  time.Time
	Presigned bool
}

// Verify checks r's signature. body is the complete request body, which the
// caller has read; Verify does not read r.Body.
//
// A failed verification is reported as an *Error. Any other error is a
// failure of Keys to look the access key up.
func (v *Verifier) Verify(ctx context.Context, r *http.Request, body []byte) (*Result, error) {
	s, perr := parseSignature(r)
	if perr != nil {
		return nil, perr
	}
	if s.scope.Region != v.Region {
		return nil, newError(WrongRegion, msgWrongRegion)
	}
	if err := v.checkTime(s); err != nil {
		return nil, err
	}
	secret, err := v.Keys.SecretKey(ctx, s.scope.AccessKeyID)
	if errors.Is(err, ErrUnknownKey) {
		return nil, &Error{Kind: UnknownKey, Message: msgUnknownKey, cause: err}
	}
	if err != nil {
		return nil, fmt.Errorf("sigv4: looking up access key %s: %w", s.scope.AccessKeyID, err)
	}

	payloads, bodyOK, perr := payloadHashes(r, body, s.presigned)
	if perr != nil {
		return nil, perr
	}
	if !s.matches(r, signingKeys.get(secret, s.scope), payloads) {
		return nil, newError(Mismatch, msgMismatch)
	}
	// The signature covers the declared hash, so a body that does not
	// match it is reported only for an otherwise good request.
	if !bodyOK {
		return nil, newError(BadContentHash, msgBadContentHash)
	}
	return &Result{Scope: s.scope, SignedAt: s.signedAt, Presigned: s.presigned}, nil
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now().UTC()
	}
	return time.Now().UTC()
}

func (v *Verifier) maxSkew() time.Duration {
	if v.MaxSkew > 0 {
		return v.MaxSkew
	}
	return DefaultMaxSkew
}

// checkTime rejects a signing time further than the skew from now, and a
// presigned request past its expiry.
func (v *Verifier) checkTime(s *signature) *Error {
	now, skew := v.now(), v.maxSkew()
	at := s.signedAt
	if at.Sub(now) > skew {
		return newError(Expired, "Signature not yet current: %s is still later than %s (%s + %s.)",
			at.Format(timeFormat), now.Add(skew).Format(timeFormat), now.Format(timeFormat), formatSkew(skew))
	}
	if s.presigned {
		if now.After(at.Add(s.expires)) {
			return newError(Expired, msgRequestExpired)
		}
		return nil
	}
	if now.Sub(at) > skew {
		return newError(Expired, "Signature expired: %s is now earlier than %s (%s - %s.)",
			at.Format(timeFormat), now.Add(-skew).Format(timeFormat), now.Format(timeFormat), formatSkew(skew))
	}
	return nil
}

func formatSkew(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%d min", d/time.Minute)
	}
	return d.String()
}

// payloadHashes returns the payload hashes the request may have been signed
// with, and whether the body matches them. With an x-amz-content-sha256
// header that is the header's value, which must be UNSIGNED-PAYLOAD or a
// SHA-256; without one, the body's hash, or for a presigned request also
// UNSIGNED-PAYLOAD.
func payloadHashes(r *http.Request, body []byte, presigned bool) (hashes []string, bodyOK bool, err *Error) {
	declared := r.Header.Get("X-Amz-Content-Sha256")
	switch {
	case declared == unsignedPayload:
		return []string{declared}, true, nil
	case declared != "":
		want, err := hex.DecodeString(declared)
		if err != nil || len(want) != sha256.Size {
			return nil, false, newError(BadContentHash,
				"x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a valid sha256 value.")
		}
		got := sha256.Sum256(body)
		return []string{declared}, hmac.Equal(want, got[:]), nil
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	if presigned {
		return []string{hash, unsignedPayload}, true, nil
	}
	return []string{hash}, true, nil
}

// matches reports whether the request's signature is the one key computes
// for any of the candidate paths and payload hashes.
func (s *signature) matches(r *http.Request, key []byte, payloads []string) bool {
	got, err := hex.DecodeString(s.signature)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	headers, signed := canonicalHeaders(r, s.signedHeaders)
	c := canonical{
		method:        r.Method,
		query:         canonicalQuery(s.query, s.presigned),
		headers:       headers,
		signedHeaders: signed,
	}
	signedAt := s.signedAt.Format(timeFormat)
	for _, path := range canonicalPaths(r.URL.EscapedPath()) {
		for _, payload := range payloads {
			want := hmacSHA256(key, stringToSign(signedAt, s.scope, c.request(path, payload)))
			if hmac.Equal(got, want) {
				return true
			}
		}
	}
	return false
}
