// Package identity holds who may call nubis: the account, created on first start, and its access
// keys. It implements sigv4.KeyLookup for the signature verifier and tells the server which
// principal an access key belongs to.
package identity

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/nubis/nubis/internal/sigv4"
	"github.com/nubis/nubis/internal/store"
)

// Store keys.
const (
	accountKey   = "identity/account"
	accessKeyDir = "identity/accesskey/"
)

// Account is the AWS account nubis serves.
type Account struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
}

// AccessKey is a long-term access key and the principal it signs as.
type AccessKey struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
	// ARN of the principal; the account root for the admin key.
	ARN     string    `json:"arn"`
	UserID  string    `json:"userId"`
	Created time.Time `json:"created"`
}

// Identity answers access-key lookups from the store, caching keys in memory.
type Identity struct {
	store   store.Store
	account Account
	mu      sync.RWMutex
	keys    map[string]AccessKey
}

var _ sigv4.KeyLookup = (*Identity)(nil)

// Open loads the account and its admin access key, creating both on first start in one transaction.
func Open(ctx context.Context, s store.Store) (*Identity, error) {
	id := &Identity{store: s, keys: map[string]AccessKey{}}
	err := s.Update(ctx, func(tx store.Tx) error {
		kv, err := tx.Get(accountKey)
		if err == nil {
			return json.Unmarshal(kv.Value, &id.account)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		now := time.Now().UTC()
		acct := Account{ID: randomDigits(12), Created: now}
		key := AccessKey{ID: "AKIA" + randomString(16, upperAlnum), Secret: randomString(40, secretChars),
			ARN: "arn:aws:iam::" + acct.ID + ":root", UserID: acct.ID, Created: now}
		if err := putJSON(tx, accountKey, acct); err != nil {
			return err
		}
		if err := putJSON(tx, accessKeyDir+key.ID, key); err != nil {
			return err
		}
		id.account = acct
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return id, nil
}

func putJSON(tx store.Tx, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Create(key, b)
}

// Account returns the account.
func (id *Identity) Account() Account { return id.account }

// AdminKey returns the account's first access key, the one `nubis env` prints.
func (id *Identity) AdminKey(ctx context.Context) (AccessKey, error) {
	kvs, err := id.store.List(ctx, accessKeyDir, "", 0)
	if err != nil {
		return AccessKey{}, fmt.Errorf("identity: %w", err)
	}
	var first AccessKey
	for _, kv := range kvs {
		var k AccessKey
		if err := json.Unmarshal(kv.Value, &k); err != nil {
			return AccessKey{}, fmt.Errorf("identity: access key %s: %w", kv.Key, err)
		}
		if k.ARN == "arn:aws:iam::"+id.account.ID+":root" && (first.ID == "" || k.Created.Before(first.Created)) {
			first = k
		}
	}
	if first.ID == "" {
		return AccessKey{}, fmt.Errorf("identity: the account has no admin access key")
	}
	return first, nil
}

// Lookup returns the access key with the given id, or an error wrapping sigv4.ErrUnknownKey.
func (id *Identity) Lookup(ctx context.Context, accessKeyID string) (AccessKey, error) {
	id.mu.RLock()
	k, ok := id.keys[accessKeyID]
	id.mu.RUnlock()
	if ok {
		return k, nil
	}
	kv, err := id.store.Get(ctx, accessKeyDir+accessKeyID)
	if errors.Is(err, store.ErrNotFound) {
		return AccessKey{}, fmt.Errorf("access key %q: %w", accessKeyID, sigv4.ErrUnknownKey)
	}
	if err != nil {
		return AccessKey{}, fmt.Errorf("identity: %w", err)
	}
	if err := json.Unmarshal(kv.Value, &k); err != nil {
		return AccessKey{}, fmt.Errorf("identity: access key %s: %w", accessKeyID, err)
	}
	id.mu.Lock()
	id.keys[accessKeyID] = k
	id.mu.Unlock()
	return k, nil
}

// SecretKey implements sigv4.KeyLookup.
func (id *Identity) SecretKey(ctx context.Context, accessKeyID string) (string, error) {
	k, err := id.Lookup(ctx, accessKeyID)
	return k.Secret, err
}

const (
	upperAlnum  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	secretChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
)

func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	max := big.NewInt(int64(len(alphabet)))
	for i := range b {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic(err) // crypto/rand does not fail on Linux
		}
		b[i] = alphabet[v.Int64()]
	}
	return string(b)
}

func randomDigits(n int) string {
	s := randomString(n, "0123456789")
	if s[0] == '0' {
		s = "1" + s[1:]
	}
	return s
}
