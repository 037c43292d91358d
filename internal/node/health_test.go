package node_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/upstreamtest"
)

// healthConfig is a node whose us-ca mixes a local exit with a SOCKS5 upstream exit, checked by
// connecting to a loopback echo server through each exit.
const healthConfig = `
store: sqlite:%%s
api: {listen: "127.0.0.1:0"}
metrics: {listen: "127.0.0.1:0"}
sync: {interval: 100ms}
health: {target: %q, interval: 100ms, timeout: 100ms, fall: %d, rise: 2}
sessions: {ttl: 1m}
proxies:
  - name: us-ca
    listen: "127.0.0.1:0"
    country: US
    exits:
      - {ip: 127.0.0.2}
      - {url: %q, ip: 203.0.113.7}
egress: {allow: [127.0.0.1/32]}
plans:
  - {name: starter, proxies: 3, subs: 5, ips: 10, hostnames: 5, bandwidth: 10GB}
`

// exitVia sends a GET through us-ca as login and returns the address the origin saw and X-ProxyMesh-IP.
func exitVia(t *testing.T, f *fixture, login string) (saw, exitIP string) {
	t.Helper()
	resp, err := f.client(login, "alice-password", "").Get(f.origin.URL + "/ip")
	if err != nil {
		t.Fatalf("GET as %s: %v", login, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET as %s: %d %s", login, resp.StatusCode, resp.Header.Get("X-ProxyMesh-Error"))
	}
	return strings.TrimSpace(string(body)), resp.Header.Get("X-ProxyMesh-IP")
}

// TestKilledExitLeavesRotationAndReturns kills a real SOCKS5 upstream exit and revives it: the exit
// leaves rotation after health.fall failed checks, a session on it moves to the other exit and stays,
// operators see it down in the store and in metrics, and it returns after health.rise good checks.
func TestKilledExitLeavesRotationAndReturns(t *testing.T) {
	const fall = 3
	socks := upstreamtest.StartSOCKS5(t, "127.0.0.7")
	var logs syncBuffer
	f := startWith(t, fmt.Sprintf(healthConfig, startEcho(t), fall, socks.URL()), slog.New(slog.NewTextHandler(&logs, nil)))
	f.createAccount(t, "alice", "alice-password")
	eventually(t, "alice can use us-ca", func() error {
		return is(200, "")(status(t, f.client("alice", "alice-password", ""), f.origin.URL+"/ip"))
	})

	// Both exits serve; each reports the address the origin really saw.
	seen := map[string]string{}
	for range 40 {
		saw, exitIP := exitVia(t, f, "alice")
		seen[exitIP] = saw
	}
	if seen["127.0.0.2"] != "127.0.0.2" || seen["203.0.113.7"] != "127.0.0.7" {
		t.Fatalf("40 requests: exits and what the origin saw %v, want both exits", seen)
	}

	// A session that landed on the upstream keeps it for 20 requests.
	session := ""
	for i := 0; session == "" && i < 200; i++ {
		if _, exitIP := exitVia(t, f, fmt.Sprintf("alice-session-s%d", i)); exitIP == "203.0.113.7" {
			session = fmt.Sprintf("alice-session-s%d", i)
		}
	}
	if session == "" {
		t.Fatal("no session of 200 landed on the upstream exit")
	}
	for i := range 20 {
		if saw, _ := exitVia(t, f, session); saw != "127.0.0.7" {
			t.Fatalf("request %d of %s left through %s, want the session's exit 127.0.0.7", i, session, saw)
		}
	}

	mark := logs.Len() // a check that timed out under load earlier must not count as this one
	socks.Stop()
	down := waitLog(t, &logs, mark, `msg="exit out of rotation" proxy=us-ca exit=203.0.113.7 .*failed_checks=(\d+)`)
	if down[1] != fmt.Sprint(fall) {
		t.Errorf("the exit left rotation after %s failed checks, want health.fall = %d", down[1], fall)
	}
	moved, _ := exitVia(t, f, session)
	if moved != "127.0.0.2" {
		t.Fatalf("after its exit died the session left through %s, want the other exit", moved)
	}
	for range 20 {
		if saw, _ := exitVia(t, f, "alice"); saw != "127.0.0.2" {
			t.Fatalf("a dead exit served: origin saw %s", saw)
		}
	}
	eventually(t, "the store shows the exit down", func() error {
		return exitReported(t, f.admin, "203.0.113.7", false, socks.Pass)
	})
	if m := metric(t, f, `exitmesh_exit_healthy{exit="203.0.113.7",proxy="us-ca"}`); m != "0" {
		t.Errorf("exitmesh_exit_healthy of the dead exit = %s, want 0", m)
	}

	mark = logs.Len()
	socks.Start()
	waitLog(t, &logs, mark, `msg="exit back in rotation" proxy=us-ca exit=203.0.113.7`)
	back := false
	for i := 0; !back && i < 60; i++ {
		saw, _ := exitVia(t, f, "alice")
		back = saw == "127.0.0.7"
	}
	if !back {
		t.Error("the revived exit did not serve in 60 requests")
	}
	for range 10 { // the session moved once and stays where it went
		if saw, _ := exitVia(t, f, session); saw != "127.0.0.2" {
			t.Fatalf("the session moved back to %s though its new exit is alive", saw)
		}
	}
	eventually(t, "the store shows the exit up", func() error {
		return exitReported(t, f.admin, "203.0.113.7", true, socks.Pass)
	})
	if m := metric(t, f, `exitmesh_exit_healthy{exit="203.0.113.7",proxy="us-ca"}`); m != "1" {
		t.Errorf("exitmesh_exit_healthy of the revived exit = %s, want 1", m)
	}
}

// waitLog waits for a log line matching re written after the first mark bytes, and returns its
// submatches.
func waitLog(t *testing.T, logs *syncBuffer, mark int, re string) []string {
	t.Helper()
	pattern := regexp.MustCompile(re)
	var m []string
	eventually(t, "log line "+re, func() error {
		if m = pattern.FindStringSubmatch(logs.String()[mark:]); m == nil {
			return fmt.Errorf("no log line matches %s", re)
		}
		return nil
	})
	return m
}

// exitReported checks the store's report of exit ip: its health, and its upstream with the password
// masked.
func exitReported(t *testing.T, s domain.Store, ip string, healthy bool, password string) error {
	t.Helper()
	all, err := s.ListExitStatuses(context.Background())
	if err != nil {
		return err
	}
	for _, e := range all {
		if e.IP.String() != ip {
			continue
		}
		switch {
		case e.Healthy != healthy:
			return fmt.Errorf("exit %s reported healthy=%v", ip, e.Healthy)
		case !strings.HasPrefix(e.Via, "socks5://") || !strings.Contains(e.Via, ":xxxxx@") || strings.Contains(e.Via, password):
			return fmt.Errorf("exit %s reported via %q", ip, e.Via)
		case !healthy && !strings.Contains(e.LastError, "refused"):
			return fmt.Errorf("dead exit %s reported last error %q", ip, e.LastError)
		case time.Since(e.Updated) > time.Minute:
			return fmt.Errorf("exit %s report is old: %v", ip, e.Updated)
		}
		return nil
	}
	return fmt.Errorf("exit %s not reported (%d reports)", ip, len(all))
}

// metric reads one sample of the node's /metrics.
func metric(t *testing.T, f *fixture, series string) string {
	t.Helper()
	resp, err := http.Get("http://" + f.node.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return "absent"
}
