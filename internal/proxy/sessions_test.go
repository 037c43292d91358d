package proxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/egress"
	"github.com/exitmesh/exitmesh/internal/exits"
	"github.com/exitmesh/exitmesh/internal/origin"
	"github.com/exitmesh/exitmesh/internal/proxy"
)

// seen is what a client sees of one request through the proxy.
type seen struct{ status, reason, exitIP, originSaw, notFound string }

// through sends one request on a new connection, for the plain origin or for the TLS origin over
// CONNECT, as login, with header on the request (plain) or on the CONNECT (TLS). It returns the
// status, the proxy's error reason, X-ProxyMesh-IP (of the CONNECT answer for a tunnel) and the
// source address the origin saw.
func (e *env) through(tunnel bool, login, password string, header http.Header) seen {
	e.t.Helper()
	var connects []*http.Response
	target := e.origin.URL + "/"
	c := e.client(login, password, nil, nil)
	if tunnel {
		c = e.client(login, password, header, &connects)
		target, header = e.tlsOrigin.URL+"/", nil
	}
	c.Transport.(*http.Transport).DisableKeepAlives = true // a new CONNECT, and a new choice, each time
	req, _ := http.NewRequest(http.MethodGet, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if tunnel && len(connects) > 0 && connects[0].StatusCode != http.StatusOK {
		r := connects[0]
		return seen{status: r.Status[:3], reason: r.Header.Get("X-ProxyMesh-Error"), exitIP: r.Header.Get("X-ProxyMesh-IP"),
			notFound: r.Header.Get("X-ProxyMesh-IP-Not-Found")}
	}
	if err != nil {
		e.t.Fatalf("GET %s as %s: %v", target, login, err)
	}
	defer resp.Body.Close()
	var o origin.Seen
	if resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&o) != nil {
		e.t.Fatalf("GET %s as %s: the origin's report did not decode", target, login)
	}
	h := resp.Header
	if tunnel {
		h = connects[0].Header
	}
	return seen{status: resp.Status[:3], reason: h.Get("X-ProxyMesh-Error"), exitIP: h.Get("X-ProxyMesh-IP"),
		originSaw: o.IP, notFound: h.Get("X-ProxyMesh-IP-Not-Found")}
}

// tunnel is a CONNECT tunnel to the plain origin, used for HTTP requests by hand.
type tunnel struct {
	conn net.Conn
	br   *bufio.Reader
}

func (e *env) openTunnel(t *testing.T) *tunnel {
	t.Helper()
	target := strings.TrimPrefix(e.origin.URL, "http://")
	c, err := net.Dial("tcp", e.proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n", target, target, basic("alice", alicePW))
	tun := &tunnel{conn: c, br: bufio.NewReader(c)}
	resp, err := http.ReadResponse(tun.br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	tun.roundTrip(t, "just opened")
	return tun
}

// roundTrip sends a GET through the tunnel and requires the origin's answer.
func (tun *tunnel) roundTrip(t *testing.T, when string) {
	t.Helper()
	fmt.Fprintf(tun.conn, "GET /ip HTTP/1.1\r\nHost: origin\r\n\r\n")
	resp, err := http.ReadResponse(tun.br, nil)
	if err != nil {
		t.Fatalf("tunnel %s: %v", when, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("tunnel %s: status %d", when, resp.StatusCode)
	}
}

func TestSessionKeepsItsExit(t *testing.T) {
	for _, tunnel := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "connect"}[tunnel], func(t *testing.T) {
			e := newEnv(t)
			first := ""
			for i := range 20 {
				got := e.through(tunnel, "alice-session-s1", alicePW, nil)
				if got.status != "200" || got.exitIP != got.originSaw {
					t.Fatalf("request %d of session s1: %+v", i, got)
				}
				if first == "" {
					first = got.originSaw
				} else if got.originSaw != first {
					t.Fatalf("request %d of session s1 left through %s, earlier ones through %s", i, got.originSaw, first)
				}
			}
			// Other sessions are sticky too, and spread over the pool.
			used := map[string]bool{}
			for i := range 12 {
				sid := "alice-session-other" + string(rune('a'+i))
				a, b := e.through(tunnel, sid, alicePW, nil), e.through(tunnel, sid, alicePW, nil)
				if a.originSaw != b.originSaw {
					t.Errorf("session %s moved from %s to %s between two requests", sid, a.originSaw, b.originSaw)
				}
				used[a.originSaw] = true
			}
			if len(used) < 2 {
				t.Errorf("12 sessions all got exit %v; new sessions should rotate", used)
			}
		})
	}
}

