package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/origin"
	"github.com/exitmesh/exitmesh/internal/store/pgtest"
)

// dbRelay stands between the nodes and PostgreSQL so the test can cut the database away and bring it
// back, as a network partition or a database restart would, without touching the server itself.
type dbRelay struct {
	ln     net.Listener
	target string
	mu     sync.Mutex // guards the following fields
	cut    bool
	conns  []net.Conn
}

// startRelay relays to the database server of dbURL and returns the URL the nodes use.
func startRelay(t *testing.T, dbURL string) (*dbRelay, string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	r := &dbRelay{ln: ln, target: u.Host}
	if !strings.Contains(r.target, ":") {
		r.target += ":5432"
	}
	u.Host = ln.Addr().String()
	t.Cleanup(func() { ln.Close(); r.setCut(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go r.serve(c)
		}
	}()
	return r, u.String()
}

func (r *dbRelay) serve(c net.Conn) {
	r.mu.Lock()
	if r.cut {
		r.mu.Unlock()
		c.Close()
		return
	}
	up, err := net.DialTimeout("tcp", r.target, 5*time.Second)
	if err != nil {
		r.mu.Unlock()
		c.Close()
		return
	}
	r.conns = append(r.conns, c, up)
	r.mu.Unlock()
	go func() { io.Copy(up, c); up.Close() }()
	io.Copy(c, up)
	c.Close()
}

// setCut closes every connection and refuses new ones (true), or lets them through again (false).
func (r *dbRelay) setCut(cut bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cut = cut
	if cut {
		for _, c := range r.conns {
			c.Close()
		}
		r.conns = nil
	}
}

const nodeTemplate = `
store: %q
node: {name: %s, api: %t}
api: {listen: "127.0.0.1:0"}
metrics: {listen: "off"}
sync: {interval: 500ms}
usage: {flush_interval: 300ms}
egress: {allow: [127.0.0.1/32]}
plans:
  - {name: starter, proxies: 3, subs: 5, ips: 10, hostnames: 5, bandwidth: 0, tokens: 3}
proxies: %s
`

// cluster is three exitmesh processes sharing one PostgreSQL database: an API node and two proxy
// nodes hosting different proxy servers.
type cluster struct {
	t          *testing.T
	apiAddr    string
	apiClient  *http.Client
	proxyAddrs map[string]string // proxy server name → address
	procs      map[string]*process
	relay      *dbRelay
	apiConfig  string

	// What the test's clients sent and received through answered (200) proxy requests: the usage the
	// nodes must report.
	sent, received int64
}

func startCluster(t *testing.T) *cluster {
	relay, relayed := startRelay(t, pgtest.URL(t))
	c := &cluster{t: t, relay: relay, proxyAddrs: map[string]string{}, procs: map[string]*process{}}
	write := func(name string, api bool, proxies string) (cfgPath, dir string) {
		dir = t.TempDir()
		cfgPath = filepath.Join(dir, "exitmesh.yaml")
		os.WriteFile(cfgPath, fmt.Appendf(nil, nodeTemplate, relayed, name, api, proxies), 0o600)
		return cfgPath, dir
	}
	for _, n := range []struct{ name, proxies string }{
		{"proxy-a", `[{name: us-ca, listen: "127.0.0.1:0", country: US, exits: [{ip: 127.0.0.2}, {ip: 127.0.0.3}]}]`},
		{"proxy-b", `[{name: world, listen: "127.0.0.1:0", exits: [{ip: 127.0.0.4, country: DE}, {ip: 127.0.0.5, country: JP}]}]`},
	} {
		cfg, dir := write(n.name, false, n.proxies)
		p := startProcessIn(t, dir, "serve", "--config", cfg)
		m := p.waitFor(t, regexp.MustCompile(`proxy server listening.*proxy=(\S+) addr=(\S+)`))
		c.proxyAddrs[m[1]] = m[2]
		c.procs[n.name] = p
	}
	var dir string
	c.apiConfig, dir = write("api", true, "[]")
	c.procs["api"] = startProcessIn(t, dir, "serve", "--config", c.apiConfig)
	c.apiAddr = c.procs["api"].waitFor(t, regexp.MustCompile(`api listening"? addr=(\S+) scheme=https`))[1]
	c.apiClient = apiClient(t, filepath.Join(dir, "exitmesh-api.crt"))
	return c
}

// api calls the account API as alice and returns the status and body.
func (c *cluster) api(method, path string, form url.Values) (int, string) {
	c.t.Helper()
	req, _ := http.NewRequest(method, "https://"+c.apiAddr+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("alice", "alice-password")
	resp, err := c.apiClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// wrongPassword sends a request with wrong proxy credentials from source and returns the status.
func (c *cluster) wrongPassword(proxyName, source, target string) int {
	c.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 5 * time.Second}
	u := &url.URL{Scheme: "http", Host: c.proxyAddrs[proxyName], User: url.UserPassword("alice", "wrong-password")}
	tr := &http.Transport{Proxy: http.ProxyURL(u), DialContext: d.DialContext, DisableKeepAlives: true}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(target)
	if err != nil {
		c.t.Fatalf("through %s: %v", proxyName, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// apiFrom calls GET path on the API as alice from source.
func (c *cluster) apiFrom(source, path string) (int, string) {
	c.t.Helper()
	tr := c.apiClient.Transport.(*http.Transport).Clone()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 5 * time.Second}
	tr.DialContext = d.DialContext
	req, _ := http.NewRequest(http.MethodGet, "https://"+c.apiAddr+path, nil)
	req.SetBasicAuth("alice", "alice-password")
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		c.t.Fatalf("API from %s: %v", source, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// fetch sends GET target through a proxy server from source (no credentials) and returns the status.
func (c *cluster) fetch(proxyName, source, target string) int {
	c.t.Helper()
	return c.send(proxyName, source, http.MethodGet, target, "")
}

// send makes one request through a proxy server from source, and counts its payload when answered.
func (c *cluster) send(proxyName, source, method, target, body string) int {
	c.t.Helper()
	return c.sendWith(proxyName, source, method, target, body, nil)
}

// sendWith is send with more request header fields (Proxy-Authorization, say).
func (c *cluster) sendWith(proxyName, source, method, target, body string, header http.Header) int {
	c.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 5 * time.Second}
	tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: c.proxyAddrs[proxyName]}),
		DialContext: d.DialContext, DisableKeepAlives: true}
	req, _ := http.NewRequest(method, target, strings.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		c.t.Fatalf("through %s: %v", proxyName, err)
	}
	defer resp.Body.Close()
	n, _ := io.Copy(io.Discard, resp.Body)
	if resp.StatusCode == http.StatusOK {
		c.sent += int64(len(body))
		c.received += n
	}
	return resp.StatusCode
}

// propagation waits until both proxy servers answer want to a client at source, and returns how long
// that took. The bound only keeps a broken build from hanging; the time is reported.
func (c *cluster) propagation(what, source, target string, want int) time.Duration {
	c.t.Helper()
	return c.propagate(what, want, func(name string) int { return c.fetch(name, source, target) })
}

// propagate waits until probe answers want for both proxy servers, and returns how long that took.
func (c *cluster) propagate(what string, want int, probe func(proxyName string) int) time.Duration {
	c.t.Helper()
	start := time.Now()
	for _, name := range []string{"us-ca", "world"} {
		for {
			if got := probe(name); got == want {
				break
			}
			if time.Since(start) > 3*time.Second {
				c.t.Fatalf("%s: %s does not answer %d after %v", what, name, want, time.Since(start))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	d := time.Since(start)
	c.t.Logf("%s reached both proxy nodes in %v", what, d.Round(time.Millisecond))
	return d
}

func TestManyNodesOnPostgreSQL(t *testing.T) {
	c := startCluster(t)
	originSrv := httptest.NewServer(origin.Handler())
	defer originSrv.Close()
	small := originSrv.URL + "/ip"
	const client = "127.0.0.30"

	// The operator creates alice from the API node's config; the proxy nodes registered their servers.
	cmd := adminCmd(t, c.apiConfig, "alice-password\n", "account", "create", "alice", "--plan", "starter", "--password-stdin", "--proxies", "us-ca,world")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("admin account create: %v\n%s", err, out)
	}
	if got := c.fetch("us-ca", client, small); got != 407 {
		t.Fatalf("before the IP is authorized: %d, want 407", got)
	}
	if status, body := c.api("POST", "/api/ip/add/", url.Values{"ip": {client}}); status != 200 {
		t.Fatalf("ip/add: %d %s", status, body)
	}
	c.propagation("an IP added through the API", client, small, 200)

	out, err := adminCmd(t, c.apiConfig, "", "account", "disable", "alice").CombinedOutput()
	if err != nil {
		t.Fatalf("disable: %v %s", err, out)
	}
	c.propagation("disabling the account", client, small, 403)
	adminCmd(t, c.apiConfig, "", "account", "enable", "alice").Run()
	c.propagation("enabling it again", client, small, 200)

	// Traffic through both nodes, both ways.
	for i := range 6 {
		name := []string{"us-ca", "world"}[i%2]
		c.fetch(name, client, fmt.Sprintf("%s/bytes/%d", originSrv.URL, 1000*(i+1)))
		c.send(name, client, http.MethodPost, originSrv.URL+"/sha256", strings.Repeat("u", 5000+i))
	}

	// The database goes away: proxying goes on with what the nodes know, the API answers 503.
	c.relay.setCut(true)
	for _, name := range []string{"us-ca", "world"} {
		if got := c.fetch(name, client, originSrv.URL+"/bytes/777"); got != 200 {
			t.Errorf("%s while the database is away: %d, want 200", name, got)
		}
	}
	if status, body := c.api("GET", "/api/ips/", nil); status != 503 || !strings.Contains(body, "Plan error") {
		t.Errorf("API while the database is away: %d %s, want 503 Plan error", status, body)
	}

	// It comes back: the API serves again and a change made now reaches both nodes.
	c.relay.setCut(false)
	eventually(t, func() error {
		if status, body := c.api("GET", "/api/ips/", nil); status != 200 {
			return fmt.Errorf("API after the database returned: %d %s", status, body)
		}
		return nil
	})
	if status, body := c.api("POST", "/api/ip/delete/", url.Values{"ip": {client}}); status != 204 {
		t.Fatalf("ip/delete: %d %s", status, body)
	}
	c.propagation("an IP deleted after the outage", client, small, 407)

	// A ban earned on one node holds on every node: wrong passwords on us-ca, then world and the API
	// refuse that IP too.
	const attacker = "127.0.0.31"
	for range 11 { // more than bans.auth_failures (10)
		if got := c.wrongPassword("us-ca", attacker, small); got != 407 {
			t.Fatalf("wrong password on us-ca: %d, want 407", got)
		}
	}
	start := time.Now()
	eventually(t, func() error {
		if got := c.wrongPassword("world", attacker, small); got != 403 {
			return fmt.Errorf("world answers %d to the IP banned on us-ca, want 403", got)
		}
		return nil
	})
	t.Logf("a ban on one proxy node reached the other in %v", time.Since(start).Round(time.Millisecond))
	eventually(t, func() error {
		if status, body := c.apiFrom(attacker, "/api/ips/"); status != 403 || !strings.Contains(body, "banned") {
			return fmt.Errorf("API answers %d %s to the banned IP, want 403", status, body)
		}
		return nil
	})

	// Stop the proxy nodes (SIGTERM flushes their last usage), then compare with what was received.
	for _, name := range []string{"proxy-a", "proxy-b"} {
		c.procs[name].stop(t, os.Interrupt)
	}
	status, body := c.api("GET", "/api/usage/", nil)
	var usage struct {
		Usage []struct {
			Proxy    string `json:"proxy"`
			BytesIn  int64  `json:"bytes_in"`
			BytesOut int64  `json:"bytes_out"`
		} `json:"usage"`
	}
	if err := json.Unmarshal([]byte(body), &usage); status != 200 || err != nil {
		t.Fatalf("usage: %d %s", status, body)
	}
	var in, outBytes int64
	perProxy := map[string]int64{}
	for _, u := range usage.Usage {
		in += u.BytesIn
		outBytes += u.BytesOut
		perProxy[u.Proxy] += u.BytesOut
	}
	if in != c.sent || outBytes != c.received || perProxy["us-ca"] == 0 || perProxy["world"] == 0 {
		t.Errorf("usage reports %d bytes in and %d out (%v); the clients sent %d and received %d", in, outBytes, perProxy, c.sent, c.received)
	}
	t.Logf("usage across two nodes: %d bytes in, %d out, equal to what the clients sent and received", in, outBytes)
	c.procs["api"].stop(t, os.Interrupt)
}

// TestTokensOnEveryNode: a token made on the API node works on every proxy node, and once deactivated
// or expired it stops working on all of them (the time it took is logged).
func TestTokensOnEveryNode(t *testing.T) {
	c := startCluster(t)
	originSrv := httptest.NewServer(origin.Handler())
	defer originSrv.Close()
	target := originSrv.URL + "/ip"
	cmd := adminCmd(t, c.apiConfig, "alice-password\n", "account", "create", "alice", "--plan", "starter", "--password-stdin", "--proxies", "us-ca,world")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("admin account create: %v\n%s", err, out)
	}
	create := func(form url.Values) (token, id string) {
		status, body := c.api("POST", "/api/token/create/", form)
		var tok struct {
			ID    int64
			Token string
		}
		if err := json.Unmarshal([]byte(body), &tok); status != 200 || err != nil {
			t.Fatalf("token/create: %d %s", status, body)
		}
		return tok.Token, fmt.Sprint(tok.ID)
	}
	withToken := func(token string) func(string) int {
		h := http.Header{"Proxy-Authorization": {"Bearer " + token}}
		return func(name string) int { return c.sendWith(name, "127.0.0.40", "GET", target, "", h) }
	}
	token, id := create(nil)
	c.propagate("a new token", 200, withToken(token))
	if status, body := c.api("POST", "/api/token/deactivate/", url.Values{"id": {id}}); status != 200 {
		t.Fatalf("token/deactivate: %d %s", status, body)
	}
	c.propagate("a deactivated token", 407, withToken(token))

	expires := time.Now().Add(5 * time.Second).Truncate(time.Second) // whole seconds (RFC 3339 here); time to see it work first, even on a loaded machine
	expiring, _ := create(url.Values{"expires": {expires.UTC().Format(time.RFC3339)}})
	c.propagate("an expiring token", 200, withToken(expiring))
	time.Sleep(time.Until(expires))
	c.propagate("an expired token (from its expiry)", 407, withToken(expiring))
}
