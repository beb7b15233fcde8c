// Package sqlite is the embedded, default backend of store.Store: one SQLite database in WAL mode
// (through the pure-Go modernc.org/sqlite driver), with versioned schema migrations applied at open.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync/atomic"

	"github.com/nubis/nubis/internal/errdefs"
	"github.com/nubis/nubis/internal/store"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// DB is a store.Store kept in one SQLite file.
type DB struct {
	log    *slog.Logger
	write  *sql.DB // one connection: SQLite has one writer at a time
	read   *sql.DB // a pool of readers, which WAL lets run beside the writer
	closed atomic.Bool
}

var _ store.Store = (*DB)(nil)

// Open opens (creating it with file mode 0600 if needed) the database at path and applies any
// pending schema migrations.
func Open(ctx context.Context, path string, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Create the file ourselves so that it, and the -wal and -shm files SQLite derives from its mode,
	// are readable by the owner only: the store holds secret keys.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	f.Close()
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	pragmas := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(ON)"} {
		pragmas.Add("_pragma", p)
	}
	readPragmas := url.Values{"_pragma": append(append([]string(nil), pragmas["_pragma"]...), "query_only(1)")}
	// Writers take SQLite's write lock when they begin (no deadlocking lock upgrades); readers
	// begin deferred, so they never wait for it.
	pragmas.Set("_txlock", "immediate")
	dsn := "file:" + path + "?" + pragmas.Encode()
	write, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	write.SetMaxOpenConns(1)
	read, err := sql.Open("sqlite", "file:"+path+"?"+readPragmas.Encode())
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	read.SetMaxOpenConns(8)
	read.SetMaxIdleConns(8)
	db := &DB{log: log, write: write, read: read}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Close closes the database.
func (db *DB) Close() error {
	if db.closed.Swap(true) {
		return nil
	}
	return errors.Join(db.read.Close(), db.write.Close())
}

func (db *DB) checkOpen() error {
	if db.closed.Load() {
		return fmt.Errorf("store closed: %w", errdefs.ErrUnavailable)
	}
	return nil
}

// queryer is what *sql.DB and *sql.Tx have in common.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func get(ctx context.Context, q queryer, key string) (store.KV, error) {
	kv := store.KV{Key: key}
	err := q.QueryRowContext(ctx, `SELECT value, create_rev, mod_rev FROM kv WHERE key = ?`, key).
		Scan(&kv.Value, &kv.CreateRevision, &kv.ModRevision)
	if errors.Is(err, sql.ErrNoRows) {
		return store.KV{}, fmt.Errorf("%w: %q", store.ErrNotFound, key)
	}
	if err != nil {
		return store.KV{}, fmt.Errorf("store get %q: %w", key, err)
	}
	return kv, nil
}

// prefixEnd returns the smallest string greater than every string starting with prefix, or "" if
// there is none.
func prefixEnd(prefix string) string {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return ""
}

func list(ctx context.Context, q queryer, prefix, after string, limit int) ([]store.KV, error) {
	var sb strings.Builder
	var args []any
	sb.WriteString(`SELECT key, value, create_rev, mod_rev FROM kv WHERE key >= ?`)
	args = append(args, prefix)
	if end := prefixEnd(prefix); end != "" {
		sb.WriteString(` AND key < ?`)
		args = append(args, end)
	}
	if after != "" {
		sb.WriteString(` AND key > ?`)
		args = append(args, after)
	}
	sb.WriteString(` ORDER BY key`)
	if limit > 0 {
		sb.WriteString(` LIMIT ?`)
		args = append(args, limit)
	}
	rows, err := q.QueryContext(ctx, sb.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("store list %q: %w", prefix, err)
	}
	defer rows.Close()
	var out []store.KV
	for rows.Next() {
		var kv store.KV
		if err := rows.Scan(&kv.Key, &kv.Value, &kv.CreateRevision, &kv.ModRevision); err != nil {
			return nil, fmt.Errorf("store list %q: %w", prefix, err)
		}
		out = append(out, kv)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store list %q: %w", prefix, err)
	}
	return out, nil
}

