package proxy_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/connlimit"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/egress"
	"github.com/exitmesh/exitmesh/internal/proxy"
	"github.com/exitmesh/exitmesh/internal/tcptest"
	"github.com/exitmesh/exitmesh/internal/testwait"
)

// Resource limits, each attacked on a real proxy server on loopback and observed as a client and an
// operator see them: connections closed, status codes, and the proxy's /metrics.

// metricsEndpoint is the URL of a proxy's metrics, served by the metrics package's handler.
type metricsEndpoint string

func serveMetrics(t *testing.T, e *env) metricsEndpoint {
	srv := httptest.NewServer(e.metrics.Handler())
	t.Cleanup(srv.Close)
	return metricsEndpoint(srv.URL + "/metrics")
}

// value reads one series (labels in the exposition's order: sorted by name); an absent series is 0.
func (m metricsEndpoint) value(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get(string(m))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return f
		}
	}
	return 0
}

// waitFor waits until series reads want.
func (m metricsEndpoint) waitFor(t *testing.T, series string, want float64) {
	t.Helper()
	testwait.For(t, series, func() error {
		if got := m.value(t, series); got != want {
			return fmt.Errorf("%v, want %v", got, want)
		}
		return nil
	})
}

func hits(limit string) string {
	return `exitmesh_limit_hits_total{limit="` + limit + `",listener="us-ca"}`
}

const clientConns = `exitmesh_proxy_client_connections{proxy="us-ca"}`

// requireClosedUnanswered reads from c and requires the proxy to have closed it without a byte: EOF
// or a reset, not the test's own deadline.
func requireClosedUnanswered(t *testing.T, c net.Conn, what string) {
	t.Helper()
	n, err := c.Read(make([]byte, 1))
	if n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: read %d bytes, %v; want the proxy to close the connection without answering", what, n, err)
	}
}

// getOn sends a GET of the origin's /ip as alice on c and requires a 200.
func getOn(t *testing.T, e *env, c net.Conn, br *bufio.Reader, what string) {
	t.Helper()
	fmt.Fprintf(c, "GET %s/ip HTTP/1.1\r\nHost: %s\r\n%s\r\n", e.origin.URL, e.originHost(), aliceAuth())
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: status %d %s, want 200", what, resp.StatusCode, resp.Header.Get("X-ProxyMesh-Error"))
	}
}

// trickle writes s a byte at a time, one every 50 ms, until the proxy closes c or stop is closed.
func trickle(c net.Conn, s string, stop <-chan struct{}) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := range len(s) {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if _, err := c.Write([]byte{s[i]}); err != nil {
			return
		}
	}
}

// TestSlowlorisHeadsAreCutAtReadHeader opens connections that send a request head a byte at a time
// (it would take them seconds to finish): each is closed, unanswered, once timeouts.read_header has
// passed since it was accepted, however regularly it sends, and each counts as a read_header hit.
// Meanwhile a normal client is served.
func TestSlowlorisHeadsAreCutAtReadHeader(t *testing.T) {
	e := newEnv(t, func(c *proxy.Config, _ *egress.Dialer) { c.ReadHeader = 300 * time.Millisecond })
	m := serveMetrics(t, e)
	head := "GET " + e.origin.URL + "/ip HTTP/1.1\r\nHost: " + e.originHost() + "\r\n" + aliceAuth() + "\r\n"
	const slow = 8
	conns := make([]net.Conn, slow)
	for i := range conns {
		conns[i] = tcptest.DialFrom(t, e.proxyAddr, "127.0.0.1")
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(stop); wg.Wait() }) // before the connections close
	for _, c := range conns {
		wg.Go(func() { trickle(c, head, stop) })
	}

	normal := e.client("alice", alicePW, nil, nil)
	if resp, _ := fetch(t, normal, e.origin.URL+"/ip"); resp.StatusCode != http.StatusOK {
		t.Fatalf("a normal client beside the slow ones: %d, want 200", resp.StatusCode)
	}
	normal.CloseIdleConnections()
	for i, c := range conns {
		requireClosedUnanswered(t, c, fmt.Sprintf("slow client %d", i))
	}
	m.waitFor(t, hits("read_header"), slow)
	m.waitFor(t, clientConns, 0)
	if got := m.value(t, `exitmesh_proxy_requests_total{code="2xx",proxy="us-ca"}`); got != 1 {
		t.Errorf("%v requests forwarded, want only the normal client's", got)
	}
}

