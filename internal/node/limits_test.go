package node_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/tcptest"
	"github.com/exitmesh/exitmesh/internal/testwait"
)

// The connection limits hold per node: every proxy server of a node shares one count per client IP
// and per account, and the API listeners share a count per client IP of their own.
const limitsConfig = `
store: sqlite:%s
api: {listen: "127.0.0.1:0", http_listen: "127.0.0.1:0"}
metrics: {listen: "127.0.0.1:0"}
sync: {interval: 100ms}
limits: {connections_per_ip: 3, connections_per_account: 2}
timeouts: {read_header: 1m}
proxies:
  - {name: us-ca, listen: "127.0.0.1:0", country: US, exits: [{ip: 127.0.0.2}]}
  - {name: world, listen: "127.0.0.1:0", exits: [{ip: 127.0.0.3}]}
egress: {allow: [127.0.0.1/32]}
plans:
  - {name: starter, proxies: 3, subs: 5, ips: 10, hostnames: 5, bandwidth: 10GB}
`

// tlsFrom completes a TLS handshake with the API at addr from the loopback address ip.
func tlsFrom(t *testing.T, addr, ip string) *tls.Conn {
	t.Helper()
	c := tls.Client(tcptest.DialFrom(t, addr, ip), &tls.Config{InsecureSkipVerify: true}) // the node's self-signed certificate
	if err := c.Handshake(); err != nil {
		t.Fatalf("TLS handshake with the API from %s: %v", ip, err)
	}
	return c
}

// apiAnswers sends a request on an API connection and requires an HTTP answer, whatever its status.
func apiAnswers(t *testing.T, c net.Conn, what string) {
	t.Helper()
	fmt.Fprint(c, "GET /api/v1/account HTTP/1.1\r\nHost: api\r\n\r\n")
	if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// requireClosedUnanswered requires the server to have closed c without sending a byte.
func requireClosedUnanswered(t *testing.T, c net.Conn, what string) {
	t.Helper()
	n, err := c.Read(make([]byte, 1))
	if n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: read %d bytes, %v; want the connection closed without a byte", what, n, err)
	}
}

func limitHits(listener, limit string) string {
	return fmt.Sprintf(`exitmesh_limit_hits_total{limit=%q,listener=%q}`, limit, listener)
}

// TestConnectionsPerIPOnTheAPI holds limits.connections_per_ip TLS connections to the API from
// 127.0.0.1: the next one, on the HTTPS or the plain-HTTP listener, is closed before the handshake;
// another IP is served, and so is 127.0.0.1 on a proxy server, which counts apart; once one of the
// held connections closes, 127.0.0.1 reaches the API again.
func TestConnectionsPerIPOnTheAPI(t *testing.T) {
	f := startWith(t, limitsConfig, slog.New(slog.DiscardHandler))
	api := f.node.APIAddr()
	var held []net.Conn
	for range 3 {
		held = append(held, tlsFrom(t, api, "127.0.0.1"))
	}
	requireClosedUnanswered(t, tcptest.DialFrom(t, api, "127.0.0.1"), "a 4th connection to the API from 127.0.0.1")
	requireClosedUnanswered(t, tcptest.DialFrom(t, f.node.APIHTTPAddr(), "127.0.0.1"), "a 4th, to the plain-HTTP API listener")
	if got := metric(t, f, limitHits("api", "connections_per_ip")); got != "2" {
		t.Errorf("api connections_per_ip hits: %s, want 2", got)
	}

	apiAnswers(t, tlsFrom(t, api, "127.0.0.10"), "the API from 127.0.0.10")
	f.createAccount(t, "alice", "alice-password")
	if err := f.node.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, reason := status(t, f.client("alice", "alice-password", "127.0.0.1"), f.origin.URL+"/ip"); code != http.StatusOK {
		t.Errorf("a proxy request from 127.0.0.1 while it holds the API's limit: %d %s, want 200", code, reason)
	}

	held[0].Close()
	var again *tls.Conn
	testwait.For(t, "127.0.0.1 reaches the API after one of its connections closed", func() error {
		c, err := tls.DialWithDialer(&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}}, "tcp", api,
			&tls.Config{InsecureSkipVerify: true})
		if err != nil {
			return err
		}
		again = c
		return nil
	})
	t.Cleanup(func() { again.Close() })
	again.SetDeadline(time.Now().Add(testwait.Bound))
	apiAnswers(t, again, "the API from 127.0.0.1 again")
}

