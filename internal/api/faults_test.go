package api_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/exitmesh/exitmesh/internal/api"
	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/store"
)

// faultyStore is the real SQLite store with faults switched on by the test: SQLite cannot be made
// unreachable on demand, so this is the one place the tests fake a failure.
type faultyStore struct {
	domain.Store
	planDown atomic.Bool // GetPlan fails as an unreachable database does
	broken   atomic.Bool // ListProxyServers fails with an unexpected error
}

func (f *faultyStore) GetPlan(ctx context.Context, name string) (domain.Plan, error) {
	if f.planDown.Load() {
		return domain.Plan{}, domain.Errorf(domain.EUNAVAILABLE, "database is locked")
	}
	return f.Store.GetPlan(ctx, name)
}

func (f *faultyStore) ListProxyServers(ctx context.Context) ([]domain.ProxyServer, error) {
	if f.broken.Load() {
		return nil, errors.New("SELECT name FROM proxy_servers: disk I/O error at /var/lib/exitmesh/exitmesh.db")
	}
	return f.Store.ListProxyServers(ctx)
}

func TestRows9And17StoreFaults(t *testing.T) {
	ctx := context.Background()
	real, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "f.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer real.Close()
	real.PutPlan(ctx, domain.Plan{Name: "p", MaxProxies: 1})
	hash, _ := auth.HashPassword(alicePW)
	if _, err := real.CreateAccount(ctx, domain.NewAccount{Username: "alice", PasswordHash: hash, Plan: "p", Confirmed: true}); err != nil {
		t.Fatal(err)
	}
	fs := &faultyStore{Store: real}
	logs := &logBuffer{}
	srv := httptest.NewTLSServer(api.New(api.Config{Store: fs, Log: slog.New(slog.NewTextHandler(logs, nil))}))
	defer srv.Close()
	get := func(path string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.SetBasicAuth("alice", alicePW)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp, b.String()
	}

	fs.planDown.Store(true)
	resp, body := get("/api/ips/")
	want := `{"error":"Plan error: Unable to lookup subscription plan. Please try again in a few minutes."}` + "\n"
	if resp.StatusCode != 503 || body != want || resp.Header.Get("Retry-After") == "" {
		t.Errorf("plan unreachable: %d %q Retry-After %q; want 503 %q", resp.StatusCode, body, resp.Header.Get("Retry-After"), want)
	}
	fs.planDown.Store(false)

	fs.broken.Store(true)
	resp, body = get("/api/proxies/")
	id := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != 500 || id == "" || !strings.Contains(body, id) {
		t.Errorf("unexpected failure: %d %q (request id %q)", resp.StatusCode, body, id)
	}
	for _, secret := range []string{"SELECT", "disk I/O", "/var/lib"} {
		if strings.Contains(body, secret) {
			t.Errorf("500 body reveals %q: %s", secret, body)
		}
	}
	if !strings.Contains(logs.String(), "request_id="+id) || !strings.Contains(logs.String(), "disk I/O") {
		t.Errorf("the log lacks the request id %s with the cause:\n%s", id, logs.String())
	}
}