// Get implements store.Store.
func (db *DB) Get(ctx context.Context, key string) (store.KV, error) {
	if err := db.checkOpen(); err != nil {
		return store.KV{}, err
	}
	return get(ctx, db.read, key)
}

// List implements store.Store.
func (db *DB) List(ctx context.Context, prefix, after string, limit int) ([]store.KV, error) {
	if err := db.checkOpen(); err != nil {
		return nil, err
	}
	return list(ctx, db.read, prefix, after, limit)
}

// Update implements store.Store. Transactions take SQLite's write lock when they begin, so they are
// serializable and never need a retry.
func (db *DB) Update(ctx context.Context, fn func(store.Tx) error) error {
	if err := db.checkOpen(); err != nil {
		return err
	}
	sqlTx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store begin: %w", err)
	}
	defer sqlTx.Rollback()
	var rev int64
	if err := sqlTx.QueryRowContext(ctx, `SELECT value FROM meta WHERE name = 'revision'`).Scan(&rev); err != nil {
		return fmt.Errorf("store revision: %w", err)
	}
	t := &tx{ctx: ctx, tx: sqlTx, rev: rev + 1}
	if err := fn(t); err != nil {
		return err
	}
	if t.wrote {
		if _, err := sqlTx.ExecContext(ctx, `UPDATE meta SET value = ? WHERE name = 'revision'`, t.rev); err != nil {
			return fmt.Errorf("store revision: %w", err)
		}
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("store commit: %w", err)
	}
	return nil
}

// View implements store.Store: a deferred transaction on the read pool, which in WAL mode sees one
// snapshot and does not wait for the writer.
func (db *DB) View(ctx context.Context, fn func(store.Tx) error) error {
	if err := db.checkOpen(); err != nil {
		return err
	}
	sqlTx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("store begin: %w", err)
	}
	defer sqlTx.Rollback()
	return fn(&tx{ctx: ctx, tx: sqlTx, readOnly: true})
}

// tx implements store.Tx. Every write in one transaction gets the same new revision, as in etcd.
type tx struct {
	ctx      context.Context
	tx       *sql.Tx
	rev      int64
	wrote    bool
	readOnly bool
}

// errReadOnly is what a write through a View transaction gets.
var errReadOnly = errors.New("store: write in a read-only transaction")

func (t *tx) Get(key string) (store.KV, error) { return get(t.ctx, t.tx, key) }

func (t *tx) List(prefix, after string, limit int) ([]store.KV, error) {
	return list(t.ctx, t.tx, prefix, after, limit)
}

func (t *tx) Create(key string, value []byte) error {
	if t.readOnly {
		return errReadOnly
	}
	res, err := t.tx.ExecContext(t.ctx,
		`INSERT INTO kv (key, value, create_rev, mod_rev) VALUES (?, ?, ?, ?) ON CONFLICT (key) DO NOTHING`,
		key, value, t.rev, t.rev)
	if err != nil {
		return fmt.Errorf("store create %q: %w", key, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: %q", store.ErrExists, key)
	}
	t.wrote = true
	return nil
}

func (t *tx) Put(key string, value []byte) error {
	if t.readOnly {
		return errReadOnly
	}
	_, err := t.tx.ExecContext(t.ctx,
		`INSERT INTO kv (key, value, create_rev, mod_rev) VALUES (?, ?, ?, ?)
		 ON CONFLICT (key) DO UPDATE SET value = excluded.value, mod_rev = excluded.mod_rev`,
		key, value, t.rev, t.rev)
	if err != nil {
		return fmt.Errorf("store put %q: %w", key, err)
	}
	t.wrote = true
	return nil
}

func (t *tx) Delete(key string) error {
	if t.readOnly {
		return errReadOnly
	}
	res, err := t.tx.ExecContext(t.ctx, `DELETE FROM kv WHERE key = ?`, key)
	if err != nil {
		return fmt.Errorf("store delete %q: %w", key, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: %q", store.ErrNotFound, key)
	}
	t.wrote = true
	return nil
}
