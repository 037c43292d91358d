package node_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/domain"
)

// ratesConfig has one plan per limit: rated (5 requests a second), paced (4 MiB/s each way) and
// narrow (2 requests and tunnels in flight).
const ratesConfig = `
store: sqlite:%s
api: {listen: "127.0.0.1:0"}
metrics: {listen: "127.0.0.1:0"}
sync: {interval: 100ms}
proxies:
  - name: us-ca
    listen: "127.0.0.1:0"
    exits: [{ip: 127.0.0.2}]
egress: {allow: [127.0.0.1/32]}
plans:
  - {name: rated, proxies: 3, subs: 5, ips: 10, hostnames: 5, bandwidth: 0, rate: 5}
  - {name: paced, proxies: 3, subs: 5, ips: 10, hostnames: 5, bandwidth: 0, speed: 4MiB}
  - {name: narrow, proxies: 3, subs: 5, ips: 10, hostnames: 5, bandwidth: 0, connections: 2}
`

func (f *fixture) createOnPlan(t *testing.T, username, plan string) {
	t.Helper()
	hash, err := auth.HashPassword(username + "-password")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.admin.CreateAccount(context.Background(), domain.NewAccount{Username: username, PasswordHash: hash,
		Plan: plan, Confirmed: true, Proxies: []string{"us-ca"}}); err != nil {
		t.Fatal(err)
	}
	c := f.client(username, username+"-password", "")
	eventually(t, username+" visible", func() error { return is(200, "")(status(t, c, f.origin.URL+"/ip")) })
}

// rate: 5 — a burst of requests gets five 200s, then 429 rate-limited with Retry-After; no more
// than the plan's rate is served over the burst's time, and requests are served again once a second
// has passed.
func TestPlanRate(t *testing.T) {
	f := startWith(t, ratesConfig, slog.New(slog.DiscardHandler))
	f.createOnPlan(t, "alice", "rated")
	time.Sleep(1100 * time.Millisecond) // the bucket refills after the sign-in probes
	c := f.client("alice", "alice-password", "")
	c.Transport.(*http.Transport).DisableKeepAlives = false // one connection: the requests come fast
	var codes []int
	var refused *http.Response
	start := time.Now()
	for range 20 {
		resp, err := c.Get(f.origin.URL + "/ip")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == 429 && refused == nil {
			refused = resp
		}
	}
	elapsed := time.Since(start)
	served := 0
	for _, c := range codes {
		if c == 200 {
			served++
		}
	}
	// A bucket of 5 refilled at 5 a second: at most 5 + 5·elapsed (rounded up) in the burst.
	if most := 5 + int(5*elapsed.Seconds()) + 1; served > most || fmt.Sprint(codes[:5]) != "[200 200 200 200 200]" || refused == nil {
		t.Fatalf("20 requests in %v: %v; want the first five served, at most %d in all, and 429s", elapsed, codes, most)
	}
	if refused.Header.Get("X-ProxyMesh-Error") != "rate-limited" || refused.Header.Get("Retry-After") != "1" {
		t.Errorf("429 with X-ProxyMesh-Error %q, Retry-After %q; want rate-limited, 1", refused.Header.Get("X-ProxyMesh-Error"), refused.Header.Get("Retry-After"))
	}
	time.Sleep(time.Second)
	if code, _ := status(t, c, f.origin.URL+"/ip"); code != 200 {
		t.Errorf("a second later: %d, want 200", code)
	}
}

// speed: 4MiB — a 10 MiB download through a tunnel and one forwarded take the plan's speed within
// 10%, and are not cut.
func TestPlanSpeed(t *testing.T) {
	f := startWith(t, ratesConfig, slog.New(slog.DiscardHandler))
	f.createOnPlan(t, "alice", "paced")
	const size, speed = 10 << 20, 4 << 20
	check := func(how string, got int64, took time.Duration) {
		t.Helper()
		rate := float64(got) / took.Seconds()
		t.Logf("%s: %d bytes in %v: %.2f MiB/s (plan: 4 MiB/s)", how, got, took.Round(time.Millisecond), rate/(1<<20))
		if got != size || rate < 0.9*speed || rate > 1.1*speed {
			t.Errorf("%s: %d bytes at %.2f MiB/s, want %d bytes at 4 MiB/s ±10%%", how, got, rate/(1<<20), size)
		}
	}
	c := f.client("alice", "alice-password", "")
	start := time.Now()
	resp, err := c.Get(fmt.Sprintf("%s/bytes/%d", f.origin.URL, size))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	check("forwarded", n, time.Since(start))

	conn, err := net.Dial("tcp", f.node.ProxyAddr("us-ca"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dest := strings.TrimPrefix(f.origin.URL, "http://")
	start = time.Now()
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\n\r\nGET /bytes/%d HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
		dest, dest, basicCreds("alice", "alice-password"), size, dest)
	br := bufio.NewReader(conn)
	if ok, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"}); err != nil || ok.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", ok, err)
	}
	inner, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, _ = io.Copy(io.Discard, inner.Body)
	check("tunnel", n, time.Since(start))
}

func basicCreds(user, password string) string {
	req, _ := http.NewRequest("GET", "http://x/", nil)
	req.SetBasicAuth(user, password)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

// connections: 2 — with two tunnels open, a third CONNECT is refused 429 too-many-connections with
// Retry-After; once one closes, a new one opens.
func TestPlanConnections(t *testing.T) {
	f := startWith(t, ratesConfig, slog.New(slog.DiscardHandler))
	f.createOnPlan(t, "alice", "narrow")
	dest := strings.TrimPrefix(f.origin.URL, "http://")
	open := func() (net.Conn, *http.Response) {
		t.Helper()
		conn, err := net.Dial("tcp", f.node.ProxyAddr("us-ca"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\n\r\n", dest, dest, basicCreds("alice", "alice-password"))
		resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: "CONNECT"})
		if err != nil {
			t.Fatal(err)
		}
		return conn, resp
	}
	// The sign-in probe's request may still count for a moment after its answer: wait for two.
	var first net.Conn
	eventually(t, "two tunnels", func() error {
		c1, r1 := open()
		c2, r2 := open()
		if r1.StatusCode != 200 || r2.StatusCode != 200 {
			c1.Close()
			c2.Close()
			return fmt.Errorf("two tunnels: %d %d, want 200 200", r1.StatusCode, r2.StatusCode)
		}
		first = c1
		return nil
	})
	_, r3 := open()
	if r3.StatusCode != 429 || r3.Header.Get("X-ProxyMesh-Error") != "too-many-connections" || r3.Header.Get("Retry-After") == "" {
		t.Errorf("third tunnel: %d %q Retry-After %q, want 429 too-many-connections with Retry-After", r3.StatusCode,
			r3.Header.Get("X-ProxyMesh-Error"), r3.Header.Get("Retry-After"))
	}
	first.Close()
	eventually(t, "a tunnel after one closed", func() error {
		if _, r := open(); r.StatusCode != 200 {
			return fmt.Errorf("%d", r.StatusCode)
		}
		return nil
	})
}
