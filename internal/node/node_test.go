package node_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/node"
	"github.com/exitmesh/exitmesh/internal/origin"
	"github.com/exitmesh/exitmesh/internal/store"
	"github.com/exitmesh/exitmesh/internal/testwait"
)

const testConfig = `
store: sqlite:%s
api: {listen: "127.0.0.1:0"}
metrics: {listen: "127.0.0.1:0"}
sync: {interval: 100ms}
usage: {flush_interval: 200ms}
proxies:
  - name: us-ca
    listen: "127.0.0.1:0"
    country: US
    exits: [{ip: 127.0.0.2}, {ip: 127.0.0.3}, {ip: 127.0.0.4}, {ip: 127.0.0.5}]
egress: {allow: [127.0.0.1/32]}
plans:
  - {name: starter, proxies: 3, subs: 5, ips: 10, hostnames: 5, bandwidth: 10GB}
`

type fixture struct {
	node   *node.Node
	admin  domain.Store // a second handle on the same file: what another process (exitmesh admin) does
	origin *httptest.Server
	dbPath string
	closed bool
}

func start(t *testing.T) *fixture {
	t.Helper()
	return startWith(t, testConfig, slog.New(slog.DiscardHandler))
}

// startWith starts a node on the config text, whose %s is the SQLite file.
func startWith(t *testing.T, text string, log *slog.Logger) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{dbPath: filepath.Join(dir, "exitmesh.db")}
	cfgPath := filepath.Join(dir, "exitmesh.yaml")
	if err := os.WriteFile(cfgPath, fmt.Appendf(nil, text, f.dbPath), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f.node, err = node.Start(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.close(t) })
	if f.admin, err = store.Open(ctx, "sqlite:"+f.dbPath); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.admin.Close() })
	f.origin = httptest.NewServer(origin.Handler())
	t.Cleanup(f.origin.Close)
	return f
}

// close stops the node once; later calls do nothing.
func (f *fixture) close(t *testing.T) {
	if f.closed {
		return
	}
	f.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.node.Close(ctx); err != nil {
		t.Errorf("node close: %v", err)
	}
}

