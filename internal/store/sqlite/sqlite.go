// Package sqlite opens exitmesh's store in a SQLite database file, using the pure-Go driver
// modernc.org/sqlite and the shared SQL implementation of package sqldb. The file is opened in WAL
// mode with foreign keys on and immediate write transactions, so that many processes on one machine
// can share it.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/store/sqldb"
)

// pragmas: wait up to 5 s for another writer; WAL lets readers run beside the writer, and under WAL
// synchronous=NORMAL stays durable across crashes of the process (not of the OS) while being far
// faster than FULL; _txlock=immediate takes the write lock at BEGIN, so a transaction that reads then
// writes never fails half-way with SQLITE_BUSY.
const pragmas = "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)" +
	"&_pragma=foreign_keys(1)&_txlock=immediate"

// Dialect is the SQLite flavour of sqldb.
func Dialect() sqldb.Dialect {
	return sqldb.Dialect{
		Name:              "sqlite",
		IDColumn:          "INTEGER PRIMARY KEY AUTOINCREMENT",
		IsUniqueViolation: isUniqueViolation,
		IsUnavailable:     isBusy,
	}
}

// Open opens (creating if needed) the SQLite database at path and brings its schema up to date.
// The directory holding path must exist.
func Open(ctx context.Context, path string) (*sqldb.DB, error) {
	if path == "" {
		return nil, domain.Errorf(domain.EINVALID, "The SQLite database path is empty.")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite store %s: %w", path, err)
	}
	if err := checkDir(filepath.Dir(abs)); err != nil {
		return nil, err
	}
	sqlDB, err := sql.Open("sqlite", dsn(abs))
	if err != nil {
		return nil, fmt.Errorf("sqlite store %s: %w", path, err)
	}
	db, err := sqldb.Open(ctx, sqlDB, Dialect())
	if err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

// checkDir fails with an actionable message unless dir is an existing directory.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return domain.Errorf(domain.EINVALID, "The directory %s for the SQLite database does not exist; create it first.", dir)
	case err != nil:
		return fmt.Errorf("sqlite store directory: %w", err)
	case !fi.IsDir():
		return domain.Errorf(domain.EINVALID, "%s is not a directory, so it cannot hold the SQLite database.", dir)
	}
	return nil
}

// dsn returns the driver's name for the file at the absolute path abs. The name is a SQLite URI, so
// the characters URIs give a meaning to are escaped.
func dsn(abs string) string {
	escaped := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.ToSlash(abs))
	return "file:" + escaped + "?" + pragmas
}

func isUniqueViolation(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// isBusy reports whether another connection held the database longer than busy_timeout.
func isBusy(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	primary := e.Code() & 0xff
	return primary == sqlite3.SQLITE_BUSY || primary == sqlite3.SQLITE_LOCKED
}
