package node_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"github.com/exitmesh/exitmesh/internal/testlog"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/hosting"
	"github.com/exitmesh/exitmesh/internal/node"
	"github.com/exitmesh/exitmesh/internal/tcptest"
)

// reloadConfig is a node config whose first %s is the SQLite file and whose second is the list of
// proxy servers.
const reloadConfig = `
store: sqlite:%s
api: {listen: "127.0.0.1:0"}
metrics: {listen: "off"}
sync: {interval: 100ms}
usage: {flush_interval: 200ms}
egress: {allow: [127.0.0.1/32]}
plans:
  - {name: starter, proxies: 5, subs: 5, ips: %d, hostnames: 5, bandwidth: 10GB}
proxies:
%s`

const (
	caTX = `
  - {name: us-ca, listen: "127.0.0.1:0", exits: [{ip: 127.0.0.2}, {ip: 127.0.0.3}]}
  - {name: us-tx, listen: "127.0.0.1:0", exits: [{ip: 127.0.0.6}]}
`
	caNY = `
  - {name: us-ca, listen: "127.0.0.1:0", exits: [{ip: 127.0.0.4}, {ip: 127.0.0.5}]}
  - {name: us-ny, listen: "127.0.0.1:0", exits: [{ip: 127.0.0.7}, {ip: 127.0.0.8}]}
`
)

// startReload starts a node with us-ca (exits .2 and .3) and us-tx (exit .6), and alice, who may
// use both.
func startReload(t *testing.T, log *slog.Logger) *fixture {
	t.Helper()
	f := startWith(t, fmt.Sprintf(reloadConfig, "%s", 10, caTX), log)
	f.createAccount(t, "alice", "alice-password", "us-ca", "us-tx")
	alice := f.client("alice", "alice-password", "")
	eventually(t, "alice accepted", func() error { return is(200, "")(status(t, alice, f.origin.URL+"/ip")) })
	return f
}

