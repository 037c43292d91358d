package node_test

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/tcptest"
)

// A node whose egress allow list lets everything through still refuses the node itself: its
// listeners and its exits' addresses. Before, a CONNECT to the proxy's own address opened a tunnel
// into the proxy, inside which wrong passwords banned the exit's address instead of the attacker's.
const openEgressConfig = `
store: sqlite:%s
api: {listen: "127.0.0.1:0", http_listen: "127.0.0.1:0", require_https: false}
metrics: {listen: "127.0.0.1:0"}
sync: {interval: 100ms}
bans: {auth_failures: 3}
proxies:
  - name: us-ca
    listen: "127.0.0.1:0"
    exits: [{ip: 127.0.0.2}, {ip: 127.0.0.3}]
  - name: de
    listen: "127.0.0.1:0"
    address: "127.0.0.9:31999"   # as behind NAT: not the listen address
    exits: [{ip: 127.0.0.4}]
egress: {allow: [0.0.0.0/0, "::/0"]}
plans:
  - {name: starter, proxies: 3, subs: 5, ips: 10, hostnames: 5, bandwidth: 10GB}
`

// connectAs sends CONNECT target from source as alice and returns the status line's code, the
// X-ProxyMesh-Error and the body of the answer.
func connectAs(t *testing.T, proxyAddr, source, target, password string) (int, string, string) {
	t.Helper()
	c := tcptest.DialFrom(t, proxyAddr, source)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\n\r\n", target, target, base64.StdEncoding.EncodeToString([]byte("alice:"+password)))
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("CONNECT %s: %v", target, err)
	}
	var body []byte
	if resp.StatusCode != http.StatusOK {
		body, _ = io.ReadAll(resp.Body)
	}
	return resp.StatusCode, resp.Header.Get("X-ProxyMesh-Error"), string(body)
}

// recordingListener counts the connections it accepts.
func recordingListener(t *testing.T, addr string) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().String(), &n
}

func TestTheNodeNeverConnectsToItself(t *testing.T) {
	f := startWith(t, openEgressConfig, slog.New(slog.DiscardHandler))
	f.createAccount(t, "alice", "alice-password", "us-ca", "de")
	proxyAddr := f.node.ProxyAddr("us-ca")
	eventually(t, "alice accepted", func() error {
		s, _, _ := connectAs(t, proxyAddr, "127.0.0.1", f.origin.Listener.Addr().String(), "alice-password")
		if s != http.StatusOK {
			return fmt.Errorf("CONNECT to the origin: %d", s)
		}
		return nil
	})

	_, port, _ := net.SplitHostPort(proxyAddr)
	// Services on the exits' addresses: a connection from the node to any of them is refused before
	// it is made, which these listeners would see.
	exitUS, usConns := recordingListener(t, "127.0.0.2:0")
	exitDE, deConns := recordingListener(t, "127.0.0.4:0")
	targets := map[string]string{
		"us-ca's listener":             proxyAddr,
		"de's listener":                f.node.ProxyAddr("de"),
		"de's advertised address":      "127.0.0.9:31999",
		"the API (HTTPS)":              f.node.APIAddr(),
		"the API (plain HTTP)":         f.node.APIHTTPAddr(),
		"metrics":                      f.node.MetricsAddr(),
		"us-ca, IPv4-mapped":           "[::ffff:127.0.0.1]:" + port,
		"us-ca, unspecified":           "0.0.0.0:" + port,
		"us-ca, IPv6 unspecified":      "[::]:" + port,
		"an exit of us-ca":             exitUS,
		"an exit of de":                exitDE,
		"an exit, on the proxy's port": "127.0.0.3:" + port,
	}
	for what, target := range targets {
		s, reason, body := connectAs(t, proxyAddr, "127.0.0.1", target, "alice-password")
		if s != http.StatusForbidden || reason != "egress-denied" || !strings.Contains(body, "the proxy itself") {
			t.Errorf("CONNECT %s (%s): %d %s %q, want 403 egress-denied naming the proxy itself", target, what, s, reason, body)
		}
	}
	if usConns.Load() != 0 || deConns.Load() != 0 {
		t.Errorf("the services on the exits' addresses saw %d and %d connections, want none", usConns.Load(), deConns.Load())
	}
	// A forwarded request to the node's own API is refused the same way.
	resp, err := f.client("alice", "alice-password", "").Get("http://" + f.node.APIHTTPAddr() + "/api/ips/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-ProxyMesh-Error") != "egress-denied" {
		t.Errorf("GET the API through the proxy: %d %s, want 403 egress-denied", resp.StatusCode, resp.Header.Get("X-ProxyMesh-Error"))
	}
	// The allow list still lets the origin through.
	if s, reason, _ := connectAs(t, proxyAddr, "127.0.0.1", f.origin.Listener.Addr().String(), "alice-password"); s != http.StatusOK {
		t.Errorf("CONNECT to the origin: %d %s, want 200", s, reason)
	}
}

// TestFailedAuthenticationsFromAnExitBanNobody: wrong passwords arriving from one of the node's own
// exits (any customer's traffic may) are answered 407 but never counted toward a ban of that exit;
// from any other address they ban it as before.
func TestFailedAuthenticationsFromAnExitBanNobody(t *testing.T) {
	f := startWith(t, openEgressConfig, slog.New(slog.DiscardHandler))
	f.createAccount(t, "alice", "alice-password")
	proxyAddr := f.node.ProxyAddr("us-ca")
	target := f.origin.Listener.Addr().String()
	eventually(t, "alice accepted", func() error {
		if s, _, _ := connectAs(t, proxyAddr, "127.0.0.1", target, "alice-password"); s != http.StatusOK {
			return fmt.Errorf("CONNECT: %d", s)
		}
		return nil
	})
	for i := range 6 {
		if s, reason, _ := connectAs(t, proxyAddr, "127.0.0.2", target, "wrong"); s != http.StatusProxyAuthRequired {
			t.Fatalf("wrong password %d from the exit 127.0.0.2: %d %s, want 407", i+1, s, reason)
		}
	}
	if s, reason, _ := connectAs(t, proxyAddr, "127.0.0.2", target, "alice-password"); s != http.StatusOK {
		t.Errorf("the right password from the exit after 6 wrong ones: %d %s, want 200 (not banned)", s, reason)
	}
	for range 4 {
		connectAs(t, proxyAddr, "127.0.0.8", target, "wrong")
	}
	if s, reason, _ := connectAs(t, proxyAddr, "127.0.0.8", target, "alice-password"); s != http.StatusForbidden || reason != "banned" {
		t.Errorf("127.0.0.8 after 4 wrong passwords: %d %s, want 403 banned", s, reason)
	}
}
