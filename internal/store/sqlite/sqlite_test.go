package sqlite_test

import (
	"database/sql"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/store/sqldb"
	"github.com/exitmesh/exitmesh/internal/store/sqlite"
	"github.com/exitmesh/exitmesh/internal/store/storetest"
)

func open(t *testing.T, path string) *sqldb.DB {
	t.Helper()
	db, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) domain.Store {
		return open(t, filepath.Join(t.TempDir(), "exitmesh.db"))
	})
}

// seed creates a plan and an account and returns the version after.
func seed(t *testing.T, s domain.Store) int64 {
	t.Helper()
	ctx := t.Context()
	if err := s.CreatePlan(ctx, domain.Plan{Name: "p", MaxProxies: 1, MaxIPs: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateAccount(ctx, domain.NewAccount{Username: "alice", PasswordHash: "h", Plan: "p"}); err != nil {
		t.Fatal(err)
	}
	v, err := s.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "exitmesh.db")
	db, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	v := seed(t, db)
	want, err := db.GetAccount(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	again := open(t, path)
	got, err := again.GetAccount(t.Context(), "alice")
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("after reopen: GetAccount = %+v, %v; want %+v", got, err, want)
	}
	if gotV, err := again.Version(t.Context()); err != nil || gotV != v {
		t.Errorf("after reopen: Version = %d, %v; want %d", gotV, err, v)
	}
}

func TestTwoHandles(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "exitmesh.db")
	a, b := open(t, path), open(t, path)
	v := seed(t, a)
	if got, err := b.Version(ctx); err != nil || got != v {
		t.Fatalf("other handle: Version = %d, %v; want %d", got, err, v)
	}
	if _, err := b.GetAccount(ctx, "alice"); err != nil {
		t.Fatalf("other handle: %v", err)
	}
	disabled := true
	if _, err := b.UpdateAccount(ctx, "alice", domain.AccountUpdate{Disabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	snap, err := a.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Version != v+1 || len(snap.Accounts) != 1 || !snap.Accounts[0].Disabled {
		t.Errorf("first handle after a change through the second: %+v, want version %d and alice disabled", snap, v+1)
	}
}

func TestMissingDirectory(t *testing.T) {
	_, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "missing", "exitmesh.db"))
	if domain.ErrorCode(err) != domain.EINVALID || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Open in a missing directory: %v; want an EINVALID error saying it does not exist", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := sqlite.Open(t.Context(), filepath.Join(file, "exitmesh.db")); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("Open under a file: %v; want EINVALID", err)
	}
	if _, err := sqlite.Open(t.Context(), ""); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("Open of an empty path: %v; want EINVALID", err)
	}
}

func TestPathNeedingEscapes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a?b#c%20d e")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "exitmesh.db")
	seed(t, open(t, path))
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not created at %q: %v", path, err)
	}
}

// raw opens the file with the driver alone, to look underneath the store.
func raw(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestFileSettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "exitmesh.db")
	seed(t, open(t, path))
	var mode string
	if err := raw(t, path).QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
}

func TestHostnamesLoaded(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "exitmesh.db")
	s := open(t, path)
	seed(t, s)
	resolved := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	_, err := raw(t, path).Exec(`INSERT INTO account_hostnames (account_id, hostname, ip, resolved_at)
		SELECT id, 'z.example.org', '', 0 FROM accounts UNION ALL SELECT id, 'a.example.org', '192.0.2.4', $1 FROM accounts`,
		resolved.Unix())
	if err != nil {
		t.Fatal(err)
	}
	want := []domain.Hostname{
		{Name: "a.example.org", IP: netipMust("192.0.2.4"), ResolvedAt: resolved},
		{Name: "z.example.org"},
	}
	acc, err := s.GetAccount(ctx, "alice")
	if err != nil || !reflect.DeepEqual(acc.Hostnames, want) {
		t.Errorf("GetAccount hostnames = %+v, %v; want %+v", acc.Hostnames, err, want)
	}
	snap, err := s.Snapshot(ctx)
	if err != nil || !reflect.DeepEqual(snap.Accounts[0].Hostnames, want) {
		t.Errorf("Snapshot hostnames = %+v, %v; want %+v", snap.Accounts, err, want)
	}
}

