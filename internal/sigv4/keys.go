package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"io"
	"sync"
)

// signingKeys caches derived signing keys. Deriving one costs four HMACs,
// and one key serves every request an access key signs for a service on a
// given day, so on the hot path nearly every lookup hits.
var signingKeys = keyCache{max: 1024}

// keyID identifies a signing key. It holds the secret rather than the
// access key id so that a rotated secret never finds a stale key.
type keyID struct {
	secret, date, region, service string
}

// keyCache is a bounded, concurrency-safe map of signing keys. When full it
// drops an arbitrary entry (Go randomizes map iteration).
type keyCache struct {
	mu   sync.RWMutex
	max  int
	keys map[keyID][]byte
}

// get returns the signing key of secret for the scope. The returned slice
// is shared and must not be modified.
func (c *keyCache) get(secret string, s Scope) []byte {
	id := keyID{secret: secret, date: s.Date, region: s.Region, service: s.Service}
	c.mu.RLock()
	key, ok := c.keys[id]
	c.mu.RUnlock()
	if ok {
		return key
	}
	key = deriveKey(secret, s)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys == nil {
		c.keys = make(map[keyID][]byte)
	}
	if len(c.keys) >= c.max {
		for old := range c.keys {
			delete(c.keys, old)
			break
		}
	}
	c.keys[id] = key
	return key
}

// deriveKey computes the SigV4 signing key:
// HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request").
func deriveKey(secret string, s Scope) []byte {
	key := hmacSHA256([]byte("AWS4"+secret), s.Date)
	key = hmacSHA256(key, s.Region)
	key = hmacSHA256(key, s.Service)
	return hmacSHA256(key, scopeTerminator)
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	io.WriteString(h, data)
	return h.Sum(nil)
}
