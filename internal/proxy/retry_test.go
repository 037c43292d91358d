package proxy_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/exitmesh/exitmesh/internal/egress"
	"github.com/exitmesh/exitmesh/internal/proxy"
)

// An exit whose connects are refused (by the kernel: nothing listens where it leads) is retried on
// another exit before the client hears of it, for forwarded requests, CONNECT tunnels and SOCKS5;
// the answer names the exit that served, which is the one the origin saw, and the retry is counted.
func TestRefusedExitIsRetriedOnAnother(t *testing.T) {
	e := newEnv(t)
	m := serveMetrics(t, e)
	const bad = "127.0.0.2"
	e.setRefused(bad)
	prefer := http.Header{"X-Proxymesh-Prefer-Ip": {bad}} // the first choice, and no pin
	for _, tunnel := range []bool{false, true} {
		for range 3 {
			got := e.through(tunnel, "alice", alicePW, prefer)
			if got.status != "200" || got.originSaw == bad || got.originSaw == "" || got.exitIP != got.originSaw {
				t.Fatalf("tunnel=%v: %+v; want 200 from another exit than %s, named in X-ProxyMesh-IP", tunnel, got, bad)
			}
		}
	}
	socksBad := 0
	for range 12 { // SOCKS5 has no Prefer-IP: with 4 exits, a quarter of the first choices fail
		saw := e.seenThrough(t, e.socksClient(t, "alice", alicePW, ""))
		if saw == bad {
			socksBad++
		}
	}
	if socksBad > 0 {
		t.Errorf("SOCKS5: the origin saw the refusing exit %d times", socksBad)
	}
	retries := m.value(t, `exitmesh_exit_retries_total{proxy="us-ca"}`)
	if retries < 6 {
		t.Errorf("exitmesh_exit_retries_total = %v, want at least 6 (one per request that preferred %s)", retries, bad)
	}
}

// A pinned exit is the client's choice: when it refuses, the client hears it (502, with the RFC 9209
// type connection_refused), and no other exit is tried.
func TestPinnedExitIsNotRetried(t *testing.T) {
	e := newEnv(t)
	const bad = "127.0.0.3"
	e.setRefused(bad)
	for _, tunnel := range []bool{false, true} {
		got := e.through(tunnel, "alice", alicePW, http.Header{"X-Proxymesh-Ip": {bad}})
		if got.status != "502" || got.reason != "upstream-failed" || got.exitIP != bad {
			t.Errorf("tunnel=%v: %+v; want 502 upstream-failed through %s", tunnel, got, bad)
		}
	}
	host := strings.TrimPrefix(e.origin.URL, "http://")
	resp, _ := e.raw("GET http://" + host + "/ip HTTP/1.1\r\nHost: " + host + "\r\nProxy-Authorization: " + basic("alice-ip-"+bad, alicePW) + "\r\n\r\n")
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("pinned by the username: %d, want 502", resp.StatusCode)
	}
	if got, want := resp.Header.Get("Proxy-Status"), `"exitmesh"; error=connection_refused`; got != want {
		t.Errorf("Proxy-Status = %q, want %q", got, want)
	}
	if n := len(e.dials.list()); n != 3 {
		t.Errorf("%d dials, want 3: one per request, none on another exit", n)
	}
}

// With retries turned off, the first refusal is the answer.
func TestRetriesOff(t *testing.T) {
	e := newEnv(t, func(c *proxy.Config, _ *egress.Dialer) { c.Retries = -1 })
	const bad = "127.0.0.4"
	e.setRefused(bad)
	got := e.through(false, "alice", alicePW, http.Header{"X-Proxymesh-Prefer-Ip": {bad}})
	if got.status != "502" || got.exitIP != bad {
		t.Errorf("%+v; want 502 through %s", got, bad)
	}
}

// A session whose exit refuses a new connection moves to the exit that served, and stays there.
// (Tunnels, because a forwarded request may reuse a kept-alive origin connection and dial nothing.)
func TestSessionMovesToTheExitThatServed(t *testing.T) {
	e := newEnv(t)
	first := e.through(true, "alice-session-r1", alicePW, nil).originSaw
	e.setRefused(first)
	moved := e.through(true, "alice-session-r1", alicePW, nil)
	if moved.status != "200" || moved.originSaw == first {
		t.Fatalf("after %s refused, the session got %+v; want 200 from another exit", first, moved)
	}
	for range 5 {
		if got := e.through(false, "alice-session-r1", alicePW, nil); got.originSaw != moved.originSaw {
			t.Fatalf("the session went to %s, want %s, where it moved", got.originSaw, moved.originSaw)
		}
	}
}

// An exit that does not answer a connect gets its share of the client's timeout (here a third of
// 3 s: two more exits may be tried), and the request is served by another exit within the timeout.
func TestSilentExitIsRetriedWithinTheTimeout(t *testing.T) {
	e := newEnv(t)
	const bad = "127.0.0.5"
	e.setSilent(bad)
	for _, tunnel := range []bool{false, true} {
		got := e.through(tunnel, "alice", alicePW, http.Header{"X-Proxymesh-Prefer-Ip": {bad}, "X-Proxymesh-Timeout": {"3"}})
		if got.status != "200" || got.originSaw == bad || got.exitIP != got.originSaw {
			t.Errorf("tunnel=%v: %+v; want 200 from another exit than %s", tunnel, got, bad)
		}
	}
}
