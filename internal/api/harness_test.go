package api_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"github.com/exitmesh/exitmesh/internal/testlog"
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
	"github.com/exitmesh/exitmesh/internal/dnstest"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/node"
	"github.com/exitmesh/exitmesh/internal/origin"
	"github.com/exitmesh/exitmesh/internal/store"
)

const nodeConfig = `
store: sqlite:%[1]s/exitmesh.db
api:
  listen: "127.0.0.1:0"
  http_listen: "127.0.0.1:0"
  unconfirmed_allowance: 3
metrics: {listen: "off"}
hostnames: {resolver: "%[2]s", interval: 200ms}
bans: {auth_failures: 10, not_found: 20, window: 60s, duration: 2s}
sync: {interval: 10m}   # API changes must reach the local proxies without waiting for a sync
usage: {flush_interval: 100ms}
proxies:
  - name: us-ca
    listen: "127.0.0.1:0"
    address: us-ca.example.net:31280
    country: US
    exits: [{ip: 127.0.0.2, region: US-CA, city: los_angeles, asn: 64500}, {ip: 127.0.0.3, region: us-ca, city: San_Jose, asn: AS64501}]
  - name: world
    listen: "127.0.0.1:0"
    address: world.example.net:31281
    exits: [{ip: 127.0.0.4, country: DE}]
  - name: eu
    listen: "127.0.0.1:0"
    address: eu.example.net:31282
    country: DE
    exits: [{ip: 127.0.0.5}]
egress: {allow: [127.0.0.1/32]}
plans:
  - {name: small, proxies: 2, subs: 1, ips: 2, hostnames: 1, bandwidth: 1GB, tokens: 1}
  - {name: big, proxies: 3, subs: 10, ips: 10, hostnames: 10, bandwidth: 0, tokens: 3}
`

// logBuffer collects a log that goroutines write while the test reads it.
type logBuffer = testlog.Buffer

type env struct {
	t      testing.TB
	node   *node.Node
	store  domain.Store // a second handle: what the test inspects
	dns    *dnstest.Server
	log    *logBuffer
	certs  *x509.CertPool
	origin *httptest.Server
}

const (
	alicePW = "alice-password"
	bobPW   = "bob-password-1"
	subPW   = "sub-password-1"
)

// newEnv starts a real node (SQLite, HTTPS API with its generated certificate, three proxy servers)
// and a real DNS server on loopback, and creates accounts: alice (plan small, confirmed, us-ca
// authorized), bob (plan big, with sub-account bob-sub), and carol (unconfirmed).
func newEnv(t testing.TB) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dns: dnstest.Start(t), log: &logBuffer{}}
	cfg, err := config.Parse(fmt.Appendf(nil, nodeConfig, dir, e.dns.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	e.node, err = node.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.node.Close(ctx)
	})
	if e.store, err = store.Open(context.Background(), "sqlite:"+filepath.Join(dir, "exitmesh.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	pem, err := os.ReadFile(filepath.Join(dir, "exitmesh-api.crt"))
	if err != nil {
		t.Fatalf("the generated API certificate is not beside the store: %v", err)
	}
	e.certs = x509.NewCertPool()
	e.certs.AppendCertsFromPEM(pem)
	e.origin = httptest.NewServer(origin.Handler())
	t.Cleanup(e.origin.Close)

	e.account("alice", alicePW, "small", true, "us-ca")
	e.account("bob", bobPW, "big", true, "us-ca", "world")
	e.account("carol", "carol-password", "big", false)
	e.sub("bob", "bob-sub", subPW, "us-ca")
	// The accounts were made behind the node's back; from here on only the API changes them, and
	// the node's long sync interval means the proxies see those changes through the API alone.
	if err := e.node.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) hash(pw string) string {
	h, err := auth.HashPassword(pw)
	if err != nil {
		e.t.Fatal(err)
	}
	return h
}

func (e *env) account(username, pw, plan string, confirmed bool, proxies ...string) {
	e.t.Helper()
	if _, err := e.store.CreateAccount(context.Background(), domain.NewAccount{Username: username,
		PasswordHash: e.hash(pw), Plan: plan, Confirmed: confirmed, Proxies: proxies}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) sub(account, username, pw string, proxies ...string) {
	e.t.Helper()
	if _, err := e.store.CreateSubAccount(context.Background(), account, domain.NewSubAccount{Username: username,
		PasswordHash: e.hash(pw), Proxies: proxies}); err != nil {
		e.t.Fatal(err)
	}
}

// client is an HTTPS client that trusts the node's certificate, optionally from a given source IP.
func (e *env) client(source string) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.certs}}
	if source != "" {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
		tr.DialContext = d.DialContext
	}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// reply is a response with its body read.
type reply struct {
	status int
	header http.Header
	body   string
	json   map[string]any
}

func (r reply) errorText() string {
	s, _ := r.json["error"].(string)
	return s
}

// request is one API call: method, path, credentials and a form- or JSON-encoded body.
type request struct {
	method, path string
	login, pw    string // "" for none
	form         url.Values
	json         any
	source       string // client source IP; "" for 127.0.0.1
	rawBody      string
	contentType  string
	header       http.Header
}

func (e *env) do(req request) reply {
	e.t.Helper()
	var body io.Reader
	ct := req.contentType
	switch {
	case req.json != nil:
		b, _ := json.Marshal(req.json)
		body, ct = bytes.NewReader(b), "application/json"
	case req.form != nil:
		body, ct = strings.NewReader(req.form.Encode()), "application/x-www-form-urlencoded"
	case req.rawBody != "":
		body = strings.NewReader(req.rawBody)
	}
	hr, err := http.NewRequest(req.method, "https://"+e.node.APIAddr()+req.path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if ct != "" {
		hr.Header.Set("Content-Type", ct)
	}
	for k, v := range req.header {
		hr.Header[k] = v
	}
	if req.login != "" {
		hr.SetBasicAuth(req.login, req.pw)
	}
	resp, err := e.client(req.source).Do(hr)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.method, req.path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &r.json); err != nil {
			e.t.Fatalf("%s %s: body is not a JSON object: %q", req.method, req.path, b)
		}
		if got := resp.Header.Get("Content-Type"); got != "application/json; charset=utf-8" {
			e.t.Errorf("%s %s: Content-Type %q", req.method, req.path, got)
		}
	}
	return r
}

func (e *env) get(path, login, pw string) reply {
	e.t.Helper()
	return e.do(request{method: http.MethodGet, path: path, login: login, pw: pw})
}

func (e *env) post(path, login, pw string, form url.Values) reply {
	e.t.Helper()
	return e.do(request{method: http.MethodPost, path: path, login: login, pw: pw, form: form})
}

func (e *env) version() int64 {
	e.t.Helper()
	v, err := e.store.Version(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// proxyStatus sends one request through a proxy server of the node and returns its status.
func (e *env) proxyStatus(proxyName, login, pw, source string) int {
	e.t.Helper()
	u := &url.URL{Scheme: "http", Host: e.node.ProxyAddr(proxyName)}
	if login != "" {
		u.User = url.UserPassword(login, pw)
	}
	tr := &http.Transport{Proxy: http.ProxyURL(u), DisableKeepAlives: true}
	if source != "" {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
		tr.DialContext = d.DialContext
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(e.origin.URL + "/ip")
	if err != nil {
		e.t.Fatalf("proxy request: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func mustIP(s string) netip.Addr { return netip.MustParseAddr(s) }