func TestSessionMovesOnlyWhenItsExitDies(t *testing.T) {
	e := newEnv(t)
	checks := e.runHealthChecks(t)
	first := e.through(false, "alice-session-keep", alicePW, nil).originSaw
	e.setDown(first, true)
	waitHealth(t, checks, first, false)
	moved := e.through(false, "alice-session-keep", alicePW, nil)
	if moved.status != "200" || moved.originSaw == first || moved.originSaw == "" {
		t.Fatalf("after exit %s died the session was served by %+v, want another exit", first, moved)
	}
	for range 20 { // out of rotation for everyone
		if got := e.through(false, "alice", alicePW, nil); got.originSaw == first {
			t.Fatalf("dead exit %s still in rotation", first)
		}
	}
	e.setDown(first, false)
	waitHealth(t, checks, first, true)
	for range 5 {
		if got := e.through(false, "alice-session-keep", alicePW, nil); got.originSaw != moved.originSaw {
			t.Fatalf("the session moved again, to %s, though its exit %s is alive", got.originSaw, moved.originSaw)
		}
	}
	back := false
	for range 40 {
		back = back || e.through(false, "alice", alicePW, nil).originSaw == first
	}
	if !back {
		t.Errorf("revived exit %s did not come back into rotation in 40 requests", first)
	}
}

// runHealthChecks checks the exits every 10 ms until the test ends (two failures take one out, two
// successes bring it back) and returns the checks that changed an exit's health.
func (e *env) runHealthChecks(t *testing.T) <-chan exits.CheckResult {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	checks := make(chan exits.CheckResult, 64)
	go e.pool.RunHealthChecks(ctx, exits.HealthConfig{Target: strings.TrimPrefix(e.origin.URL, "http://"),
		Interval: 10 * time.Millisecond, Timeout: time.Second, Fall: 2, Rise: 2}, func(r exits.CheckResult) {
		if r.Changed {
			checks <- r
		}
	})
	return checks
}

// waitHealth waits for the check that takes exit ip out of (healthy false) or into rotation.
func waitHealth(t *testing.T, checks <-chan exits.CheckResult, ip string, healthy bool) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case r := <-checks:
			if r.Exit.IP.String() == ip && r.Exit.Healthy() == healthy {
				return
			}
		case <-timeout:
			t.Fatalf("exit %s never became healthy=%v", ip, healthy)
		}
	}
}

