package sqldb

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// migration is one schema step read from a NNNN_name.sql file.
type migration struct {
	version int64
	name    string
	sql     string
}

var migrationFile = regexp.MustCompile(`^(\d{4})_[a-z0-9_]+\.sql$`)

//go:embed migrations/*.sql
var schema embed.FS

// schemaFS is the schema's migrations: NNNN_name.sql, applied in order at Open.
func schemaFS() fs.FS {
	sub, err := fs.Sub(schema, "migrations")
	if err != nil {
		panic(err) // the embedded directory exists: go:embed checked it at build time
	}
	return sub
}

// readMigrations returns the migrations in fsys, sorted by version.
func readMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		m := migrationFile.FindStringSubmatch(e.Name())
		if e.IsDir() || m == nil {
			return nil, fmt.Errorf("migration %q: name must be NNNN_name.sql", e.Name())
		}
		v, _ := strconv.ParseInt(m[1], 10, 64)
		body, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		if len(ms) > 0 && ms[len(ms)-1].version == v {
			return nil, fmt.Errorf("migrations %s and %s have the same version", ms[len(ms)-1].name, e.Name())
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(body)})
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no migrations found")
	}
	return ms, nil // fs.ReadDir sorts by name, so by version
}

// migrate applies every migration not yet recorded in schema_migrations, each in its own
// transaction, and refuses a database that a newer exitmesh has migrated further.
func (db *DB) migrate(ctx context.Context) error {
	ms, err := readMigrations(schemaFS())
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := db.inTx(ctx, nil, func(tx *sql.Tx) error { return db.applyMigration(ctx, tx, m) }); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	return db.checkNotNewer(ctx, ms[len(ms)-1].version)
}

// applyMigration applies m unless it is already recorded. It runs under the dialect's migration lock,
// so a concurrent node that applied m first is seen here and m is skipped.
func (db *DB) applyMigration(ctx context.Context, tx *sql.Tx, m migration) error {
	if db.dialect.MigrationLock != "" {
		if _, err := tx.ExecContext(ctx, db.dialect.MigrationLock); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	n, err := count(ctx, tx, `SELECT COUNT(*) FROM schema_migrations WHERE version = $1`, m.version)
	if err != nil || n > 0 {
		return err
	}
	text := strings.NewReplacer("{{ID}}", db.dialect.IDColumn, "{{BYTEORDER}}", db.dialect.ByteOrder).Replace(m.sql)
	if _, err := tx.ExecContext(ctx, text); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, m.version)
	return err
}

// checkNotNewer fails if the database records a migration this binary does not know.
func (db *DB) checkNotNewer(ctx context.Context, latest int64) error {
	var versions []int64
	err := db.read(ctx, func(tx *sql.Tx) error {
		return queryEach(ctx, tx, `SELECT version FROM schema_migrations`, nil, func(r *sql.Rows) error {
			var v int64
			err := r.Scan(&v)
			versions = append(versions, v)
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("read schema_migrations: %w", err)
	}
	if newest := slices.Max(versions); newest > latest {
		return fmt.Errorf("database schema is at version %d but this exitmesh knows only up to %d: upgrade exitmesh", newest, latest)
	}
	return nil
}
