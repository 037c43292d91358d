// Package sqldb implements domain.Store once, over database/sql, for every SQL backend exitmesh
// supports. Queries use $1, $2… placeholders and SQL that both SQLite and PostgreSQL accept; what
// differs between backends (the schema migrations, how a unique violation or an unreachable database
// is recognised) lives in a Dialect.
//
// Every exported method owns its transaction; helpers take a *sql.Tx. Methods that change what
// Snapshot returns go through write, which first increments meta.version: under PostgreSQL that row
// lock serialises writers, so the plan-limit checks (count, then insert) are race-free there just as
// under SQLite's immediate write lock. Lists returned are never nil and are sorted by byte order
// (names) or netip order (addresses), identically on every backend.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// Dialect is what differs between the SQL backends.
type Dialect struct {
	// Name names the backend in error messages ("sqlite", "postgres").
	Name string
	// IDColumn replaces {{ID}} in the migrations: a generated, never reused BIGINT primary key.
	IDColumn string
	// ByteOrder is the collation clause under which text compares byte by byte ("" when the default
	// does); it replaces {{BYTEORDER}} in the migrations and orders the pages of accounts.
	ByteOrder string
	// MigrationLock, if not empty, is executed first in every migration transaction, so that nodes
	// starting together apply each migration once (PostgreSQL: SELECT pg_advisory_xact_lock(…)).
	MigrationLock string
	// IsUniqueViolation reports whether err is a unique or primary key constraint violation.
	IsUniqueViolation func(error) bool
	// IsUnavailable, if set, reports whether err means the database is unreachable or too busy,
	// which callers see as domain.EUNAVAILABLE.
	IsUnavailable func(error) bool
	// Analyze, if not empty, is executed after a bulk import, so that the query planner knows the
	// tables' new sizes at once instead of at the next automatic analysis (PostgreSQL: ANALYZE).
	Analyze string
	// Notify, if not empty, is executed with the new version ($1) in every write that records feed
	// entries, so that listening nodes wake up at its commit (PostgreSQL: SELECT pg_notify(…)).
	Notify string
}

// DB is a domain.Store over a database/sql handle.
type DB struct {
	sql     *sql.DB
	dialect Dialect

	// Now returns the current time; nil means time.Now. Set it before first use.
	Now func() time.Time
}

var _ domain.Store = (*DB)(nil)

// Open applies the dialect's pending migrations to db and returns a store using it. The store owns
// db from then on (Close closes it); if Open fails, the caller still owns it.
func Open(ctx context.Context, db *sql.DB, d Dialect) (*DB, error) {
	if d.IsUniqueViolation == nil || d.IDColumn == "" {
		return nil, fmt.Errorf("%s store: dialect needs IDColumn and IsUniqueViolation", d.Name)
	}
	s := &DB{sql: db, dialect: d}
	if err := s.migrate(ctx); err != nil {
		return nil, fmt.Errorf("%s store: %w", d.Name, err)
	}
	return s, nil
}

// Close closes the database handle.
func (db *DB) Close() error { return db.sql.Close() }

func (db *DB) now() time.Time {
	if db.Now != nil {
		return db.Now()
	}
	return time.Now()
}

// errUnchanged, returned by a write function, rolls the transaction back (and with it the version
// increment) and makes write return nil: nothing changed, so nobody needs to reload.
var errUnchanged = errors.New("unchanged")

// errUnavailable is what callers see when the dialect says the database cannot be used right now.
var errUnavailable = domain.Errorf(domain.EUNAVAILABLE, "The database is busy or unreachable; please try again in a moment.")

// readOnly is one consistent snapshot: SQLite ignores the isolation level (a read transaction in WAL
// mode is a snapshot anyway); PostgreSQL needs REPEATABLE READ for several queries to agree.
var readOnly = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}

