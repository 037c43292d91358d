package proxy_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/egress"
	"github.com/exitmesh/exitmesh/internal/exits"
	"github.com/exitmesh/exitmesh/internal/metrics"
	"github.com/exitmesh/exitmesh/internal/origin"
	"github.com/exitmesh/exitmesh/internal/proxy"
)

// The test network: proxy server "us-ca" with four loopback exits, two in the US and two in Germany.
var exitIPs = []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}

var exitCountry = map[string]string{"127.0.0.2": "US", "127.0.0.3": "US", "127.0.0.4": "DE", "127.0.0.5": "DE"}

const (
	alicePW = "alice-password"
	subPW   = "sub-password"
)

// hashes are computed once: argon2id is deliberately slow.
var hashes = sync.OnceValue(func() map[string]string {
	m := map[string]string{}
	for _, pw := range []string{alicePW, subPW} {
		h, err := auth.HashPassword(pw)
		if err != nil {
			panic(err)
		}
		m[pw] = h
	}
	return m
})

// accounts: alice may use us-ca; bob is disabled; carol has not authorized us-ca; alice's sub-account
// "alice-eu" may use only "world"; alice-us may use us-ca. 127.0.0.7 is alice's authorized IP.
func accounts() domain.Snapshot {
	h := hashes()
	return domain.Snapshot{
		Version: 1,
		Accounts: []domain.Account{
			{ID: 1, Username: "alice", PasswordHash: h[alicePW], Proxies: []string{"us-ca", "world"},
				IPs: []netip.Addr{netip.MustParseAddr("127.0.0.7")}},
			{ID: 2, Username: "bob", PasswordHash: h[alicePW], Disabled: true, Proxies: []string{"us-ca"}},
			{ID: 3, Username: "carol", PasswordHash: h[alicePW], Proxies: []string{"world"}},
		},
		Subs: []domain.SubAccount{
			{ID: 10, AccountID: 1, Username: "alice-eu", PasswordHash: h[subPW], Active: true, Proxies: []string{"world"}},
			{ID: 11, AccountID: 1, Username: "alice-us", PasswordHash: h[subPW], Active: true, Proxies: []string{"us-ca"}},
		},
	}
}

// dialLog records the destinations the proxy's exits dialled.
type dialLog struct {
	mu    sync.Mutex
	dials []netip.AddrPort
}

func (d *dialLog) record(ap netip.AddrPort) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dials = append(d.dials, ap)
}

func (d *dialLog) list() []netip.AddrPort {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]netip.AddrPort(nil), d.dials...)
}

type env struct {
	t         testing.TB
	proxyAddr string
	origin    *httptest.Server
	tlsOrigin *httptest.Server
	dials     *dialLog
	// originConns counts TCP connections the plain origin accepted.
	originConns atomic.Int64
	// rebinds counts lookups of rebind.test.
	rebinds atomic.Int64
	// proxyConns counts TCP connections the proxy accepted from clients.
	proxyConns atomic.Int64
	mux        *http.ServeMux // extra origin routes for a test
	srv        *proxy.Server
	pool       *exits.Pool
	metrics    *metrics.Metrics

	downMu  sync.Mutex // guards down and refused
	down    map[netip.Addr]bool
	refused map[netip.Addr]bool
	silent  map[netip.Addr]bool
}

// setSilent makes every connect from exit ip go unanswered until its deadline, as when the exit's
// route drops packets (which loopback cannot do: the hook waits instead of dialling).
func (e *env) setSilent(ip string) {
	e.downMu.Lock()
	defer e.downMu.Unlock()
	e.silent[netip.MustParseAddr(ip)] = true
}

// setRefused makes every connect from exit ip really refused: the kernel answers RST, as when the
// exit's route leads nowhere listening.
func (e *env) setRefused(ip string) {
	e.downMu.Lock()
	defer e.downMu.Unlock()
	e.refused[netip.MustParseAddr(ip)] = true
}

func (e *env) isRefused(ip netip.Addr) bool {
	e.downMu.Lock()
	defer e.downMu.Unlock()
	return e.refused[ip]
}

// setDown makes every connection from exit ip fail, as when its address is taken away, or restores it.
func (e *env) setDown(ip string, down bool) {
	e.downMu.Lock()
	defer e.downMu.Unlock()
	e.down[netip.MustParseAddr(ip)] = down
}

func (e *env) isDown(ip netip.Addr) bool {
	e.downMu.Lock()
	defer e.downMu.Unlock()
	return e.down[ip]
}

type envOption func(*proxy.Config, *egress.Dialer)