// TestConnectionLimitsSpanTheNodesProxyServers checks that the per-IP and per-account counts are the
// node's, not each proxy server's.
func TestConnectionLimitsSpanTheNodesProxyServers(t *testing.T) {
	f := startWith(t, limitsConfig, slog.New(slog.DiscardHandler))
	usCA, world := f.node.ProxyAddr("us-ca"), f.node.ProxyAddr("world")
	t.Run("per IP", func(t *testing.T) {
		var held []net.Conn
		for _, addr := range []string{usCA, usCA, world} {
			held = append(held, tcptest.DialFrom(t, addr, "127.0.0.1"))
		}
		testwait.For(t, "three connections open", func() error {
			a, b := metric(t, f, `exitmesh_proxy_client_connections{proxy="us-ca"}`), metric(t, f, `exitmesh_proxy_client_connections{proxy="world"}`)
			if a != "2" || b != "1" {
				return fmt.Errorf("us-ca %s, world %s; want 2 and 1", a, b)
			}
			return nil
		})
		requireClosedUnanswered(t, tcptest.DialFrom(t, world, "127.0.0.1"), "a 4th connection from 127.0.0.1, to world")
		if got := metric(t, f, limitHits("world", "connections_per_ip")); got != "1" {
			t.Errorf("world connections_per_ip hits: %s, want 1", got)
		}
		for _, c := range held {
			c.Close()
		}
		testwait.For(t, "the held connections released", func() error {
			if a, b := metric(t, f, `exitmesh_proxy_client_connections{proxy="us-ca"}`), metric(t, f, `exitmesh_proxy_client_connections{proxy="world"}`); a != "0" || b != "0" {
				return fmt.Errorf("us-ca %s, world %s open", a, b)
			}
			return nil
		})
	})
	t.Run("per account", func(t *testing.T) {
		f.createAccount(t, "alice", "alice-password", "us-ca", "world")
		if err := f.node.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
		echo := startEcho(t)
		openTunnel(t, usCA, echo, "alice", "alice-password")
		openTunnel(t, world, echo, "alice", "alice-password")
		c := tcptest.DialFrom(t, usCA, "127.0.0.1")
		cred := base64.StdEncoding.EncodeToString([]byte("alice:alice-password"))
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\n\r\n", echo, echo, cred)
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Header.Get("X-ProxyMesh-Error"); resp.StatusCode != http.StatusTooManyRequests || got != "too-many-connections" {
			t.Errorf("alice's third tunnel, her first two on two proxy servers: %d %q, want 429 too-many-connections", resp.StatusCode, got)
		}
		if got := metric(t, f, limitHits("us-ca", "connections_per_account")); got != "1" {
			t.Errorf("us-ca connections_per_account hits: %s, want 1", got)
		}
	})
}

// TestSlowClientsOfTheAPIAreCut opens two connections to the API that are too slow: one never
// starts its TLS handshake, one completes it and then sends a request head a byte at a time. Both
// are closed once timeouts.read_header has passed, and counted.
func TestSlowClientsOfTheAPIAreCut(t *testing.T) {
	f := startWith(t, strings.Replace(limitsConfig, "read_header: 1m", "read_header: 300ms", 1), slog.New(slog.DiscardHandler))
	api := f.node.APIAddr()
	silent := tcptest.DialFrom(t, api, "127.0.0.1")
	trickling := tlsFrom(t, api, "127.0.0.1")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // ends at stop or when the server closes the connection
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for _, b := range []byte("GET /api/v1/account HTTP/1.1\r\nHost: api\r\nUser-Agent: slowloris\r\n\r\n") {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := trickling.Write([]byte{b}); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	requireClosedUnanswered(t, silent, "a client that never starts its TLS handshake")
	if _, err := io.ReadAll(trickling); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the server did not close a client trickling its request head")
	}
	testwait.For(t, "api read_header hits", func() error {
		if got := metric(t, f, limitHits("api", "read_header")); got != "2" {
			return fmt.Errorf("%s, want 2", got)
		}
		return nil
	})
}