// write runs fn in a transaction that first increments the store version, then records under that
// version the feed entries fn noted (see feed.go).
func (db *DB) write(ctx context.Context, fn func(tx *sql.Tx, feed *changeLog) error) error {
	err := db.inTx(ctx, nil, func(tx *sql.Tx) error {
		seq, err := bumpVersion(ctx, tx)
		if err != nil {
			return err
		}
		feed := &changeLog{seq: seq}
		if err := fn(tx, feed); err != nil {
			return err
		}
		return db.recordChanges(ctx, tx, feed)
	})
	if errors.Is(err, errUnchanged) {
		return nil
	}
	return err
}

// read runs fn in a read-only transaction.
func (db *DB) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return db.inTx(ctx, readOnly, fn)
}

// inTx runs fn in a transaction, committing if it returns nil and rolling back otherwise.
func (db *DB) inTx(ctx context.Context, opts *sql.TxOptions, fn func(tx *sql.Tx) error) error {
	tx, err := db.sql.BeginTx(ctx, opts)
	if err != nil {
		return db.classify(fmt.Errorf("begin transaction: %w", err))
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback() // the error from fn is the one that matters
		return db.classify(err)
	}
	if err := tx.Commit(); err != nil {
		return db.classify(fmt.Errorf("commit: %w", err))
	}
	return nil
}

// classify marks errors the dialect recognises as "database unavailable" with errUnavailable,
// keeping the original in the chain for logs.
func (db *DB) classify(err error) error {
	var de *domain.Error
	if errors.As(err, &de) || db.dialect.IsUnavailable == nil || !db.dialect.IsUnavailable(err) {
		return err
	}
	return fmt.Errorf("%w: %w", errUnavailable, err)
}

// bumpVersion increments the store version and returns the new one. The row stays locked until the
// transaction ends, so versions commit in order: a reader that sees version n sees every write up to n.
func bumpVersion(ctx context.Context, tx *sql.Tx) (int64, error) {
	var v int64
	err := tx.QueryRowContext(ctx, `UPDATE meta SET value = value + 1 WHERE key = 'version' RETURNING value`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, errors.New("increment version: meta row missing")
	}
	if err != nil {
		return 0, fmt.Errorf("increment version: %w", err)
	}
	return v, nil
}

// Version returns the store version, which every change to what Snapshot returns increments.
func (db *DB) Version(ctx context.Context) (int64, error) {
	var v int64
	err := db.sql.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'version'`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("read version: %w", db.classify(err))
	}
	return v, nil
}

// Snapshot reads the version, plans, accounts, sub-accounts and API tokens in one read transaction,
// with one query per table.
func (db *DB) Snapshot(ctx context.Context) (domain.Snapshot, error) {
	var s domain.Snapshot
	err := db.read(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'version'`).Scan(&s.Version)
		if err != nil {
			return fmt.Errorf("read version: %w", err)
		}
		if s.Plans, err = listPlans(ctx, tx); err != nil {
			return err
		}
		cat, err := readCatalog(ctx, tx)
		if err != nil {
			return err
		}
		if s.Accounts, err = loadAccounts(ctx, tx, cat, ""); err != nil {
			return err
		}
		if s.Subs, err = loadSubs(ctx, tx, cat, ""); err != nil {
			return err
		}
		s.Tokens, err = loadTokens(ctx, tx, "")
		return err
	})
	if err != nil {
		return domain.Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	return s, nil
}

// queryEach runs query and calls scan for each row.
func queryEach(ctx context.Context, tx *sql.Tx, query string, args []any, scan func(*sql.Rows) error) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// count runs a SELECT COUNT(*) query.
func count(ctx context.Context, tx *sql.Tx, query string, args ...any) (int, error) {
	var n int
	if err := tx.QueryRowContext(ctx, query, args...).Scan(&n); err != nil {
		return 0, err
	}
	return n, nil
}

// rowsAffected returns how many rows an INSERT, UPDATE or DELETE changed.
func rowsAffected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