// TestConnectionsPerIP holds limits.connections_per_ip connections open from 127.0.0.1: the next one
// from that IP is closed at once without a byte, another IP is served, and once one of the held
// connections closes, 127.0.0.1 is served again.
func TestConnectionsPerIP(t *testing.T) {
	e := newEnv(t, func(c *proxy.Config, _ *egress.Dialer) { c.ConnsPerIP = connlimit.NewPerIP(3) })
	m := serveMetrics(t, e)
	var held []net.Conn
	for i := range 3 {
		c := tcptest.DialFrom(t, e.proxyAddr, "127.0.0.1")
		getOn(t, e, c, bufio.NewReader(c), fmt.Sprintf("held connection %d", i)) // then kept alive, idle
		held = append(held, c)
	}
	m.waitFor(t, clientConns, 3)

	requireClosedUnanswered(t, tcptest.DialFrom(t, e.proxyAddr, "127.0.0.1"), "a 4th connection from 127.0.0.1")
	m.waitFor(t, hits("connections_per_ip"), 1)

	other := tcptest.DialFrom(t, e.proxyAddr, "127.0.0.10")
	getOn(t, e, other, bufio.NewReader(other), "a connection from 127.0.0.10")

	held[0].Close()
	m.waitFor(t, clientConns, 3) // two held, and 127.0.0.10's
	again := tcptest.DialFrom(t, e.proxyAddr, "127.0.0.1")
	getOn(t, e, again, bufio.NewReader(again), "127.0.0.1 after one of its connections closed")
	if got := m.value(t, hits("connections_per_ip")); got != 1 {
		t.Errorf("%v connections_per_ip hits, want 1", got)
	}
}

// withDave adds an account, dave, that may use us-ca.
func withDave(c *proxy.Config, _ *egress.Dialer) {
	snap := accounts()
	snap.Accounts = append(snap.Accounts, domain.Account{ID: 4, Username: "dave", PasswordHash: hashes()[alicePW], Proxies: []string{"us-ca"}})
	view := auth.NewView(nil)
	view.Load(snap)
	c.Accounts = view
}

// connectTo sends CONNECT target as login on a new connection and reads the proxy's answer.
func connectTo(t *testing.T, e *env, target, login, password string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	c := tcptest.DialFrom(t, e.proxyAddr, "127.0.0.1")
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n", target, target, basic(login, password))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("CONNECT as %s: %v", login, err)
	}
	return c, br, resp
}

// echoes requires a round trip through an open tunnel to an echo server.
func echoes(t *testing.T, c net.Conn, br *bufio.Reader, what string) {
	t.Helper()
	io.WriteString(c, "ping\n")
	if line, err := br.ReadString('\n'); line != "ping\n" {
		t.Fatalf("%s: echoed %q, %v", what, line, err)
	}
}

