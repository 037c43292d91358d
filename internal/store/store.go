// Package store opens exitmesh's persistent store from a data source name: "sqlite:PATH" for a
// SQLite file, or a postgres:// URL once the PostgreSQL backend exists. Each backend lives in its own
// subpackage and shares the SQL implementation of package sqldb.
package store

import (
	"context"
	"log/slog"
	"strings"

	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/store/postgres"
	"github.com/exitmesh/exitmesh/internal/store/sqlite"
)

// Open opens the store named by dsn and brings its schema up to date.
func Open(ctx context.Context, dsn string) (domain.Store, error) {
	scheme, rest, found := strings.Cut(dsn, ":")
	switch strings.ToLower(scheme) {
	case "sqlite":
		return sqlite.Open(ctx, rest)
	case "postgres", "postgresql":
		return postgres.Open(ctx, dsn)
	}
	const forms = "use sqlite:PATH (for example sqlite:./exitmesh.db) or postgres://USER@HOST/DB"
	if !found {
		return nil, domain.Errorf(domain.EINVALID, "The store must be a data source name: %s.", forms)
	}
	// Only the scheme is repeated: the rest may hold a password.
	return nil, domain.Errorf(domain.EINVALID, "Unsupported store type %q: %s.", scheme, forms)
}

// Watch calls wake whenever another process commits a change to the store named by dsn, until ctx
// ends. PostgreSQL notifies listeners at commit; SQLite cannot, so Watch returns at once and the
// caller's polling is what follows a SQLite file (which other processes, such as admin, write to).
func Watch(ctx context.Context, dsn string, wake func(), log *slog.Logger) {
	scheme, _, _ := strings.Cut(dsn, ":")
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		postgres.Listen(ctx, dsn, wake, log)
	}
}
