// Package store defines the key-value store that holds all nubis state, and the errors it returns.
//
// The interface is deliberately small (modelled on etcd's data model, as kine does) so that the
// embedded SQLite backend (package store/sqlite) can later be joined by an etcd backend for clusters:
// ordered string keys, opaque values, a monotonically increasing revision per write, and
// serializable read-write transactions. Services keep their own key layout and encode values as JSON.
package store

import (
	"context"
	"fmt"

	"github.com/nubis/nubis/internal/errdefs"
)

// ErrNotFound is returned (wrapped) when a key does not exist. It is an errdefs.ErrNotFound.
var ErrNotFound = fmt.Errorf("store: key %w", errdefs.ErrNotFound)

// ErrExists is returned (wrapped) by Tx.Create when the key already exists. It is an errdefs.ErrAlreadyExists.
var ErrExists = fmt.Errorf("store: key %w", errdefs.ErrAlreadyExists)

// KV is one entry of the store.
type KV struct {
	Key   string
	Value []byte
	// CreateRevision is the store revision at which the key was created.
	CreateRevision int64
	// ModRevision is the store revision of the last write to the key.
	ModRevision int64
}

// Store is the persistent state of nubis.
//
// Implementations must be safe for concurrent use and crash-safe: once Update returns nil, its writes
// survive a crash of the process.
type Store interface {
	// Get returns the entry at key, or an error wrapping ErrNotFound.
	Get(ctx context.Context, key string) (KV, error)
	// List returns the entries whose keys start with prefix and sort after the key after ("" for from the
	// start), in key order, at most limit of them (limit <= 0 means no limit).
	List(ctx context.Context, prefix, after string, limit int) ([]KV, error)
	// Update runs fn in one serializable read-write transaction and commits its writes atomically if fn
	// returns nil. fn may be run more than once (an optimistic backend retries on conflict), so it must
	// have no side effects outside tx.
	Update(ctx context.Context, fn func(tx Tx) error) error
	// View runs fn in a read-only transaction: a consistent snapshot of the store, which may run
	// beside other readers and a writer. Writes through its tx fail.
	View(ctx context.Context, fn func(tx Tx) error) error
	// Close releases the store. Calls after Close fail with an error wrapping errdefs.ErrUnavailable.
	Close() error
}

// Tx is a read-write transaction, valid only inside the function given to Store.Update.
type Tx interface {
	// Get returns the entry at key as seen by this transaction, or an error wrapping ErrNotFound.
	Get(key string) (KV, error)
	// List is Store.List as seen by this transaction.
	List(prefix, after string, limit int) ([]KV, error)
	// Create writes key only if it does not exist yet, else returns an error wrapping ErrExists.
	Create(key string, value []byte) error
	// Put writes key, creating or replacing it.
	Put(key string, value []byte) error
	// Delete removes key, or returns an error wrapping ErrNotFound.
	Delete(key string) error
}
