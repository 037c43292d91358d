package node_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/upstreamtest"
)

// upstreamConfig is a node whose proxy server us-ca mixes a local exit and two upstream exits, and
// whose proxy server "broken" has one upstream exit with the wrong password.
const upstreamConfig = `
store: sqlite:%s
api: {listen: "127.0.0.1:0"}
metrics: {listen: "127.0.0.1:0"}
sync: {interval: 100ms}
proxies:
  - name: us-ca
    listen: "127.0.0.1:0"
    country: US
    exits:
      - {ip: 127.0.0.2}
      - {url: "%s", ip: 203.0.113.6}
      - {url: "%s", ip: 203.0.113.7, country: DE}
  - name: broken
    listen: "127.0.0.1:0"
    exits:
      - {url: "%s", ip: 203.0.113.8}
egress: {allow: [127.0.0.1/32]}
plans:
  - {name: starter, proxies: 3, subs: 5, ips: 10, hostnames: 5, bandwidth: 10GB}
`

// exitSeenAs maps each us-ca exit's configured IP (X-ProxyMesh-IP) to the address the origin sees.
var exitSeenAs = map[string]string{
	"127.0.0.2":   "127.0.0.2", // local: bound by the node
	"203.0.113.6": "127.0.0.6", // the HTTP upstream's outgoing address
	"203.0.113.7": "127.0.0.7", // the SOCKS5 upstream's outgoing address
}

type upstreamFixture struct {
	*fixture
	auth string // alice's Proxy-Authorization value
}

func startWithUpstreams(t *testing.T) *upstreamFixture {
	t.Helper()
	socks := upstreamtest.StartSOCKS5(t, "127.0.0.7")
	httpUp := upstreamtest.StartHTTPProxy(t, "127.0.0.6", "up-user", "up-pass")
	f := startWith(t, fmt.Sprintf(upstreamConfig, "%s", httpUp.URL(), socks.URL(), httpUp.URLWith("up-user", "wrong-pass")),
		slog.New(slog.DiscardHandler))
	hash, err := auth.HashPassword("alice-password")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.admin.CreateAccount(context.Background(), domain.NewAccount{Username: "alice", PasswordHash: hash,
		Plan: "starter", Confirmed: true, Proxies: []string{"us-ca", "broken"}}); err != nil {
		t.Fatal(err)
	}
	alice := f.client("alice", "alice-password", "")
	eventually(t, "account visible", func() error { return is(200, "")(status(t, alice, f.origin.URL+"/ip")) })
	return &upstreamFixture{fixture: f, auth: "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:alice-password"))}
}

// Plain HTTP requests through the node rotate over the local and the upstream exits: the origin sees
// 127.0.0.2 and each upstream's outgoing address, and X-ProxyMesh-IP is the configured ip of the exit
// that served the request.
func TestProxyRotatesOverLocalAndUpstreamExits(t *testing.T) {
	f := startWithUpstreams(t)
	alice := f.client("alice", "alice-password", "")
	seen := map[string]int{}
	// Exits are chosen uniformly at random among 3: missing one in 300 requests has a probability
	// of about 3·(2/3)^300, which never happens.
	for i := 0; i < 300 && len(seen) < len(exitSeenAs); i++ {
		resp, err := alice.Get(f.origin.URL + "/ip")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		exitIP, origin := resp.Header.Get("X-ProxyMesh-IP"), strings.TrimSpace(string(body))
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s through %s", i, resp.StatusCode, resp.Header.Get("X-ProxyMesh-Error"), exitIP)
		}
		if want, ok := exitSeenAs[exitIP]; !ok || origin != want {
			t.Fatalf("X-ProxyMesh-IP %s, origin saw %s; want an exit of %v", exitIP, origin, exitSeenAs)
		}
		seen[exitIP]++
	}
	if len(seen) != len(exitSeenAs) {
		t.Errorf("exits used: %v, want all of %v", seen, exitSeenAs)
	}
}

