// Package pgtest gives tests a PostgreSQL database of their own: a fresh schema in the server named by
// EXITMESH_TEST_DATABASE_URL, dropped when the test ends. Without that variable a test fails in CI
// (CI=true) and is skipped, with the reason, elsewhere.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// EnvURL is the variable naming the test server.
const EnvURL = "EXITMESH_TEST_DATABASE_URL"

// BaseURL returns the server's URL, or ends the test when there is none.
func BaseURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvURL)
	switch {
	case base != "":
		return base
	case os.Getenv("CI") != "":
		t.Fatalf("%s is not set: CI must run the PostgreSQL tests (.ci/run sets it)", EnvURL)
	default:
		t.Skipf("%s is not set; set it (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run the PostgreSQL tests", EnvURL)
	}
	return ""
}

// URL creates an empty schema for the test and returns a URL whose connections use it.
func URL(t testing.TB) string {
	t.Helper()
	base := BaseURL(t)
	schema := "t_" + strings.ToLower(rand.Text()[:12])
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer admin.Close()
	if _, err := admin.ExecContext(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("pgtest: create schema: %v (is PostgreSQL running at %s?)", err, redacted(base))
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer db.Close()
		db.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("pgtest: %s: %v", EnvURL, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return fmt.Sprint(u.Redacted())
}
