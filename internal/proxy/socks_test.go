package proxy_test

import (
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	xproxy "golang.org/x/net/proxy"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/bans"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/egress"
	"github.com/exitmesh/exitmesh/internal/proxy"
)

// socksClient is an HTTP client that connects through the proxy with SOCKS5 (golang.org/x/net/proxy,
// an independent implementation), from the local address source ("" for 127.0.0.1), with user and
// password (none when user is "").
func (e *env) socksClient(t *testing.T, user, password, source string) *http.Client {
	t.Helper()
	var a *xproxy.Auth
	if user != "" {
		a = &xproxy.Auth{User: user, Password: password}
	}
	forward := &net.Dialer{Timeout: 5 * time.Second}
	if source != "" {
		forward.LocalAddr = &net.TCPAddr{IP: net.ParseIP(source)}
	}
	d, err := xproxy.SOCKS5("tcp", e.proxyAddr, a, forward)
	if err != nil {
		t.Fatal(err)
	}
	dial := d.(xproxy.ContextDialer)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dial.DialContext, DisableKeepAlives: true}}
}

// seenThrough GETs the origin's /ip through c and returns the address the origin saw.
func (e *env) seenThrough(t *testing.T, c *http.Client) string {
	t.Helper()
	resp, err := c.Get(e.origin.URL + "/ip")
	if err != nil {
		t.Fatalf("GET through SOCKS5: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET through SOCKS5: %d %s", resp.StatusCode, b)
	}
	return strings.TrimSpace(string(b))
}

func TestSOCKS5ConnectsThroughTheExits(t *testing.T) {
	e := newEnv(t)
	alice := e.socksClient(t, "alice", alicePW, "")
	seen := map[string]bool{}
	for range 40 {
		ip := e.seenThrough(t, alice)
		if _, ok := exitCountry[ip]; !ok {
			t.Fatalf("the origin saw %s, not an exit", ip)
		}
		seen[ip] = true
	}
	if len(seen) < 3 {
		t.Errorf("40 SOCKS5 requests left through %d exits, want them rotated", len(seen))
	}
	// Username steering pins the exit as over HTTP: a session stays on one exit, a country in it.
	session := e.socksClient(t, "alice-session-s1-country-de", alicePW, "")
	first := e.seenThrough(t, session)
	for range 10 {
		if ip := e.seenThrough(t, session); ip != first || exitCountry[ip] != "DE" {
			t.Fatalf("a SOCKS5 session moved from %s to %s (country %s)", first, ip, exitCountry[ip])
		}
	}
	httpSession := e.client("alice-session-s1-country-de", alicePW, nil, nil)
	if _, s := e.get(httpSession, e.origin.URL+"/", nil); s.IP != first {
		t.Errorf("the same session over HTTP left through %s, over SOCKS5 through %s", s.IP, first)
	}
	// An authorized IP needs no credentials.
	if ip := e.seenThrough(t, e.socksClient(t, "", "", "127.0.0.7")); exitCountry[ip] == "" {
		t.Errorf("credential-less from the authorized IP: origin saw %s", ip)
	}
}

// socksHandshake runs a raw SOCKS5 handshake from source: methods offered, then (with user) RFC 1929,
// then the request; it returns the method chosen and the reply code (-1 when the proxy closed first).
func (e *env) socksHandshake(t *testing.T, source, user, password string, request []byte) (method byte, reply int) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if source != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(source)}
	}
	c, err := d.Dial("tcp", e.proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	offer := []byte{5, 1, 0}
	if user != "" {
		offer = []byte{5, 1, 2}
	}
	c.Write(offer)
	b := make([]byte, 2)
	if _, err := io.ReadFull(c, b); err != nil {
		return 0xff, -1
	}
	if b[1] == 0xff {
		return b[1], -1
	}
	if user != "" {
		c.Write(append(append(append([]byte{1, byte(len(user))}, user...), byte(len(password))), password...))
		if _, err := io.ReadFull(c, b); err != nil || b[1] != 0 {
			return 2, -1
		}
	}
	c.Write(request)
	head := make([]byte, 4)
	if _, err := io.ReadFull(c, head); err != nil {
		return b[1], -1
	}
	return b[1], int(head[1])
}

// socksConnectTo is a SOCKS5 CONNECT request for hostport: an IPv4 or IPv6 address, or a name.
func socksConnectTo(hostport string) []byte {
	host, port, _ := net.SplitHostPort(hostport)
	p, _ := strconv.Atoi(port)
	req := []byte{5, 1, 0}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Is4() {
			req = append(append(req, 1), ip.AsSlice()...)
		} else {
			req = append(append(req, 4), ip.AsSlice()...)
		}
	} else {
		req = append(append(req, 3, byte(len(host))), host...)
	}
	return binary.BigEndian.AppendUint16(req, uint16(p))
}

