package proxy_test

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/egress"
	"github.com/exitmesh/exitmesh/internal/exits"
	"github.com/exitmesh/exitmesh/internal/proxy"
)

// exitPlace is where the placed test network's exits are: two in Los Angeles on different ASNs, one in
// San Francisco, one in Berlin.
var exitPlace = map[string]struct {
	region, city string
	asn          uint32
}{
	"127.0.0.2": {"US-CA", "los_angeles", 64500},
	"127.0.0.3": {"US-CA", "los_angeles", 64501},
	"127.0.0.4": {"DE-BE", "berlin", 64500},
	"127.0.0.5": {"DE-BE", "berlin", 64502},
}

// headerOf makes a header of name, value pairs.
func headerOf(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// placedEnv is the test network with the exits of exitPlace (and exitCountry).
func placedEnv(t *testing.T, opts ...envOption) *env {
	var dialer *egress.Dialer
	e := newEnv(t, append(opts, func(_ *proxy.Config, d *egress.Dialer) { dialer = d })...)
	var ex []*exits.Exit
	for _, a := range exitIPs {
		x := exits.NewLocal(netip.MustParseAddr(a), exitCountry[a], dialer)
		x.Region, x.City, x.ASN = exitPlace[a].region, exitPlace[a].city, exitPlace[a].asn
		ex = append(ex, x)
	}
	e.pool = exits.NewPool(ex)
	e.srv.SetPool(e.pool)
	return e
}

func TestSteeringByPlace(t *testing.T) {
	e := placedEnv(t)
	h := headerOf
	tests := []struct {
		name   string
		login  string
		header http.Header
		want   []string // the exits allowed
	}{
		{"city", "alice-city-los_angeles", h("X-ProxyMesh-City", "Los_Angeles"), []string{"127.0.0.2", "127.0.0.3"}},
		{"region", "alice-region-de_be", h("X-ProxyMesh-Region", "de-be"), []string{"127.0.0.4", "127.0.0.5"}},
		{"asn", "alice-asn-AS64500", h("X-ProxyMesh-ASN", "64500"), []string{"127.0.0.2", "127.0.0.4"}},
		{"country and asn", "alice-cc-de-asn-64500", h("X-ProxyMesh-Country", "DE", "X-ProxyMesh-ASN", "as64500"), []string{"127.0.0.4"}},
		{"city and asn", "alice-city-berlin-asn-64502", h("X-ProxyMesh-City", "berlin", "X-ProxyMesh-ASN", "64502"), []string{"127.0.0.5"}},
	}
	for _, tunnel := range []bool{false, true} {
		for _, tt := range tests {
			t.Run(tt.name+map[bool]string{false: " http", true: " connect"}[tunnel], func(t *testing.T) {
				for range 8 {
					byName := e.through(tunnel, tt.login, alicePW, nil)
					byHeader := e.through(tunnel, "alice", alicePW, tt.header)
					for _, got := range []seen{byName, byHeader} {
						if got.status != "200" || !strings.Contains(strings.Join(tt.want, " "), got.originSaw) || got.originSaw == "" {
							t.Fatalf("username %s: %+v; headers %v: %+v; want one of %v", tt.login, byName, tt.header, byHeader, tt.want)
						}
					}
				}
			})
		}
	}
	t.Run("socks5", func(t *testing.T) {
		for range 8 {
			if ip := e.seenThrough(t, e.socksClient(t, "alice-cc-de-city-berlin-asn-64502", alicePW, "")); ip != "127.0.0.5" {
				t.Fatalf("SOCKS5 as alice-cc-de-city-berlin-asn-64502 left from %s, want 127.0.0.5", ip)
			}
		}
		if _, reply := e.socksHandshake(t, "", "alice-city-paris", alicePW, socksConnectTo("origin.test:"+portOf(e.origin.URL))); reply != 0x01 {
			t.Errorf("SOCKS5 to a city without exits: reply %#x, want 0x01 (general failure)", reply)
		}
	})
	t.Run("no match", func(t *testing.T) {
		for _, tt := range []struct{ login, header, message string }{
			{"alice-city-paris", "X-ProxyMesh-City: paris", "No exit is available for city paris on this proxy server."},
			{"alice-cc-us-city-berlin", "X-ProxyMesh-Country: US\r\nX-ProxyMesh-City: berlin", "No exit is available for country US and city berlin on this proxy server."},
		} {
			if got := e.through(true, tt.login, alicePW, nil); got.status != "503" || got.reason != "no-exit-for-target" {
				t.Errorf("CONNECT as %s: %+v, want 503 no-exit-for-target", tt.login, got)
			}
			resp, body := e.raw("GET " + e.origin.URL + "/ HTTP/1.1\r\nHost: " + strings.TrimPrefix(e.origin.URL, "http://") + "\r\nProxy-Authorization: " + basic("alice", alicePW) +
				"\r\n" + tt.header + "\r\n\r\n")
			if resp.StatusCode != 503 || resp.Header.Get("X-ProxyMesh-Error") != "no-exit-for-target" || strings.TrimSpace(body) != tt.message ||
				!strings.Contains(resp.Header.Get("Proxy-Status"), "error=destination_unavailable") {
				t.Errorf("%s: %d %v %q, want 503 no-exit-for-target saying %q", tt.header, resp.StatusCode, resp.Header, body, tt.message)
			}
		}
		// A country alone keeps its own reason.
		if got := e.through(false, "alice-cc-fr", alicePW, nil); got.status != "503" || got.reason != "no-exit-in-country" {
			t.Errorf("alice-cc-fr: %+v, want 503 no-exit-in-country", got)
		}
	})
	t.Run("bad values", func(t *testing.T) {
		for _, login := range []string{"alice-city-los.angeles", "alice-asn-ASX", "alice-region-california", "alice-sesstime-0", "alice-sessmode-loose", "alice-cc-de-country-de", "alice-sessid-a-colour-red"} {
			if got := e.through(false, login, alicePW, nil); got.status != "400" || got.reason != "bad-steering" {
				t.Errorf("%s: %+v, want 400 bad-steering", login, got)
			}
		}
		resp, body := e.raw("GET " + e.origin.URL + "/ HTTP/1.1\r\nHost: " + strings.TrimPrefix(e.origin.URL, "http://") + "\r\nProxy-Authorization: " + basic("alice-session-s-sesstime-1441", alicePW) + "\r\n\r\n")
		if resp.StatusCode != 400 || !strings.Contains(body, "-sesstime-") || !strings.Contains(body, "1441") {
			t.Errorf("sesstime-1441: %d %q, want a 400 naming -sesstime- and the value", resp.StatusCode, body)
		}
	})
}

func TestSessTimeSetsTheSessionsIdleLifetime(t *testing.T) {
	clk := &clock{now: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	e := newEnv(t, func(c *proxy.Config, _ *egress.Dialer) { c.Sessions = exits.NewSessions(10*time.Minute, 1000, clk.Now) })
	for _, tt := range []struct {
		name, login string
		header      http.Header
	}{
		{"username", "alice-sessid-t1-sesstime-1", nil},
		{"header", "alice", http.Header{"X-Proxymesh-Session": {"t2"}, "X-Proxymesh-Session-Ttl": {"1"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			first := e.through(false, tt.login, alicePW, tt.header).originSaw
			long := e.through(false, "alice-session-long-"+tt.name, alicePW, nil).originSaw
			clk.Advance(59 * time.Second)
			if got := e.through(false, tt.login, alicePW, tt.header).originSaw; got != first {
				t.Fatalf("59 s idle moved a one-minute session from %s to %s", first, got)
			}
			moved := false
			for range 20 {
				clk.Advance(61 * time.Second)
				moved = moved || e.through(false, tt.login, alicePW, tt.header).originSaw != first
				if got := e.through(false, "alice-session-long-"+tt.name, alicePW, nil).originSaw; got != long {
					t.Fatalf("a session on the configured 10 minutes moved from %s to %s after 61 s", long, got)
				}
			}
			if !moved {
				t.Errorf("a one-minute session kept %s through 20 idle minutes", first)
			}
		})
	}
}

func TestStrictSessionFailsWhenItsExitGoes(t *testing.T) {
	for _, tunnel := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "connect"}[tunnel], func(t *testing.T) {
			e := newEnv(t)
			strictHeader := http.Header{"X-Proxymesh-Session": {"h"}, "X-Proxymesh-Session-Mode": {"strict"}}
			strict := e.through(tunnel, "alice-session-s-sessmode-strict", alicePW, nil)
			byHeader := e.through(tunnel, "alice", alicePW, strictHeader)
			if strict.status != "200" || byHeader.status != "200" {
				t.Fatalf("first requests of strict sessions: %+v %+v", strict, byHeader)
			}
			// A loose session on the same exit as the strict one, to see it move.
			loose := ""
			for i := 0; i < 200 && loose == ""; i++ {
				if login := fmt.Sprintf("alice-session-l%d", i); e.through(tunnel, login, alicePW, nil).originSaw == strict.originSaw {
					loose = login
				}
			}
			if loose == "" {
				t.Fatalf("no session landed on %s in 200 tries", strict.originSaw)
			}
			gone := []string{strict.originSaw, byHeader.originSaw}
			var rest []*exits.Exit
			for _, x := range e.pool.Exits() {
				if !strings.Contains(strings.Join(gone, " "), x.IP.String()) {
					rest = append(rest, x)
				}
			}
			e.srv.SetPool(exits.NewPool(rest)) // as a reload that removes the exits does
			for range 3 {
				if got := e.through(tunnel, "alice-session-s-sessmode-strict", alicePW, nil); got.status != "503" || got.reason != "session-exit-unavailable" {
					t.Fatalf("strict session after its exit %s left the pool: %+v, want 503 session-exit-unavailable", strict.originSaw, got)
				}
				if got := e.through(tunnel, "alice", alicePW, strictHeader); got.status != "503" || got.reason != "session-exit-unavailable" {
					t.Fatalf("strict session (headers) after its exit %s left the pool: %+v, want 503 session-exit-unavailable", byHeader.originSaw, got)
				}
			}
			if got := e.through(tunnel, loose, alicePW, nil); got.status != "200" || got.originSaw == strict.originSaw || got.originSaw == "" {
				t.Fatalf("a non-strict session on the removed exit: %+v, want another exit", got)
			}
			e.srv.SetPool(e.pool) // the exits come back: the strict sessions resume on them
			if got := e.through(tunnel, "alice-session-s-sessmode-strict", alicePW, nil); got.status != "200" || got.originSaw != strict.originSaw {
				t.Fatalf("strict session after its exit came back: %+v, want %s", got, strict.originSaw)
			}
		})
	}
}

func TestStrictSessionFailsWhileItsExitIsDown(t *testing.T) {
	e := newEnv(t)
	checks := e.runHealthChecks(t)
	const strict = "alice-session-down-sessmode-strict"
	first := e.through(true, strict, alicePW, nil)
	if first.status != "200" {
		t.Fatalf("first request of a strict session: %+v", first)
	}
	e.setDown(first.originSaw, true)
	waitHealth(t, checks, first.originSaw, false)
	for _, tunnel := range []bool{false, true} {
		if got := e.through(tunnel, strict, alicePW, nil); got.status != "503" || got.reason != "session-exit-unavailable" || got.exitIP != "" {
			t.Fatalf("strict session while its exit %s is unhealthy (tunnel %v): %+v, want 503 session-exit-unavailable naming no exit", first.originSaw, tunnel, got)
		}
	}
	e.setDown(first.originSaw, false)
	waitHealth(t, checks, first.originSaw, true)
	if got := e.through(false, strict, alicePW, nil); got.status != "200" || got.originSaw != first.originSaw {
		t.Fatalf("strict session after its exit recovered: %+v, want %s again", got, first.originSaw)
	}
}