// TestConnectionsPerAccount holds limits.connections_per_account tunnels of alice open: her next
// CONNECT, one by her sub-account and a plain request of hers are answered 429 too-many-connections
// without any exit dialling; another account is served; once a tunnel closes, alice opens one again.
func TestConnectionsPerAccount(t *testing.T) {
	e := newEnv(t, withDave, func(c *proxy.Config, _ *egress.Dialer) { c.ConnsPerAccount = connlimit.NewPerAccount(2) })
	m := serveMetrics(t, e)
	var originConns atomic.Int64
	target := tcptest.Serve(t, func(c net.Conn) {
		originConns.Add(1)
		tcptest.Echo(c)
	})
	var tunnels []net.Conn
	for i := range 2 {
		c, br, resp := connectTo(t, e, target, "alice", alicePW)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("alice's tunnel %d: %d %s", i, resp.StatusCode, resp.Header.Get("X-ProxyMesh-Error"))
		}
		echoes(t, c, br, fmt.Sprintf("alice's tunnel %d", i))
		tunnels = append(tunnels, c)
	}
	dials := len(e.dials.list())

	for _, login := range []struct{ name, password string }{{"alice", alicePW}, {"alice-us", subPW}} {
		c, _, resp := connectTo(t, e, target, login.name, login.password)
		if got := resp.Header.Get("X-ProxyMesh-Error"); resp.StatusCode != http.StatusTooManyRequests || got != "too-many-connections" {
			t.Errorf("CONNECT as %s over alice's limit: %d %q, want 429 too-many-connections", login.name, resp.StatusCode, got)
		}
		c.Close()
	}
	plain := tcptest.DialFrom(t, e.proxyAddr, "127.0.0.1")
	fmt.Fprintf(plain, "GET %s/ip HTTP/1.1\r\nHost: %s\r\n%s\r\n", e.origin.URL, e.originHost(), aliceAuth())
	if resp, err := http.ReadResponse(bufio.NewReader(plain), nil); err != nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("a plain request of alice over her limit: %v %v, want 429", resp, err)
	}
	plain.Close()
	if n := len(e.dials.list()); n != dials {
		t.Errorf("the exits dialled %d more times for refused requests, want none", n-dials)
	}

	dave, daveBR, resp := connectTo(t, e, target, "dave", alicePW)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("dave, another account: %d, want 200", resp.StatusCode)
	}
	echoes(t, dave, daveBR, "dave's tunnel")
	if n := originConns.Load(); n != 3 {
		t.Errorf("the origin saw %d connections, want 3 (alice's two tunnels and dave's)", n)
	}

	tunnels[0].Close()
	m.waitFor(t, clientConns, 2) // alice's other tunnel and dave's: the closed tunnel has released its count
	c, br, resp := connectTo(t, e, target, "alice", alicePW)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("alice after one of her tunnels closed: %d %s, want 200", resp.StatusCode, resp.Header.Get("X-ProxyMesh-Error"))
	}
	echoes(t, c, br, "alice's new tunnel")
	if got := m.value(t, hits("connections_per_account")); got != 3 {
		t.Errorf("%v connections_per_account hits, want 3", got)
	}
	if got := m.value(t, `exitmesh_proxy_errors_total{proxy="us-ca",reason="too-many-connections"}`); got != 3 {
		t.Errorf("%v too-many-connections errors, want 3", got)
	}
}

// TestSlowReaderIsDropped asks for a large answer and never reads it. Once the client has taken no
// byte for timeouts.write, the proxy drops it: the client's connection is closed with the answer cut
// short, the origin's connection is closed rather than pooled, the request is still counted, and the
// proxy holds no connection.
func TestSlowReaderIsDropped(t *testing.T) {
	e := newEnv(t, func(c *proxy.Config, _ *egress.Dialer) { c.WriteTimeout = 200 * time.Millisecond })
	m := serveMetrics(t, e)
	const size = 1 << 30 // far more than the sockets buffer: the origin blocks long before the end
	originErr := make(chan error, 1)
	e.mux.HandleFunc("/large", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		chunk := make([]byte, 64<<10)
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				originErr <- err
				return
			}
		}
		originErr <- nil
	})
	c := tcptest.DialFrom(t, e.proxyAddr, "127.0.0.1")
	fmt.Fprintf(c, "GET %s/large HTTP/1.1\r\nHost: %s\r\n%s\r\n", e.origin.URL, e.originHost(), aliceAuth())

	m.waitFor(t, hits("write"), 1)
	select {
	case err := <-originErr:
		if err == nil {
			t.Fatal("the origin sent its whole answer")
		}
	case <-time.After(testwait.Bound):
		t.Fatal("the origin's connection was not closed: it still waits to send the answer")
	}
	m.waitFor(t, clientConns, 0)
	m.waitFor(t, `exitmesh_proxy_requests_total{code="2xx",proxy="us-ca"}`, 1)
	if out := m.value(t, `exitmesh_proxy_bytes_total{direction="out",proxy="us-ca"}`); out <= 0 {
		t.Errorf("%v bytes out counted for the cut answer, want what was relayed", out)
	}
	n, err := io.Copy(io.Discard, c) // what the sockets held, then the proxy's close
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("reading the cut answer: %v", err)
	}
	if n >= size {
		t.Errorf("the client received %d bytes, want the answer cut short", n)
	}
}