func TestSessionExpiresAfterTTL(t *testing.T) {
	clk := &clock{now: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
	e := newEnv(t, func(c *proxy.Config, _ *egress.Dialer) { c.Sessions = exits.NewSessions(time.Minute, 1000, clk.Now) })
	first := e.through(false, "alice-session-ttl", alicePW, nil).originSaw
	clk.Advance(59 * time.Second)
	if got := e.through(false, "alice-session-ttl", alicePW, nil).originSaw; got != first {
		t.Fatalf("within the TTL the session moved from %s to %s", first, got)
	}
	// The TTL runs from the last request: a minute of silence ends the session, and the next request
	// rotates like any new one.
	moved := false
	for range 20 {
		clk.Advance(61 * time.Second)
		moved = moved || e.through(false, "alice-session-ttl", alicePW, nil).originSaw != first
	}
	if !moved {
		t.Errorf("after 20 expiries the session always got %s; expired sessions should rotate", first)
	}
}

// TestUsernameAndHeadersSteerAlike sends each steering once as username parameters and once as
// headers, over plain HTTP and over CONNECT, and requires the same answer.
func TestUsernameAndHeadersSteerAlike(t *testing.T) {
	e := newEnv(t)
	h := headerOf
	tests := []struct {
		name       string
		login      string
		header     http.Header
		wantStatus string
		want       func(seen) bool
	}{
		{"pin", "alice-ip-127.0.0.4", h("X-ProxyMesh-IP", "127.0.0.4"), "200", func(s seen) bool { return s.originSaw == "127.0.0.4" }},
		{"pin not in pool", "alice-ip-127.0.0.99", h("X-ProxyMesh-IP", "127.0.0.99"), "200", func(s seen) bool { return s.notFound == "127.0.0.99" }},
		{"country", "alice-country-de", h("X-ProxyMesh-Country", "DE"), "200", func(s seen) bool { return exitCountry[s.originSaw] == "DE" }},
		{"country and ip", "alice-country-us-ip-127.0.0.3", h("X-ProxyMesh-Country", "us", "X-ProxyMesh-IP", "127.0.0.3"), "200", func(s seen) bool { return s.originSaw == "127.0.0.3" }},
		{"no exit in country", "alice-country-fr", h("X-ProxyMesh-Country", "FR"), "503", func(s seen) bool { return s.reason == "no-exit-in-country" }},
		{"bad country", "alice-country-usa", h("X-ProxyMesh-Country", "usa"), "400", func(s seen) bool { return s.reason == "bad-steering" }},
		{"bad ip", "alice-ip-nope", h("X-ProxyMesh-IP", "nope"), "400", func(s seen) bool { return s.reason == "bad-steering" }},
		{"sub-account with a dash", "alice-us-country-de", h("X-ProxyMesh-Country", "DE"), "200", func(s seen) bool { return exitCountry[s.originSaw] == "DE" }},
	}
	for _, tunnel := range []bool{false, true} {
		for _, tt := range tests {
			t.Run(tt.name+map[bool]string{false: " http", true: " connect"}[tunnel], func(t *testing.T) {
				base, _, _ := strings.Cut(tt.login, "-country-")
				base, _, _ = strings.Cut(base, "-ip-")
				pw := alicePW
				if base == "alice-us" {
					pw = subPW
				}
				for range 5 { // random choices must agree every time, not by luck
					byName := e.through(tunnel, tt.login, pw, nil)
					byHeader := e.through(tunnel, base, pw, tt.header)
					for _, got := range []seen{byName, byHeader} {
						if got.status != tt.wantStatus || !tt.want(got) {
							t.Fatalf("username %s: %+v; headers %v: %+v", tt.login, byName, tt.header, byHeader)
						}
					}
				}
			})
		}
	}
	t.Run("session by name and by header is one session", func(t *testing.T) {
		first := e.through(true, "alice-session-shared", alicePW, nil).originSaw
		for range 10 {
			if got := e.through(true, "alice", alicePW, h("X-ProxyMesh-Session", "shared")).originSaw; got != first {
				t.Fatalf("header session got %s, username session %s", got, first)
			}
		}
	})
	t.Run("wrong password with parameters", func(t *testing.T) {
		if got := e.through(false, "alice-session-x", "wrong", nil); got.status != "407" {
			t.Errorf("wrong password with a session parameter: %+v, want 407", got)
		}
	})
}

func TestTurnoverKeepsTunnelsAndSessions(t *testing.T) {
	e := newEnv(t)
	active := e.pool.Turn(2)
	activeIPs := []string{active[0].IP.String(), active[1].IP.String()}
	for range 30 {
		if got := e.through(false, "alice", alicePW, nil).originSaw; !slices.Contains(activeIPs, got) {
			t.Fatalf("with active set %v a request left through %s", activeIPs, got)
		}
	}
	if got := e.through(false, "alice", alicePW, http.Header{"X-Proxymesh-Ip": {retired(e, activeIPs)}}); got.notFound == "" {
		t.Errorf("a pin to a retired exit was honoured: %+v", got)
	}
	session := e.through(false, "alice-session-turn", alicePW, nil).originSaw

	// A tunnel opened before the turn keeps working after it.
	tunnel := e.openTunnel(t)
	next := e.pool.Turn(2)
	nextIPs := []string{next[0].IP.String(), next[1].IP.String()}
	if slices.Contains(nextIPs, activeIPs[0]) || slices.Contains(nextIPs, activeIPs[1]) {
		t.Errorf("turnover of 2 of 4 exits kept %v after %v; the rested ones should come in", nextIPs, activeIPs)
	}
	tunnel.roundTrip(t, "after the turn")
	if got := e.through(false, "alice-session-turn", alicePW, nil).originSaw; got != session {
		t.Errorf("the turn moved a live session from %s to %s", session, got)
	}
}

func retired(e *env, active []string) string {
	for _, ip := range exitIPs {
		if !slices.Contains(active, ip) {
			return ip
		}
	}
	e.t.Fatal("no retired exit")
	return ""
}