func TestSOCKS5RefusesInternalDestinationsWithoutConnecting(t *testing.T) {
	e := newEnv(t)
	// A listener on a loopback address outside the allow list records every connection it gets.
	var reached atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.9:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			reached.Add(1)
			c.Close()
		}
	}()
	port := portOf("http://" + ln.Addr().String())
	for _, target := range []string{"10.0.0.1:80", "169.254.169.254:80", "127.0.0.9:" + port, "[::ffff:127.0.0.9]:" + port,
		"[::ffff:127.0.0.2]:" + port, "[::1]:" + port, "[fd00::1]:443", "intranet.test:443", "loopback.test:" + port,
		"0.0.0.0:" + port, "origin.test:25"} {
		before := len(e.dials.list())
		if _, reply := e.socksHandshake(t, "", "alice", alicePW, socksConnectTo(target)); reply != 0x02 {
			t.Errorf("%s: reply %#x, want 0x02 (not allowed by ruleset)", target, reply)
		}
		if d := e.dials.list()[before:]; len(d) != 0 {
			t.Errorf("%s: dialled %v, want no connection attempt", target, d)
		}
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("the loopback listener got %d connections, want none", n)
	}
}

func TestSOCKS5ReplyCodes(t *testing.T) {
	e := newEnv(t)
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()
	bind := socksConnectTo("origin.test:80")
	bind[1] = 2
	udp := socksConnectTo("origin.test:80")
	udp[1] = 3
	for _, tt := range []struct {
		name, user, password string
		request              []byte
		reply                int
	}{
		{"connected", "alice", alicePW, socksConnectTo("origin.test:" + portOf(e.origin.URL)), 0x00},
		{"refused", "alice", alicePW, socksConnectTo(closedAddr), 0x05},
		{"no such host", "alice", alicePW, socksConnectTo("nowhere.test:80"), 0x04},
		{"not a host name", "alice", alicePW, []byte{5, 1, 0, 3, 5, '[', ':', ':', '1', ']', 0, 80}, 0x04},
		{"BIND", "alice", alicePW, bind, 0x07},
		{"UDP ASSOCIATE", "alice", alicePW, udp, 0x07},
		{"unknown address type", "alice", alicePW, []byte{5, 1, 0, 9, 1, 2, 3, 4, 0, 80}, 0x08},
		{"disabled account", "bob", alicePW, socksConnectTo("origin.test:80"), 0x02},
		{"proxy server not authorized", "carol", alicePW, socksConnectTo("origin.test:80"), 0x02},
		{"wrong password", "alice", "wrong-password", socksConnectTo("origin.test:80"), -1},
	} {
		if _, reply := e.socksHandshake(t, "", tt.user, tt.password, tt.request); reply != tt.reply {
			t.Errorf("%s: reply %#x, want %#x", tt.name, reply, tt.reply)
		}
	}
	if method, _ := e.socksHandshake(t, "127.0.0.8", "", "", socksConnectTo("origin.test:80")); method != 0xff {
		t.Errorf("no credentials from an unauthorized address: method %#x, want 0xff (none acceptable)", method)
	}
}

func TestSOCKS5WrongCredentialsCountTowardTheBan(t *testing.T) {
	e := newEnv(t, withBans(bans.New(bans.Config{AuthFailures: 10, Window: time.Minute, Duration: 15 * time.Minute})))
	for range 11 {
		e.socksHandshake(t, "", "alice", "wrong-password", socksConnectTo("origin.test:80"))
	}
	if method, _ := e.socksHandshake(t, "", "alice", alicePW, socksConnectTo("origin.test:80")); method != 0xff {
		t.Errorf("after 11 wrong SOCKS5 passwords the right one got method %#x, want the connection closed", method)
	}
	resp, _ := e.get(e.client("alice", alicePW, nil, nil), e.origin.URL+"/ip", nil)
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-ProxyMesh-Error") != "banned" {
		t.Errorf("HTTP from the same IP after the SOCKS5 failures: %d %s, want 403 banned", resp.StatusCode, resp.Header.Get("X-ProxyMesh-Error"))
	}
}

func TestSOCKS5WithAnAPIToken(t *testing.T) {
	token, _, hash := auth.NewToken()
	e := newEnv(t, func(c *proxy.Config, _ *egress.Dialer) {
		snap := accounts()
		snap.Tokens = []domain.Token{{ID: 1, AccountID: 1, Login: "alice", Hash: hash, Active: true}}
		view := auth.NewView(nil)
		view.Load(snap)
		c.Accounts = view
	})
	if ip := e.seenThrough(t, e.socksClient(t, proxy.TokenUser, token, "")); exitCountry[ip] == "" {
		t.Errorf("SOCKS5 with the token: origin saw %s", ip)
	}
	if _, reply := e.socksHandshake(t, "", proxy.TokenUser, token[:len(token)-1]+"x", socksConnectTo("origin.test:80")); reply != -1 {
		t.Errorf("a corrupted token: reply %#x, want the authentication refused", reply)
	}
}

func TestSOCKS5MalformedGreetingsAreClosed(t *testing.T) {
	e := newEnv(t)
	for _, greeting := range [][]byte{{5}, {5, 0}, {5, 3, 0}, {5, 1, 2, 9}, {5, 1, 2, 1, 0, 0}, {5, 1, 2, 1, 3, 'a'}} {
		c, err := net.Dial("tcp", e.proxyAddr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(greeting)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil { // the proxy answers what it can and closes
			t.Errorf("greeting %v: %v, want the proxy to close the connection", greeting, err)
		}
		c.Close()
	}
	// The server is still serving.
	if ip := e.seenThrough(t, e.socksClient(t, "alice", alicePW, "")); exitCountry[ip] == "" {
		t.Errorf("after malformed greetings: origin saw %s", ip)
	}
}
