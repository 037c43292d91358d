package store_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/store"
)

func TestOpenSQLite(t *testing.T) {
	s, err := store.Open(t.Context(), "sqlite:"+filepath.Join(t.TempDir(), "exitmesh.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Version(t.Context()); err != nil {
		t.Error(err)
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		dsn, want string
	}{
		{"postgres://u:secret@127.0.0.1:1/db", "Cannot reach the PostgreSQL database u@127.0.0.1:1/db"}, // nothing listens on port 1
		{"postgresql://u:secret@127.0.0.1:1/db", "Cannot reach the PostgreSQL database"},
		{"postgres://u:secret@[::1/db", "PostgreSQL store URL is invalid"},
		{"mysql://u:secret@127.0.0.1/db", `"mysql"`},
		{"./exitmesh.db", "sqlite:PATH"},
		{"", "sqlite:PATH"},
		{"sqlite:", "empty"},
	}
	for _, tt := range tests {
		s, err := store.Open(t.Context(), tt.dsn)
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", tt.dsn)
			continue
		}
		msg := domain.ErrorMessage(err)
		if !strings.Contains(msg, tt.want) || strings.Contains(msg, "secret") {
			t.Errorf("Open(%q): %q; want it to mention %q and not the password", tt.dsn, msg, tt.want)
		}
	}
}
