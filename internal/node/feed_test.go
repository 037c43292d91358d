package node_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/node"
	"github.com/exitmesh/exitmesh/internal/origin"
	"github.com/exitmesh/exitmesh/internal/store"
	"github.com/exitmesh/exitmesh/internal/store/pgtest"
)

// Nodes on one PostgreSQL store follow its change feed: woken by notifications at each commit, and
// by polling every sync.interval when notifications are lost.

const feedNodeConfig = `
store: %q
node: {name: %s, api: false}
metrics: {listen: "off"}
sync: {interval: %s}
egress: {allow: [127.0.0.1/32]}
plans:
  - {name: starter, proxies: 3, subs: 5, ips: 10, hostnames: 5, bandwidth: 0}
proxies:
  - {name: %s, listen: "127.0.0.1:0", exits: [{ip: 127.0.0.2}]}
`

func startFeedNode(t *testing.T, storeURL, name, proxy, interval string) *node.Node {
	t.Helper()
	n, _ := startNodeFrom(t, name, fmt.Sprintf(feedNodeConfig, storeURL, name, interval, proxy))
	return n
}

// feedNetwork is two nodes and an admin handle on one PostgreSQL schema, with an origin.
type feedNetwork struct {
	admin  domain.Store
	a, b   *node.Node
	origin *httptest.Server
	hash   string
}

func newFeedNetwork(t *testing.T, dbURL, interval string) *feedNetwork {
	t.Helper()
	ctx := t.Context()
	f := &feedNetwork{a: startFeedNode(t, dbURL, "node-a", "us-ca", interval), b: startFeedNode(t, dbURL, "node-b", "world", interval)}
	var err error
	if f.admin, err = store.Open(ctx, dbURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.admin.Close() })
	if f.hash, err = auth.HashPassword("password-1"); err != nil {
		t.Fatal(err)
	}
	f.origin = httptest.NewServer(origin.Handler())
	t.Cleanup(f.origin.Close)
	return f
}

// accepted checks that login is served by the proxy server of n called proxy.
func (f *feedNetwork) accepted(t *testing.T, n *node.Node, proxy, login string) func() error {
	c := proxyClient(n.ProxyAddr(proxy), login, "password-1")
	return func() error { return is(http.StatusOK, "")(status(t, c, f.origin.URL+"/ip")) }
}

// TestNotificationsCarryChangesBetweenNodes: with polling an hour apart, an account created on the
// store is served by both nodes: the commit's notification woke them.
func TestNotificationsCarryChangesBetweenNodes(t *testing.T) {
	f := newFeedNetwork(t, pgtest.URL(t), "1h")
	f.createAndWait(t, "notified")
}

// createAndWait creates three accounts in turn and waits, for each, until both nodes serve it.
func (f *feedNetwork) createAndWait(t *testing.T, prefix string) {
	t.Helper()
	for i := range 3 {
		login := fmt.Sprintf("%s-%d", prefix, i)
		_, err := f.admin.CreateAccount(t.Context(), domain.NewAccount{Username: login, PasswordHash: f.hash, Plan: "starter",
			Confirmed: true, Proxies: []string{"us-ca", "world"}})
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, login+" served by node A", f.accepted(t, f.a, "us-ca", login))
		eventually(t, login+" served by node B", f.accepted(t, f.b, "world", login))
	}
}

// TestPollingFollowsWhenNotificationsAreLost: the nodes' listening connections are cut again and
// again (pg_terminate_backend, as a database restart or a network cut would); every change still
// reaches both nodes, by polling.
func TestPollingFollowsWhenNotificationsAreLost(t *testing.T) {
	dbURL := pgtest.URL(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	app := fmt.Sprintf("exitmesh-feed-test-%d", time.Now().UnixNano())
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	f := newFeedNetwork(t, u.String(), "100ms")

	killer, err := sql.Open("pgx", pgtest.BaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killer.Close() })
	var killed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			var n int64
			err := killer.QueryRowContext(context.Background(), `SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE application_name = $1 AND query LIKE 'LISTEN%'`, app).Scan(&n)
			if err == nil {
				killed.Add(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	t.Cleanup(func() { close(stop); wg.Wait() })
	eventually(t, "a listening connection cut", func() error {
		if killed.Load() == 0 {
			return fmt.Errorf("none cut yet")
		}
		return nil
	})
	f.createAndWait(t, "polled")
	if killed.Load() == 0 {
		t.Fatal("no listening connection was cut: the test proved nothing")
	}
}
