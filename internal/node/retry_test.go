package node_test

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// retryConfig is a node whose proxy server us-ca has one local exit that works and one upstream exit
// whose proxy refuses every connection (nothing listens at its address).
const retryConfig = `
store: sqlite:%%s
api: {listen: "127.0.0.1:0"}
metrics: {listen: "127.0.0.1:0"}
sync: {interval: 100ms}
proxies:
  - name: us-ca
    listen: "127.0.0.1:0"
    country: US
    exits:
      - {ip: 127.0.0.3}
      - {url: "http://%s", ip: 203.0.113.9}
egress: {allow: [127.0.0.1/32]}
plans:
  - {name: starter, proxies: 3, subs: 5, ips: 10, hostnames: 5, bandwidth: 10GB}
`

// Seen from outside the node: a request steered to the exit that cannot connect is served by the
// other exit, the answer names that exit (the address the origin saw), and the retry is counted.
func TestRefusedExitIsRetriedOnAnotherExit(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close() // connects to it are refused by the kernel
	f := startWith(t, fmt.Sprintf(retryConfig, closed), slog.New(slog.DiscardHandler))
	f.createAccount(t, "alice", "alice-password")
	alice := f.client("alice", "alice-password", "")
	eventually(t, "account visible", func() error { return is(200, "")(status(t, alice, f.origin.URL+"/ip")) })
	for i := range 5 {
		req, _ := http.NewRequest(http.MethodGet, f.origin.URL+"/ip", nil)
		req.Header.Set("X-ProxyMesh-Prefer-IP", "203.0.113.9")
		resp, err := alice.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-ProxyMesh-IP") != "127.0.0.3" || strings.TrimSpace(string(body)) != "127.0.0.3" {
			t.Fatalf("request %d: %d via %q, origin saw %q; want 200 via 127.0.0.3", i, resp.StatusCode,
				resp.Header.Get("X-ProxyMesh-IP"), body)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, f.origin.URL+"/ip", nil)
	req.Header.Set("X-ProxyMesh-IP", "203.0.113.9") // pinned: the client hears of the failure
	resp, err := alice.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 502 || resp.Header.Get("X-ProxyMesh-IP") != "203.0.113.9" || !strings.Contains(resp.Header.Get("Proxy-Status"), "error=connection_refused") {
		t.Errorf("pinned: %d via %q, Proxy-Status %q; want 502 via 203.0.113.9, connection_refused", resp.StatusCode,
			resp.Header.Get("X-ProxyMesh-IP"), resp.Header.Get("Proxy-Status"))
	}
	m, err := http.Get("http://" + f.node.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(m.Body)
	m.Body.Close()
	// At least the five steered there; the first request's random choice may have added one.
	var retries int
	for line := range strings.SplitSeq(string(text), "\n") {
		if v, ok := strings.CutPrefix(line, `exitmesh_exit_retries_total{proxy="us-ca"} `); ok {
			retries, _ = strconv.Atoi(v)
		}
	}
	if retries < 5 {
		t.Errorf("exitmesh_exit_retries_total{proxy=\"us-ca\"} = %d, want at least 5", retries)
	}
}
