package imds

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// Token errors, wrapped by verifyToken and parseTTL.
var (
	errTokenMalformed = errors.New("imds: malformed token")
	errTokenForged    = errors.New("imds: token not issued for this instance")
	errTokenExpired   = errors.New("imds: token expired")
	errBadTTL         = errors.New("imds: bad token TTL")
)

// A token is base64url (unpadded) of
//
//	version (1 byte, 1) | expiry (8 bytes, Unix seconds, big-endian) | HMAC-SHA256 (32 bytes)
//
// where the MAC covers a fixed label, the instance id and the first nine bytes. Nothing is kept
// on the server: a token is valid while its MAC checks and its expiry has not passed. Binding the
// instance id into the MAC makes a token of one instance useless on another even when every
// handler shares one secret. Tokens cannot be revoked before they expire (neither can AWS's).
const (
	tokenVersion = 1
	tokenHead    = 1 + 8
	tokenLen     = tokenHead + sha256.Size
	tokenLabel   = "nubis-imds-token-v1"
)

// issueToken returns a token for instanceID that expires ttl seconds from now.
func (h *handler) issueToken(instanceID string, ttl int) string {
	raw := make([]byte, tokenHead, tokenLen)
	raw[0] = tokenVersion
	binary.BigEndian.PutUint64(raw[1:], uint64(h.now().Unix()+int64(ttl)))
	raw = append(raw, h.mac(instanceID, raw)...)
	return base64.RawURLEncoding.EncodeToString(raw)
}

// verifyToken checks tok against instanceID and the clock, and returns the seconds it has left.
func (h *handler) verifyToken(tok, instanceID string) (int64, error) {
	if base64.RawURLEncoding.DecodedLen(len(tok)) != tokenLen {
		return 0, fmt.Errorf("%w: length %d", errTokenMalformed, len(tok))
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(tok)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", errTokenMalformed, err)
	}
	if len(raw) != tokenLen || raw[0] != tokenVersion {
		return 0, fmt.Errorf("%w: version", errTokenMalformed)
	}
	if !hmac.Equal(raw[tokenHead:], h.mac(instanceID, raw[:tokenHead])) {
		return 0, errTokenForged
	}
	expiry := binary.BigEndian.Uint64(raw[1:tokenHead])
	now := h.now().Unix()
	// Compare as unsigned so a clock before 1970 cannot wrap; an expiry past MaxInt64 cannot
	// be minted by issueToken.
	if now < 0 || uint64(now) >= expiry {
		return 0, fmt.Errorf("%w: at %d", errTokenExpired, expiry)
	}
	return int64(expiry - uint64(now)), nil
}

// mac is the HMAC of head for instanceID under the handler's secret.
func (h *handler) mac(instanceID string, head []byte) []byte {
	m := hmac.New(sha256.New, h.secret)
	m.Write([]byte(tokenLabel))
	m.Write([]byte{0})
	m.Write([]byte(instanceID))
	m.Write([]byte{0})
	m.Write(head)
	return m.Sum(nil)
}

// parseTTL reads the X-aws-ec2-metadata-token-ttl-seconds values of a token request: exactly one,
// decimal digits only, 1..MaxTokenTTL.
func parseTTL(vals []string) (int, error) {
	if len(vals) != 1 {
		return 0, fmt.Errorf("%w: %d values", errBadTTL, len(vals))
	}
	v := vals[0]
	if v == "" || len(v) > 6 {
		return 0, fmt.Errorf("%w: %q", errBadTTL, v)
	}
	for i := range len(v) {
		if v[i] < '0' || v[i] > '9' {
			return 0, fmt.Errorf("%w: %q", errBadTTL, v)
		}
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", errBadTTL, err)
	}
	if n < 1 || n > MaxTokenTTL {
		return 0, fmt.Errorf("%w: %d outside 1..%d", errBadTTL, n, MaxTokenTTL)
	}
	return n, nil
}