// A CONNECT pinned to each exit reaches the origin from that exit's address, and the 200 names the
// configured IP.
func TestConnectThroughEachUpstreamExit(t *testing.T) {
	f := startWithUpstreams(t)
	dest := f.origin.Listener.Addr().String()
	for exitIP, want := range exitSeenAs {
		t.Run(exitIP, func(t *testing.T) {
			conn, br := f.connect(t, "us-ca", dest, exitIP)
			defer conn.Close()
			fmt.Fprintf(conn, "GET /ip HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", dest)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("answer through the tunnel: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got := strings.TrimSpace(string(body)); got != want {
				t.Errorf("origin saw %s, want %s", got, want)
			}
		})
	}
}

// An upstream that refuses the node (wrong password) fails the request with 502 upstream-failed,
// naming the exit, for plain HTTP and CONNECT alike.
func TestRefusingUpstreamIsBadGateway(t *testing.T) {
	f := startWithUpstreams(t)
	resp, err := f.proxyClient("broken").Get(f.origin.URL + "/ip")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 502 || resp.Header.Get("X-ProxyMesh-Error") != "upstream-failed" || resp.Header.Get("X-ProxyMesh-IP") != "203.0.113.8" {
		t.Errorf("plain HTTP: %d %q via %q, want 502 upstream-failed via 203.0.113.8", resp.StatusCode,
			resp.Header.Get("X-ProxyMesh-Error"), resp.Header.Get("X-ProxyMesh-IP"))
	}
	conn, _, resp := f.sendConnect(t, "broken", f.origin.Listener.Addr().String(), "")
	defer conn.Close()
	if resp.StatusCode != 502 || resp.Header.Get("X-ProxyMesh-Error") != "upstream-failed" {
		t.Errorf("CONNECT: %d %q, want 502 upstream-failed", resp.StatusCode, resp.Header.Get("X-ProxyMesh-Error"))
	}
}

// proxyClient returns alice's HTTP client of the proxy server name.
func (f *upstreamFixture) proxyClient(name string) *http.Client {
	c := f.client("alice", "alice-password", "")
	c.Transport.(*http.Transport).Proxy = func(*http.Request) (*url.URL, error) {
		return &url.URL{Scheme: "http", Host: f.node.ProxyAddr(name), User: url.UserPassword("alice", "alice-password")}, nil
	}
	return c
}

// connect opens a CONNECT tunnel to dest through proxy server name, pinned to exitIP, and checks
// that the 200 names exitIP. Read the tunnel through the returned reader: it may hold early bytes.
func (f *upstreamFixture) connect(t *testing.T, name, dest, exitIP string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, br, resp := f.sendConnect(t, name, dest, exitIP)
	if resp.StatusCode != 200 || resp.Header.Get("X-ProxyMesh-IP") != exitIP {
		conn.Close()
		t.Fatalf("CONNECT via %s: %d %s, X-ProxyMesh-IP %q", exitIP, resp.StatusCode,
			resp.Header.Get("X-ProxyMesh-Error"), resp.Header.Get("X-ProxyMesh-IP"))
	}
	return conn, br
}

// sendConnect sends CONNECT dest to proxy server name (pinned to exitIP unless it is "") and reads
// the answer's head.
func (f *upstreamFixture) sendConnect(t *testing.T, name, dest, exitIP string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", f.node.ProxyAddr(name), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second)) // a bound for a broken build, not a threshold
	head := "CONNECT " + dest + " HTTP/1.1\r\nHost: " + dest + "\r\nProxy-Authorization: " + f.auth + "\r\n"
	if exitIP != "" {
		head += "X-ProxyMesh-IP: " + exitIP + "\r\n"
	}
	if _, err := io.WriteString(conn, head+"\r\n"); err != nil {
		conn.Close()
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		conn.Close()
		t.Fatalf("CONNECT answer: %v", err)
	}
	return conn, br, resp
}