// TestHostnameResolvedAt: the resolution time comes from the store's clock, and a re-resolution to
// the same address saves it without moving the version.
func TestHostnameResolvedAt(t *testing.T) {
	ctx := t.Context()
	s := open(t, filepath.Join(t.TempDir(), "exitmesh.db"))
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s.Now = func() time.Time { return now }
	if err := s.CreatePlan(ctx, domain.Plan{Name: "p", MaxHostnames: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateAccount(ctx, domain.NewAccount{Username: "alice", PasswordHash: "h", Plan: "p"}); err != nil {
		t.Fatal(err)
	}
	check := func(what string, wantVersion int64) {
		t.Helper()
		want := []domain.Hostname{{Name: "h.example.org", IP: netipMust("192.0.2.4"), ResolvedAt: now}}
		acc, err := s.GetAccount(ctx, "alice")
		if err != nil || !reflect.DeepEqual(acc.Hostnames, want) {
			t.Errorf("after %s: hostnames = %+v, %v; want %+v", what, acc.Hostnames, err, want)
		}
		if v, err := s.Version(ctx); err != nil || v != wantVersion {
			t.Errorf("after %s: version = %d, %v; want %d", what, v, err, wantVersion)
		}
	}
	if err := s.AddHostname(ctx, "alice", "h.example.org", netipMust("192.0.2.4")); err != nil {
		t.Fatal(err)
	}
	v, _ := s.Version(ctx)
	check("AddHostname", v)
	now = now.Add(5 * time.Minute)
	if err := s.SetHostnameIP(ctx, "alice", "h.example.org", netipMust("192.0.2.4")); err != nil {
		t.Fatal(err)
	}
	check("SetHostnameIP to the same address", v)
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "exitmesh.db")
	db, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := raw(t, path).Exec(`INSERT INTO schema_migrations (version) VALUES (9999)`); err != nil {
		t.Fatal(err)
	}
	if _, err := sqlite.Open(t.Context(), path); err == nil || !strings.Contains(err.Error(), "upgrade exitmesh") {
		t.Errorf("Open of a newer schema: %v; want an error saying to upgrade exitmesh", err)
	}
}

func netipMust(s string) netip.Addr { return netip.MustParseAddr(s) }

// BenchmarkSnapshot reads a store of 2,000 accounts with 5 IP addresses and 2 proxy servers each.
func BenchmarkSnapshot(b *testing.B) {
	ctx := b.Context()
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "exitmesh.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	must(s.CreatePlan(ctx, domain.Plan{Name: "p", MaxProxies: 2, MaxIPs: 5}))
	must(s.PutProxyServer(ctx, domain.ProxyServer{Name: "a", Address: "a:1"}))
	must(s.PutProxyServer(ctx, domain.ProxyServer{Name: "b", Address: "b:1"}))
	const accounts = 2000
	for i := range accounts {
		var ips []netip.Addr
		for j := range 5 {
			ips = append(ips, netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), byte(j + 1)}))
		}
		_, err := s.CreateAccount(ctx, domain.NewAccount{Username: fmt.Sprintf("user%05d", i), PasswordHash: "h",
			Plan: "p", Proxies: []string{"a", "b"}, IPs: ips})
		must(err)
	}
	for b.Loop() {
		snap, err := s.Snapshot(ctx)
		must(err)
		if len(snap.Accounts) != accounts {
			b.Fatalf("%d accounts", len(snap.Accounts))
		}
	}
}

// TestMonthTotalsBackfilled opens a store written before usage_months existed: the migration fills
// the month totals from the usage rows already there.
func TestMonthTotalsBackfilled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "exitmesh.db")
	db, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	err = db.AddUsage(t.Context(), "b1", map[domain.UsageKey]domain.UsageCounts{
		{AccountID: 1, Proxy: "a", Day: "2026-03-01"}:           {BytesIn: 1, BytesOut: 10},
		{AccountID: 1, SubID: 5, Proxy: "b", Day: "2026-03-31"}: {BytesIn: 100},
		{AccountID: 1, Proxy: "a", Day: "2026-04-01"}:           {BytesOut: 1000},
		{AccountID: 2, Proxy: "a", Day: "2026-03-15"}:           {Requests: 1},
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	conn := raw(t, path)
	if _, err := conn.Exec(`DROP TABLE usage_months; DELETE FROM schema_migrations WHERE version = 4`); err != nil {
		t.Fatal(err)
	}
	db = open(t, path)
	for month, want := range map[string]map[int64]int64{"2026-03": {1: 111}, "2026-04": {1: 1000}} {
		got, err := db.MonthBandwidth(t.Context(), month, "")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Bytes, want) {
			t.Errorf("backfilled %s = %v, want %v", month, got.Bytes, want)
		}
	}
}
