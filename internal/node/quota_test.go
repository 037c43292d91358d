package node_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/node"
	"github.com/exitmesh/exitmesh/internal/origin"
	"github.com/exitmesh/exitmesh/internal/proxy"
	"github.com/exitmesh/exitmesh/internal/store"
	"github.com/exitmesh/exitmesh/internal/store/pgtest"
)

// quotaNodeConfig is a proxy-only node on a shared store hosting one proxy server; every node
// declares the tiny plan of 10 KB (10,000 bytes) a month.
const quotaNodeConfig = `
store: %q
node: {name: %s, api: false}
metrics: {listen: "off"}
sync: {interval: 100ms}
usage: {flush_interval: 200ms}
egress: {allow: [127.0.0.1/32]}
plans:
  - {name: tiny, proxies: 2, subs: 1, ips: 1, hostnames: 1, bandwidth: 10KB}
proxies:
  - {name: %s, listen: "127.0.0.1:0", exits: [{ip: %s}]}
`

const tinyBandwidth = 10_000

// startProxyNode starts a node called name on storeURL hosting the proxy server proxyName. The
// returned stop closes it; it runs at cleanup too, and only once.
func startProxyNode(t *testing.T, storeURL, name, proxyName, exitIP string) (n *node.Node, stop func()) {
	t.Helper()
	return startNodeFrom(t, name, fmt.Sprintf(quotaNodeConfig, storeURL, name, proxyName, exitIP))
}

// startNodeFrom starts a node called name from the config text. The returned stop closes it; it
// runs at cleanup too, and only once.
func startNodeFrom(t *testing.T, name, text string) (n *node.Node, stop func()) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "exitmesh.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err = node.Start(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	stop = sync.OnceFunc(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Close(ctx); err != nil {
			t.Errorf("close %s: %v", name, err)
		}
	})
	t.Cleanup(stop)
	return n, stop
}

// proxyClient returns a client of the proxy server at addr, logged in as login.
func proxyClient(addr, login, password string) *http.Client {
	u := &url.URL{Scheme: "http", Host: addr, User: url.UserPassword(login, password)}
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u), DisableKeepAlives: true}, Timeout: 10 * time.Second}
}

// TestBandwidthSpentOnOneNodeIsRefusedOnAnother runs two proxy nodes on one PostgreSQL schema.
// Node A alone sees alice's traffic through it to the byte, and refuses her at the request after
// her plan's bandwidth is spent; node B, which carried none of it, refuses her within a few sync
// intervals; a node started afterwards refuses her from its first request.
func TestBandwidthSpentOnOneNodeIsRefusedOnAnother(t *testing.T) {
	ctx := t.Context()
	dbURL := pgtest.URL(t)
	a, stopA := startProxyNode(t, dbURL, "node-a", "us-ca", "127.0.0.2")
	b, _ := startProxyNode(t, dbURL, "node-b", "world", "127.0.0.3")
	admin, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	hash, err := auth.HashPassword("password-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"alice", "erin"} {
		_, err := admin.CreateAccount(ctx, domain.NewAccount{Username: name, PasswordHash: hash, Plan: "tiny",
			Confirmed: true, Proxies: []string{"us-ca", "world"}})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*node.Node{a, b} {
		if err := n.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	originSrv := httptest.NewServer(origin.Handler())
	t.Cleanup(originSrv.Close)

	// 2,500-byte answers, chunked: the client reads the end of each only after the proxy counted it.
	const size = 2500
	big := fmt.Sprintf("%s/bytes/%d", originSrv.URL, size)
	aliceOnA := proxyClient(a.ProxyAddr("us-ca"), "alice", "password-1")
	served := 0
	for ; ; served++ {
		s, r := status(t, aliceOnA, big)
		if s == proxy.StatusBandwidthExceeded && r == "bandwidth-exceeded" {
			break
		}
		if s != http.StatusOK || served == 100 {
			t.Fatalf("request %d through node A: %d %q", served+1, s, r)
		}
	}
	if want := (tinyBandwidth + size - 1) / size; served != want {
		t.Errorf("node A served %d requests of %d bytes before the 509, want %d", served, size, want)
	}

	aliceOnB := proxyClient(b.ProxyAddr("world"), "alice", "password-1")
	start := time.Now()
	eventually(t, "node B refuses what node A spent", func() error {
		return is(proxy.StatusBandwidthExceeded, "bandwidth-exceeded")(status(t, aliceOnB, originSrv.URL+"/ip"))
	})
	t.Logf("node B refused %v after node A's first 509", time.Since(start).Round(time.Millisecond))
	if s, r := status(t, proxyClient(b.ProxyAddr("world"), "erin", "password-1"), originSrv.URL+"/ip"); s != http.StatusOK {
		t.Errorf("erin on node B: %d %q, want 200", s, r)
	}

	stopA()
	c, _ := startProxyNode(t, dbURL, "node-c", "us-ca", "127.0.0.4")
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	aliceOnC := proxyClient(c.ProxyAddr("us-ca"), "alice", "password-1")
	if err := is(proxy.StatusBandwidthExceeded, "bandwidth-exceeded")(status(t, aliceOnC, originSrv.URL+"/ip")); err != nil {
		t.Errorf("first request through a node started afterwards: %v", err)
	}
}