// newEnv starts a real origin (plain and TLS) on 127.0.0.1 and a proxy server on 127.0.0.1 whose exits
// are 127.0.0.2–5. Egress allows only 127.0.0.1/32; every dial is recorded, and only loopback
// destinations are really dialled: any other is refused by the hook before a packet is sent.
func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, dials: &dialLog{}, mux: http.NewServeMux(), down: map[netip.Addr]bool{}, refused: map[netip.Addr]bool{}, silent: map[netip.Addr]bool{}}
	e.mux.Handle("/", origin.Handler())
	e.origin = httptest.NewUnstartedServer(e.mux)
	e.origin.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			e.originConns.Add(1)
		}
	}
	e.origin.Start()
	t.Cleanup(e.origin.Close)
	e.tlsOrigin = httptest.NewTLSServer(origin.Handler())
	t.Cleanup(e.tlsOrigin.Close)

	dialer := &egress.Dialer{
		Policy: &egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, DenyPorts: egress.DefaultDenyPorts},
		Lookup: func(_ context.Context, host string) ([]netip.Addr, error) {
			switch host {
			case "origin.test":
				return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
			case "intranet.test":
				return []netip.Addr{netip.MustParseAddr("10.20.30.40")}, nil
			case "loopback.test": // a name for a loopback address outside the allow list
				return []netip.Addr{netip.MustParseAddr("127.0.0.9")}, nil
			case "rebind.test": // DNS rebinding: the answer alternates between allowed and internal
				if e.rebinds.Add(1)%2 == 1 {
					return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
				}
				return []netip.Addr{netip.MustParseAddr("10.20.30.41")}, nil
			}
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		},
		DialTCP: func(ctx context.Context, local, remote netip.AddrPort) (net.Conn, error) {
			e.dials.record(remote)
			if e.isDown(local.Addr()) {
				return nil, fmt.Errorf("exit %s is down (test)", local.Addr())
			}
			if !remote.Addr().IsLoopback() {
				return nil, fmt.Errorf("test hook refuses non-loopback %s", remote)
			}
			e.downMu.Lock()
			silent := e.silent[local.Addr()]
			e.downMu.Unlock()
			if silent {
				<-ctx.Done()
				return nil, &net.OpError{Op: "dial", Net: "tcp", Err: ctx.Err()}
			}
			if e.isRefused(local.Addr()) {
				remote = closedPort(e.t)
			}
			d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(local)}
			return d.DialContext(ctx, "tcp", remote.String())
		},
	}
	view := auth.NewView(nil)
	view.Load(accounts())
	cfg := proxy.Config{Name: "us-ca", Accounts: view, Metrics: metrics.New()}
	for _, o := range opts {
		o(&cfg, dialer)
	}
	e.metrics = cfg.Metrics
	var ex []*exits.Exit
	for _, ip := range exitIPs {
		ex = append(ex, exits.NewLocal(netip.MustParseAddr(ip), exitCountry[ip], dialer))
	}
	cfg.Pool = exits.NewPool(ex)
	e.pool = cfg.Pool
	srv := proxy.New(cfg)
	e.srv = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.proxyAddr = ln.Addr().String()
	go srv.Serve(&countingListener{Listener: ln, n: &e.proxyConns})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return e
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// client returns an HTTP client that uses the proxy with login:password ("" for none). connectHeader
// is sent on CONNECT requests; the CONNECT response is stored in *connectResp.
func (e *env) client(login, password string, connectHeader http.Header, connectResp *[]*http.Response) *http.Client {
	u := &url.URL{Scheme: "http", Host: e.proxyAddr}
	if login != "" {
		u.User = url.UserPassword(login, password)
	}
	var mu sync.Mutex
	tr := &http.Transport{
		Proxy:              http.ProxyURL(u),
		ProxyConnectHeader: connectHeader,
		TLSClientConfig:    &tls.Config{RootCAs: e.tlsOrigin.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs},
		OnProxyConnectResponse: func(_ context.Context, _ *url.URL, _ *http.Request, resp *http.Response) error {
			if connectResp != nil {
				mu.Lock()
				*connectResp = append(*connectResp, resp)
				mu.Unlock()
			}
			return nil
		},
	}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// get sends a request and decodes the origin's report when the origin answered.
func (e *env) get(c *http.Client, rawURL string, header http.Header) (*http.Response, origin.Seen) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	var seen origin.Seen
	body, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("X-ProxyMesh-Error") == "" && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &seen); err != nil {
			e.t.Fatalf("GET %s: origin report %q: %v", rawURL, body, err)
		}
	}
	return resp, seen
}

// raw sends request bytes on a new connection to the proxy and reads one response.
func (e *env) raw(request string) (*http.Response, string) {
	e.t.Helper()
	c, err := net.Dial("tcp", e.proxyAddr)
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		e.t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		e.t.Fatalf("reading response to %q: %v", request, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func basic(login, password string) string {
	return "Basic " + b64(login+":"+password)
}

// closedPort is a loopback address and port where nothing listens: a connect to it is refused.
func closedPort(t testing.TB) netip.AddrPort {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	return ap
}
