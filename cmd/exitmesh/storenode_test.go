package main_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/store"
	"github.com/exitmesh/exitmesh/internal/store/pgtest"
)

// storeNodeConfig is one node hosting the account API and three proxy servers on the store %q, with
// usage flushed every %s. The proxy servers advertise fixed addresses, so what the API answers does
// not change when a restart binds other ports.
const storeNodeConfig = `
store: %q
api: {listen: "127.0.0.1:0"}
metrics: {listen: "off"}
sync: {interval: 200ms}
usage: {flush_interval: %s}
timeouts: {shutdown: 5s}
egress: {allow: [127.0.0.1/32]}
plans:
  - {name: big, proxies: 3, subs: 1000, ips: 10000, hostnames: 1, bandwidth: 0}
proxies:
  - {name: us-ca, listen: "127.0.0.1:0", address: "us-ca.test:31280", exits: [{ip: 127.0.0.2}, {ip: 127.0.0.3}]}
  - {name: us-ny, listen: "127.0.0.1:0", address: "us-ny.test:31280", exits: [{ip: 127.0.0.4}]}
  - {name: eu-de, listen: "127.0.0.1:0", address: "eu-de.test:31280", exits: [{ip: 127.0.0.5}]}
`

// alicePassword is the password of alice, the account every storeNode test uses.
const alicePassword = "alice-password"

// backend is a store the tests run a node on.
type backend struct {
	name string
	dsn  func(t *testing.T, dir string) string
}

var backends = []backend{
	{"sqlite", func(t *testing.T, dir string) string { return "sqlite:" + filepath.Join(dir, "exitmesh.db") }},
	{"postgres", func(t *testing.T, dir string) string { return pgtest.URL(t) }},
}

// storeNode is an exitmesh serve process on a store that outlives it: the test starts it, stops or
// kills it, and starts it again on the same store.
type storeNode struct {
	t     *testing.T
	dir   string // working directory: the config, the API certificate, the SQLite file
	cfg   string
	dsn   string
	proc  *process
	addrs map[string]string // proxy server name → address, and "api"
	api   *http.Client
	db    domain.Store // the test's own handle on the store, opened on first use
}

// newStoreNode writes the config of a node on backend b, creates alice on it with the operator's
// command, and returns the node, not started.
func newStoreNode(t *testing.T, b backend, flushEvery string) *storeNode {
	t.Helper()
	dir := t.TempDir()
	n := &storeNode{t: t, dir: dir, cfg: filepath.Join(dir, "exitmesh.yaml"), dsn: b.dsn(t, dir)}
	n.configure(flushEvery)
	cmd := adminCmd(t, n.cfg, alicePassword+"\n", "account", "create", "alice", "--plan", "big", "--password-stdin", "--proxies", "us-ca")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("admin account create: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if n.db != nil {
			n.db.Close()
		}
	})
	return n
}

// configure writes the node's config with usage flushed every flushEvery; it applies at the next start.
func (n *storeNode) configure(flushEvery string) {
	n.t.Helper()
	if err := os.WriteFile(n.cfg, fmt.Appendf(nil, storeNodeConfig, n.dsn, flushEvery), 0o600); err != nil {
		n.t.Fatal(err)
	}
}

// start runs "exitmesh serve" and waits until its three proxy servers and the API listen.
func (n *storeNode) start() {
	n.t.Helper()
	n.proc = startProcessIn(n.t, n.dir, "serve", "--config", n.cfg)
	n.addrs = n.proc.listening(n.t, 4)
	if n.api == nil {
		n.api = apiClient(n.t, filepath.Join(n.dir, "exitmesh-api.crt"))
	}
}

// call sends one account API request as alice. An error means the node gave no answer.
func (n *storeNode) call(method, path string, form url.Values) (status int, body string, err error) {
	req, err := http.NewRequest(method, "https://"+n.addrs["api"]+path, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("alice", alicePassword)
	resp, err := n.api.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// usage reads alice's usage from the store through the test's own handle, not through the node.
func (n *storeNode) usage() domain.UsageCounts {
	n.t.Helper()
	if n.db == nil {
		db, err := store.Open(context.Background(), n.dsn)
		if err != nil {
			n.t.Fatal(err)
		}
		n.db = db
	}
	rows, err := n.db.Usage(context.Background(), domain.UsageFilter{Username: "alice"})
	if err != nil {
		n.t.Fatal(err)
	}
	var total domain.UsageCounts
	for _, r := range rows {
		total.Add(r.UsageCounts)
	}
	return total
}