// config parses a reloadConfig for this node's store.
func (f *fixture) config(t *testing.T, ips int, proxies string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(fmt.Appendf(nil, reloadConfig, f.dbPath, ips, proxies))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// exitsSeen makes n requests through c and returns the source addresses the origin saw.
func exitsSeen(t *testing.T, c *http.Client, originURL string, n int) []string {
	t.Helper()
	var seen []string
	for range n {
		resp, err := c.Get(originURL + "/ip")
		if err != nil {
			t.Fatalf("GET /ip: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ip := strings.TrimSpace(string(body))
		if resp.StatusCode != 200 || resp.Header.Get("X-ProxyMesh-IP") != ip {
			t.Fatalf("GET /ip: %d, X-ProxyMesh-IP %q, origin saw %q", resp.StatusCode, resp.Header.Get("X-ProxyMesh-IP"), ip)
		}
		if !slices.Contains(seen, ip) {
			seen = append(seen, ip)
		}
	}
	slices.Sort(seen)
	return seen
}

// requireExits requires that requests through c leave only from the exits in want.
func requireExits(t *testing.T, what string, c *http.Client, originURL string, want ...string) {
	t.Helper()
	for _, ip := range exitsSeen(t, c, originURL, 20) {
		if !slices.Contains(want, ip) {
			t.Errorf("%s: a request left from %s, want only %v", what, ip, want)
		}
	}
}

// startEcho starts a TCP server that greets each connection with the source address it sees, then
// echoes what it receives.
func startEcho(t *testing.T) string {
	t.Helper()
	return tcptest.Serve(t, func(c net.Conn) {
		host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		fmt.Fprintln(c, host)
		tcptest.Echo(c)
	})
}

// tunnel is a CONNECT tunnel to the echo server.
type tunnel struct {
	conn net.Conn
	r    *bufio.Reader
	exit string // the source address the echo server saw
}

// openTunnel opens a CONNECT tunnel through the proxy server at proxyAddr to target; the test's
// cleanup closes it.
func openTunnel(t *testing.T, proxyAddr, target, login, password string) *tunnel {
	t.Helper()
	conn, err := net.DialTimeout("tcp", proxyAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	cred := base64.StdEncoding.EncodeToString([]byte(login + ":" + password))
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\n\r\n", target, target, cred)
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT %s: %v %v", target, resp, err)
	}
	greeting, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("tunnel greeting: %v", err)
	}
	tun := &tunnel{conn: conn, r: r, exit: strings.TrimSpace(greeting)}
	if got := resp.Header.Get("X-ProxyMesh-IP"); got != tun.exit {
		t.Fatalf("CONNECT answered X-ProxyMesh-IP %s, the target saw %s", got, tun.exit)
	}
	return tun
}

// echo sends msg through the tunnel and requires it back.
func (tun *tunnel) echo(t *testing.T, msg string) {
	t.Helper()
	tun.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintln(tun.conn, msg); err != nil {
		t.Errorf("tunnel via %s: write: %v", tun.exit, err)
		return
	}
	got, err := tun.r.ReadString('\n')
	if err != nil || strings.TrimSpace(got) != msg {
		t.Errorf("tunnel via %s: read %q, %v; want %q", tun.exit, got, err, msg)
	}
}

// refuses requires that nothing accepts connections at addr any more.
func refuses(t *testing.T, what, addr string) {
	t.Helper()
	if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
		c.Close()
		t.Errorf("%s: %s still accepts connections", what, addr)
	}
}

func catalogue(t *testing.T, s domain.Store) map[string]string {
	t.Helper()
	list, err := s.ListProxyServers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	addrs := make(map[string]string)
	for _, p := range list {
		addrs[p.Name] = p.Address
	}
	return addrs
}

func TestReloadReplacesExitsAndProxiesKeepingTunnels(t *testing.T) {
	f := startReload(t, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	echo := startEcho(t)
	caTunnel := openTunnel(t, f.node.ProxyAddr("us-ca"), echo, "alice", "alice-password")
	txTunnel := openTunnel(t, f.node.ProxyAddr("us-tx"), echo, "alice", "alice-password")
	caTunnel.echo(t, "before the reload")
	txAddr := f.node.ProxyAddr("us-tx")

	changes, err := f.node.Reload(ctx, f.config(t, 20, caNY))
	if err != nil {
		t.Fatalf("Reload: %v", err)
	}
	want := node.Changes{Changes: hosting.Changes{Added: []string{"us-ny"}, Removed: []string{"us-tx"}, Changed: []string{"us-ca"}}}
	if fmt.Sprint(changes) != fmt.Sprint(want) {
		t.Errorf("changes %+v, want %+v", changes, want)
	}

	alice := f.client("alice", "alice-password", "")
	requireExits(t, "us-ca after the reload", alice, f.origin.URL, "127.0.0.4", "127.0.0.5")
	caTunnel.echo(t, "after the reload")
	if caTunnel.exit != "127.0.0.2" && caTunnel.exit != "127.0.0.3" {
		t.Errorf("the us-ca tunnel left from %s, want an exit of before the reload", caTunnel.exit)
	}
	txTunnel.echo(t, "draining") // a removed proxy server's tunnels may finish
	refuses(t, "removed us-tx", txAddr)
	if addr := f.node.ProxyAddr("us-tx"); addr != "" {
		t.Errorf("ProxyAddr(us-tx) = %q after its removal, want empty", addr)
	}

	nyAddr := f.node.ProxyAddr("us-ny")
	if got := catalogue(t, f.admin)["us-ny"]; got != nyAddr || nyAddr == "" {
		t.Errorf("catalogue address of us-ny %q, want the bound %q", got, nyAddr)
	}
	if err := f.admin.AuthorizeProxy(ctx, "alice", "us-ny"); err != nil {
		t.Fatal(err)
	}
	ny := clientVia(nyAddr, "alice", "alice-password", "")
	eventually(t, "us-ny serves alice", func() error { return is(200, "")(status(t, ny, f.origin.URL+"/ip")) })
	requireExits(t, "us-ny", ny, f.origin.URL, "127.0.0.7", "127.0.0.8")

	plans, err := f.admin.ListPlans(ctx)
	if err != nil || len(plans) != 1 || plans[0].MaxIPs != 20 {
		t.Errorf("plans after the reload: %+v %v, want starter with 20 IPs", plans, err)
	}
}

func TestReloadMovesAListenerKeepingTunnels(t *testing.T) {
	f := startReload(t, slog.New(slog.DiscardHandler))
	echo := startEcho(t)
	oldAddr := f.node.ProxyAddr("us-ca")
	tun := openTunnel(t, oldAddr, echo, "alice", "alice-password")

	moved := strings.Replace(caTX, `name: us-ca, listen: "127.0.0.1:0"`, `name: us-ca, listen: "127.0.0.20:0"`, 1)
	changes, err := f.node.Reload(context.Background(), f.config(t, 10, moved))
	if err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if !slices.Equal(changes.Changed, []string{"us-ca"}) || changes.Added != nil || changes.Removed != nil {
		t.Errorf("changes %+v, want us-ca changed", changes)
	}
	newAddr := f.node.ProxyAddr("us-ca")
	if !strings.HasPrefix(newAddr, "127.0.0.20:") {
		t.Fatalf("us-ca now at %q, want 127.0.0.20:*", newAddr)
	}
	refuses(t, "us-ca's old address", oldAddr)
	tun.echo(t, "after the move")
	requireExits(t, "us-ca at its new address", clientVia(newAddr, "alice", "alice-password", ""), f.origin.URL,
		"127.0.0.2", "127.0.0.3")
	if got := catalogue(t, f.admin)["us-ca"]; got != newAddr {
		t.Errorf("catalogue address of us-ca %q, want %q", got, newAddr)
	}
}

func TestReloadFailureChangesNothing(t *testing.T) {
	f := startReload(t, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	echo := startEcho(t)
	tun := openTunnel(t, f.node.ProxyAddr("us-ca"), echo, "alice", "alice-password")
	alice := f.client("alice", "alice-password", "")
	caAddr, txAddr := f.node.ProxyAddr("us-ca"), f.node.ProxyAddr("us-tx")

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	// us-ny is prepared first (bound, pool built), then us-ca's new address fails: all is undone.
	inUse := fmt.Sprintf(`
  - {name: us-ny, listen: "127.0.0.1:0", exits: [{ip: 127.0.0.7}]}
  - {name: us-ca, listen: %q, exits: [{ip: 127.0.0.4}, {ip: 127.0.0.5}]}
`, taken.Addr().String())
	duplicateExit := f.config(t, 20, caNY)
	duplicateExit.Proxies[0].Exits[1].IP = duplicateExit.Proxies[0].Exits[0].IP

	for _, tt := range []struct {
		name string
		cfg  *config.Config
		want []string // in the error
	}{
		{"listen address in use", f.config(t, 20, inUse), []string{"proxies[1].listen (us-ca)", "address already in use"}},
		{"invalid exit", duplicateExit, []string{"proxies[0].exits[1].ip: 127.0.0.4 is already the IP of proxies[0].exits[0]"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.node.Reload(ctx, tt.cfg)
			if err == nil {
				t.Fatal("Reload succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			requireExits(t, "us-ca after a failed reload", alice, f.origin.URL, "127.0.0.2", "127.0.0.3")
			if ca, tx, ny := f.node.ProxyAddr("us-ca"), f.node.ProxyAddr("us-tx"), f.node.ProxyAddr("us-ny"); ca != caAddr || tx != txAddr || ny != "" {
				t.Errorf("after a failed reload: us-ca %s, us-tx %s, us-ny %q; want %s, %s and none", ca, tx, ny, caAddr, txAddr)
			}
			if _, ok := catalogue(t, f.admin)["us-ny"]; ok {
				t.Error("the catalogue has us-ny after a failed reload")
			}
			tun.echo(t, "still here")
		})
	}
	plans, err := f.admin.ListPlans(ctx)
	if err != nil || plans[0].MaxIPs != 10 {
		t.Errorf("plans after failed reloads: %+v %v, want starter with 10 IPs", plans, err)
	}

	// Nothing was left half-done: the same node takes a good reload.
	if _, err := f.node.Reload(ctx, f.config(t, 10, caNY)); err != nil {
		t.Fatalf("Reload after failures: %v", err)
	}
	requireExits(t, "us-ca after a good reload", alice, f.origin.URL, "127.0.0.4", "127.0.0.5")
}

// syncBuffer collects a log that goroutines write while the test reads it.
type syncBuffer = testlog.Buffer

func TestReloadKeepsKeysThatNeedARestart(t *testing.T) {
	var logs syncBuffer
	f := startReload(t, slog.New(slog.NewTextHandler(&logs, nil)))
	apiAddr := f.node.APIAddr()
	cfg := f.config(t, 10, caTX)
	cfg.API.Listen = "127.0.0.1:1"
	cfg.Node.Name = "another-node"
	cfg.Timeouts.Idle = config.Duration(time.Second)

	changes, err := f.node.Reload(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Reload: %v", err)
	}
	want := []string{"api.listen", "node.name", "timeouts.idle"}
	if !slices.Equal(changes.Restart, want) || changes.Added != nil || changes.Removed != nil || changes.Changed != nil {
		t.Errorf("changes %+v, want only %v needing a restart", changes, want)
	}
	for _, key := range want {
		if !strings.Contains(logs.String(), "level=WARN msg=\"config key changed but needs a restart; keeping the running value\" key="+key) {
			t.Errorf("no warning for %s in the log:\n%s", key, logs.String())
		}
	}
	if got := f.node.APIAddr(); got != apiAddr {
		t.Errorf("API address %s after the reload, want the running %s", got, apiAddr)
	}

	f.close(t)
	if _, err := f.node.Reload(context.Background(), f.config(t, 10, caNY)); err == nil {
		t.Error("Reload after Close succeeded, want an error")
	}
}

// TestConcurrentReloads reloads from two goroutines while clients use the proxies and read their
// addresses; run with -race.
func TestConcurrentReloads(t *testing.T) {
	f := startReload(t, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	configs := []*config.Config{f.config(t, 10, caTX), f.config(t, 10, caNY)}
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			for i := range 5 {
				if _, err := f.node.Reload(ctx, configs[(g+i)%2]); err != nil {
					t.Errorf("Reload: %v", err)
				}
			}
		})
	}
	done := make(chan struct{})
	var users sync.WaitGroup
	users.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			resp, err := clientVia(f.node.ProxyAddr("us-ca"), "alice", "alice-password", "").Get(f.origin.URL + "/ip")
			if err != nil {
				t.Errorf("request during reloads: %v", err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("request during reloads: status %d", resp.StatusCode)
				return
			}
		}
	})
	wg.Wait()
	close(done)
	users.Wait()
	alice := f.client("alice", "alice-password", "")
	requireExits(t, "us-ca after the reloads", alice, f.origin.URL, "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
}