// TestOversizedHeadIsCounted sends a head beyond limits.max_header_bytes, then one with more fields
// than limits.max_header_fields: 431 each, and a hit of each limit.
func TestOversizedHeadIsCounted(t *testing.T) {
	e := newEnv(t, func(c *proxy.Config, _ *egress.Dialer) { c.MaxHeaderBytes, c.MaxHeaderFields = 1<<10, 5 })
	m := serveMetrics(t, e)
	resp, _ := e.raw("GET " + e.origin.URL + "/ip HTTP/1.1\r\nHost: " + e.originHost() + "\r\nX-Big: " + strings.Repeat("a", 8<<10) + "\r\n\r\n")
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("oversized head: %d, want 431", resp.StatusCode)
	}
	m.waitFor(t, hits("max_header_bytes"), 1)
	resp, _ = e.raw("GET " + e.origin.URL + "/ip HTTP/1.1\r\nHost: " + e.originHost() + "\r\n" + strings.Repeat("X-A: b\r\n", 5) + "\r\n")
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("6 fields: %d, want 431", resp.StatusCode)
	}
	m.waitFor(t, hits("max_header_fields"), 1)
	if got := m.value(t, hits("read_header")); got != 0 {
		t.Errorf("%v read_header hits, want 0", got)
	}
}

// TestIdleKeepAliveIsClosedWithoutAHit lets a served connection idle past timeouts.idle: the proxy
// closes it, which is the normal end of a keep-alive connection, not a limit hit.
func TestIdleKeepAliveIsClosedWithoutAHit(t *testing.T) {
	e := newEnv(t, func(c *proxy.Config, _ *egress.Dialer) { c.Idle = 200 * time.Millisecond })
	m := serveMetrics(t, e)
	c := tcptest.DialFrom(t, e.proxyAddr, "127.0.0.1")
	br := bufio.NewReader(c)
	getOn(t, e, c, br, "before idling")
	if n, err := br.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("idle connection: read %d, %v; want EOF", n, err)
	}
	m.waitFor(t, clientConns, 0)
	for _, limit := range []string{"read_header", "write", "connections_per_ip"} {
		if got := m.value(t, hits(limit)); got != 0 {
			t.Errorf("%v %s hits for an idle close, want 0", got, limit)
		}
	}
}

// TestIdleTunnelIsCounted leaves a tunnel silent past timeouts.tunnel_idle: closed, and a hit.
func TestIdleTunnelIsCounted(t *testing.T) {
	e := newEnv(t, func(c *proxy.Config, _ *egress.Dialer) { c.TunnelIdle = 200 * time.Millisecond })
	m := serveMetrics(t, e)
	c, br, resp := connectTo(t, e, tcptest.Serve(t, tcptest.Echo), "alice", alicePW)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: %d", resp.StatusCode)
	}
	echoes(t, c, br, "the tunnel")
	if n, err := br.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("idle tunnel: read %d, %v; want it closed", n, err)
	}
	m.waitFor(t, hits("tunnel_idle"), 1)
}