// createAccount creates a confirmed account on the starter plan, authorized on us-ca unless proxies
// are named.
func (f *fixture) createAccount(t *testing.T, username, password string, proxies ...string) domain.Account {
	t.Helper()
	if proxies == nil {
		proxies = []string{"us-ca"}
	}
	hash, err := auth.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	a, err := f.admin.CreateAccount(context.Background(), domain.NewAccount{Username: username, PasswordHash: hash,
		Plan: "starter", Confirmed: true, Proxies: proxies})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// client returns a client of the us-ca proxy, optionally binding a source address.
func (f *fixture) client(login, password, source string) *http.Client {
	return clientVia(f.node.ProxyAddr("us-ca"), login, password, source)
}

// clientVia returns a client of the proxy server at proxyAddr, optionally binding a source address.
func clientVia(proxyAddr, login, password, source string) *http.Client {
	u := &url.URL{Scheme: "http", Host: proxyAddr}
	if login != "" {
		u.User = url.UserPassword(login, password)
	}
	tr := &http.Transport{Proxy: http.ProxyURL(u), DisableKeepAlives: true}
	if source != "" {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
		tr.DialContext = d.DialContext
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// status performs GET url and returns the status with the proxy's error reason.
func status(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-ProxyMesh-Error")
}

// eventually waits for check to pass (see testwait).
var eventually = testwait.For

// is returns a check of a (status, reason) pair against the wanted one.
func is(status int, reason string) func(int, string) error {
	return func(gotStatus int, gotReason string) error {
		if gotStatus != status || gotReason != reason {
			return fmt.Errorf("got %d %q, want %d %q", gotStatus, gotReason, status, reason)
		}
		return nil
	}
}

func TestChangesFromAnotherProcessReachTheProxy(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	u := f.origin.URL + "/ip"
	alice := f.client("alice", "alice-password", "")

	if s, r := status(t, alice, u); s != 407 || r != "auth-failed" {
		t.Fatalf("before the account exists: %d %s, want 407", s, r)
	}
	f.createAccount(t, "alice", "alice-password")
	eventually(t, "new account accepted", func() error { return is(200, "")(status(t, alice, u)) })

	if _, err := f.admin.UpdateAccount(ctx, "alice", domain.AccountUpdate{Disabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "disabled account refused", func() error { return is(403, "account-disabled")(status(t, alice, u)) })
	if _, err := f.admin.UpdateAccount(ctx, "alice", domain.AccountUpdate{Disabled: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "re-enabled account accepted", func() error { return is(200, "")(status(t, alice, u)) })

	fromIP := f.client("", "", "127.0.0.8")
	if s, r := status(t, fromIP, u); s != 407 {
		t.Fatalf("unauthorized IP: %d %s, want 407", s, r)
	}
	if err := f.admin.AddIP(ctx, "alice", netip.MustParseAddr("127.0.0.8")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "authorized IP accepted", func() error { return is(200, "")(status(t, fromIP, u)) })
	if err := f.admin.RemoveIP(ctx, "alice", netip.MustParseAddr("127.0.0.8")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "removed IP refused", func() error { return is(407, "auth-required")(status(t, fromIP, u)) })

	if err := f.admin.RevokeProxy(ctx, "alice", "us-ca"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "revoked proxy refused", func() error { return is(403, "proxy-not-authorized")(status(t, alice, u)) })
	if err := f.admin.AuthorizeProxy(ctx, "alice", "us-ca"); err != nil {
		t.Fatal(err)
	}

	hash, _ := auth.HashPassword("new-password")
	if _, err := f.admin.UpdateAccount(ctx, "alice", domain.AccountUpdate{PasswordHash: &hash}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "old password refused after change", func() error { return is(407, "auth-failed")(status(t, alice, u)) })
	if s, r := status(t, f.client("alice", "new-password", ""), u); s != 200 {
		t.Errorf("new password: %d %s", s, r)
	}

	sub, err := f.admin.CreateSubAccount(ctx, "alice", domain.NewSubAccount{Username: "alice-bot", PasswordHash: hash, Proxies: []string{"us-ca"}})
	if err != nil {
		t.Fatal(err)
	}
	bot := f.client("alice-bot", "new-password", "")
	eventually(t, "sub-account accepted", func() error { return is(200, "")(status(t, bot, u)) })
	if _, err := f.admin.UpdateSubAccount(ctx, "alice", sub.Username, domain.SubAccountUpdate{Active: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "inactive sub-account refused", func() error { return is(403, "account-disabled")(status(t, bot, u)) })
}

func ptr[T any](v T) *T { return &v }

func TestUsageAddsUpAndSurvivesShutdown(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	acct := f.createAccount(t, "alice", "alice-password")
	alice := f.client("alice", "alice-password", "")
	eventually(t, "account visible", func() error { return is(200, "")(status(t, alice, f.origin.URL+"/ip")) })

	var in, out int64
	for i := range 5 {
		n := 1000 * (i + 1)
		resp, err := alice.Get(fmt.Sprintf("%s/bytes/%d", f.origin.URL, n))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out += got
	}
	body := strings.Repeat("x", 777)
	resp, err := alice.Post(f.origin.URL+"/sha256", "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	in += int64(len(body))
	out += int64(len(got))
	out += 10 // the "/ip" answer of the readiness check: "127.0.0.N\n"

	// Close right away: the final flush at shutdown must write what the periodic one has not.
	f.close(t)
	rows, err := f.admin.Usage(ctx, domain.UsageFilter{Username: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	var total domain.UsageCounts
	for _, r := range rows {
		if r.Username != "alice" || r.Proxy != "us-ca" || r.Day != time.Now().UTC().Format(time.DateOnly) {
			t.Errorf("unexpected usage row %+v", r)
		}
		total.Add(r.UsageCounts)
	}
	// The readiness check may have run several times before the account became visible; only the
	// accepted one is counted, so requests are 1 + 5 + 1.
	if total.Requests != 7 || total.BytesIn != in || total.BytesOut != out || total.Tunnels != 0 {
		t.Errorf("usage %+v, want 7 requests, %d bytes in, %d bytes out (account %d)", total, in, out, acct.ID)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	f := start(t)
	f.createAccount(t, "alice", "alice-password")
	alice := f.client("alice", "alice-password", "")
	eventually(t, "account visible", func() error { return is(200, "")(status(t, alice, f.origin.URL+"/ip")) })
	status(t, f.client("alice", "wrong-password", ""), f.origin.URL+"/ip")

	resp, err := http.Get("http://" + f.node.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	for _, w := range []string{
		`exitmesh_proxy_requests_total{code="2xx",proxy="us-ca"} 1`,
		`exitmesh_proxy_errors_total{proxy="us-ca",reason="auth-failed"}`,
		`exitmesh_proxy_bytes_total{direction="out",proxy="us-ca"} 10`,
		`exitmesh_exit_requests_total{exit="127.0.0.`,
		`exitmesh_proxy_tunnels_active{proxy="us-ca"} 0`,
		`go_goroutines`,
	} {
		if !strings.Contains(string(text), w) {
			t.Errorf("metrics lack %q", w)
		}
	}
}

// TestFailedStartLeavesNothingBound: a start that fails half-way (the API's port is taken) closes
// what it had opened — the proxy server's port is free again — and the same config starts once the
// port is free.
func TestFailedStartLeavesNothingBound(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxyAddr := free.Addr().String()
	free.Close()
	dir := t.TempDir()
	text := strings.NewReplacer(`api: {listen: "127.0.0.1:0"}`, `api: {listen: "`+taken.Addr().String()+`"}`,
		`listen: "127.0.0.1:0"
    country`, `listen: "`+proxyAddr+`"
    country`).Replace(testConfig)
	cfgPath := filepath.Join(dir, "exitmesh.yaml")
	if err := os.WriteFile(cfgPath, fmt.Appendf(nil, text, filepath.Join(dir, "exitmesh.db")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Proxies[0].Listen != proxyAddr || cfg.API.Listen != taken.Addr().String() {
		t.Fatalf("config listens on %s and %s, want %s and %s", cfg.Proxies[0].Listen, cfg.API.Listen, proxyAddr, taken.Addr())
	}
	n, err := node.Start(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err == nil {
		n.Close(t.Context())
		t.Fatal("Start succeeded on a taken API port")
	}
	if !strings.Contains(err.Error(), "api listener") {
		t.Errorf("Start: %v, want the API listener's failure", err)
	}
	ln, err := net.Listen("tcp", proxyAddr)
	if err != nil {
		t.Fatalf("the proxy server's port is still held after the failed start: %v", err)
	}
	ln.Close()
	taken.Close()
	n, err = node.Start(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Start once the port is free: %v", err)
	}
	if got := n.ProxyAddr("us-ca"); got != proxyAddr {
		t.Errorf("proxy server on %s, want %s", got, proxyAddr)
	}
	if err := n.Close(t.Context()); err != nil {
		t.Errorf("Close: %v", err)
	}
}
