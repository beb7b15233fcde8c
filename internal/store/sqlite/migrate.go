package sqlite

import (
	"context"
	"fmt"
)

// migrations are the schema versions, in order: migrations[i] brings the schema from version i to
// i+1. The applied version is kept in SQLite's user_version. Never edit a released migration; append.
var migrations = []string{
	// 1: the key-value table and the store revision.
	`CREATE TABLE kv (
		key        TEXT PRIMARY KEY,
		value      BLOB NOT NULL,
		create_rev INTEGER NOT NULL,
		mod_rev    INTEGER NOT NULL
	) WITHOUT ROWID;
	CREATE TABLE meta (
		name  TEXT PRIMARY KEY,
		value INTEGER NOT NULL
	) WITHOUT ROWID;
	INSERT INTO meta (name, value) VALUES ('revision', 0);`,
}

// SchemaVersion is the schema version this build writes.
var SchemaVersion = len(migrations)

// migrate applies the pending migrations, each in its own transaction with its version bump.
func (db *DB) migrate(ctx context.Context) error {
	var have int
	if err := db.write.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&have); err != nil {
		return fmt.Errorf("store schema version: %w", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("store schema version %d is newer than this nubis understands (%d): upgrade nubis", have, len(migrations))
	}
	for v := have; v < len(migrations); v++ {
		tx, err := db.write.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("store migration %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			tx.Rollback()
			return fmt.Errorf("store migration %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, v+1)); err != nil {
			tx.Rollback()
			return fmt.Errorf("store migration %d: %w", v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("store migration %d: %w", v+1, err)
		}
		db.log.Info("applied store migration", "version", v+1)
	}
	return nil
}
