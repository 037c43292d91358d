// Package postgres opens exitmesh's store in a PostgreSQL database, using pgx through database/sql
// and the shared SQL implementation of package sqldb. Many nodes share one database: migrations are
// serialized by an advisory lock, and every write serializes on the version row.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/store/sqldb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLockKey is the advisory lock nodes take to apply migrations one at a time.
const migrationLockKey = 0x657869746d657368 // "exitmesh"

// Dialect is the PostgreSQL flavour of sqldb.
func Dialect() sqldb.Dialect {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		panic(err) // the embedded directory exists: go:embed checked it at build time
	}
	return sqldb.Dialect{
		Name:              "postgres",
		Migrations:        sub,
		MigrationLock:     fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", migrationLockKey),
		IsUniqueViolation: func(err error) bool { return sqlState(err) == "23505" },
		IsUnavailable:     isUnavailable,
	}
}

// Open connects to the database at url (postgres://…) and brings its schema up to date.
func Open(ctx context.Context, url string) (*sqldb.DB, error) {
	cfg, err := pgconnConfig(url)
	if err != nil {
		return nil, err
	}
	sqlDB := stdlib.OpenDB(*cfg)
	// A node holds few connections: the proxies never query per request.
	sqlDB.SetMaxOpenConns(10)
	sqlDB.SetMaxIdleConns(4)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	db, err := sqldb.Open(ctx, sqlDB, Dialect())
	if err != nil {
		sqlDB.Close()
		if isUnavailable(err) {
			return nil, fmt.Errorf("%w: %w", domain.Errorf(domain.EUNAVAILABLE,
				"Cannot reach the PostgreSQL database %s; is it running and reachable?", redact(cfg)), err)
		}
		return nil, fmt.Errorf("open postgres store %s: %w", redact(cfg), err)
	}
	return db, nil
}

func pgconnConfig(url string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil { // the parser's message may quote the URL, password included
		return nil, domain.Errorf(domain.EINVALID, "The PostgreSQL store URL is invalid; want postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE.")
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second // a dead database must not hang a node's start or sync
	}
	return cfg, nil
}

func redact(cfg *pgx.ConnConfig) string {
	return fmt.Sprintf("%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// isUnavailable reports errors that mean the database cannot be reached or cannot serve now.
func isUnavailable(err error) bool {
	var netErr net.Error
	var connErr *pgconn.ConnectError
	switch {
	case errors.As(err, &connErr), errors.As(err, &netErr), errors.Is(err, sql.ErrConnDone),
		pgconn.Timeout(err), pgconn.SafeToRetry(err):
		return true
	}
	switch state := sqlState(err); {
	case len(state) == 5 && state[:2] == "08": // connection exception
		return true
	case state == "57P01", state == "57P02", state == "57P03", state == "53300": // shutdown, too many connections
		return true
	}
	return false
}
