package proxy_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/tcptest"
)

// TestSmugglingHeadsAreRefused sends the request-smuggling vectors that other parsers read
// differently, each from an authenticated client on a new connection: each is refused with its
// status and X-ProxyMesh-Error, the connection is closed, and nothing is dialled.
func TestSmugglingHeadsAreRefused(t *testing.T) {
	e := newEnv(t)
	h, u := e.originHost(), e.origin.URL
	start := func(line string) string { return line + "\r\nHost: " + h + "\r\n" + aliceAuth() }
	post := start("POST " + u + "/ HTTP/1.1")
	for _, tt := range []struct {
		name, request string
		status        int
	}{
		{"Content-Length and Transfer-Encoding", post + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"Transfer-Encoding and Content-Length", post + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400},
		{"two Content-Lengths", post + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400},
		{"repeated Content-Length", post + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400},
		{"Content-Length list", post + "Content-Length: 5, 5\r\n\r\nhello", 400},
		{"signed Content-Length", post + "Content-Length: +5\r\n\r\nhello", 400},
		{"two Transfer-Encodings", post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"Transfer-Encoding gzip", post + "Transfer-Encoding: gzip\r\n\r\n", 501},
		{"Transfer-Encoding in HTTP/1.0", "POST " + u + "/ HTTP/1.0\r\n" + aliceAuth() + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"obs-fold", start("GET "+u+"/ip HTTP/1.1") + "X-A: b\r\n c\r\n\r\n", 400},
		{"bare LF", "GET " + u + "/ip HTTP/1.1\nHost: " + h + "\n" + aliceAuth() + "\n", 400},
		{"bare CR", start("GET "+u+"/ip HTTP/1.1") + "X-A: b\rc\r\n\r\n", 400},
		{"space before colon", post + "Content-Length : 5\r\n\r\nhello", 400},
		{"invalid field name", start("GET "+u+"/ip HTTP/1.1") + "X(y): 1\r\n\r\n", 400},
		{"absolute URI unlike Host", "GET " + u + "/ip HTTP/1.1\r\nHost: internal.example\r\n" + aliceAuth() + "\r\n", 400},
		{"Host naming another port", "GET " + u + "/ip HTTP/1.1\r\nHost: 127.0.0.1:1\r\n" + aliceAuth() + "\r\n", 400},
		{"two Hosts", start("GET "+u+"/ip HTTP/1.1") + "Host: " + h + "\r\n\r\n", 400},
		{"no Host", "GET " + u + "/ip HTTP/1.1\r\n" + aliceAuth() + "\r\n", 400},
		{"user information", start("GET http://user:pw@"+h+"/ip HTTP/1.1") + "\r\n", 400},
		{"CONNECT to a path", "CONNECT / HTTP/1.1\r\nHost: " + h + "\r\n" + aliceAuth() + "\r\n", 400},
		{"CONNECT without port", "CONNECT 127.0.0.1 HTTP/1.1\r\nHost: 127.0.0.1\r\n" + aliceAuth() + "\r\n", 400},
		{"CONNECT to a URI", "CONNECT " + u + "/ HTTP/1.1\r\nHost: " + h + "\r\n" + aliceAuth() + "\r\n", 400},
		{"CONNECT unlike Host", "CONNECT " + h + " HTTP/1.1\r\nHost: internal.example:443\r\n" + aliceAuth() + "\r\n", 400},
		{"CONNECT with a body", "CONNECT " + h + " HTTP/1.1\r\nHost: " + h + "\r\n" + aliceAuth() + "Content-Length: 3\r\n\r\nabc", 400},
		{"HTTP/2.0 request line", "GET " + u + "/ip HTTP/2.0\r\nHost: " + h + "\r\n\r\n", 505},
		{"101 header fields", start("GET "+u+"/ip HTTP/1.1") + strings.Repeat("X-A: b\r\n", 99) + "\r\n", 431},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conns, dials := e.originConns.Load(), len(e.dials.list())
			rc := e.dialRaw(t)
			rc.send(tt.request)
			resp, body := rc.read("GET")
			if resp.StatusCode != tt.status || resp.Header.Get("X-ProxyMesh-Error") != "bad-request" || !resp.Close {
				t.Errorf("%d %q, X-ProxyMesh-Error %q, close %v; want %d, bad-request, close",
					resp.StatusCode, body, resp.Header.Get("X-ProxyMesh-Error"), resp.Close, tt.status)
			}
			if rest, err := io.ReadAll(rc.br); err != nil || len(rest) > 0 {
				t.Errorf("after the refusal: %q, %v; want the connection closed", rest, err)
			}
			if n, d := e.originConns.Load(), len(e.dials.list()); n != conns || d != dials {
				t.Errorf("origin connections %d → %d, dials %d → %d: something was sent on", conns, n, dials, d)
			}
		})
	}
}

// TestSmuggledRequestNeverReachesTheOrigin pipelines a good request, then one whose body would
// hide a second request from a parser that trusts Content-Length over Transfer-Encoding.
func TestSmuggledRequestNeverReachesTheOrigin(t *testing.T) {
	e := newEnv(t)
	var hits atomic.Int64
	e.mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, strings.Repeat("n", int(hits.Add(1)))) })
	h, u := e.originHost(), e.origin.URL
	smuggled := "GET " + u + "/count HTTP/1.1\r\nHost: " + h + "\r\n\r\n"
	rc := e.dialRaw(t)
	rc.send("GET " + u + "/count HTTP/1.1\r\nHost: " + h + "\r\n" + aliceAuth() + "\r\n" +
		"POST " + u + "/count HTTP/1.1\r\nHost: " + h + "\r\n" + aliceAuth() +
		"Content-Length: " + strconv.Itoa(5+len(smuggled)) + "\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled)
	if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "n" {
		t.Fatalf("first request: %d %q, want 200 from the origin", resp.StatusCode, body)
	}
	if resp, _ := rc.read("POST"); resp.StatusCode != 400 || !resp.Close {
		t.Fatalf("smuggling request: %d close=%v, want 400 and close", resp.StatusCode, resp.Close)
	}
	if rest, _ := io.ReadAll(rc.br); len(rest) > 0 {
		t.Errorf("after the refusal: %q", rest)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("the origin served %d requests, want 1", n)
	}
}

// TestHostNamingTheProxyIsServed: Node's http module, given the proxy as host and the URL as path,
// sends the proxy's address as Host with the absolute URI; that Host names no other destination.
func TestHostNamingTheProxyIsServed(t *testing.T) {
	e := newEnv(t)
	rc := e.dialRaw(t)
	rc.send("GET " + e.origin.URL + "/ip HTTP/1.1\r\nHost: " + e.proxyAddr + "\r\n" + aliceAuth() + "\r\n")
	if resp, body := rc.read("GET"); resp.StatusCode != 200 || !strings.Contains(body, "127.0.0.") {
		t.Fatalf("%d %q, want 200 from the origin", resp.StatusCode, body)
	}
}

// TestLargeAndSlowHeadsAreServed: a head larger than the connection's first buffer and a head sent
// a few bytes at a time are read whole, and the connection goes on to its next request.
func TestLargeAndSlowHeadsAreServed(t *testing.T) {
	e := newEnv(t)
	e.mux.HandleFunc("/cookie", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strconv.Itoa(len(r.Header.Get("Cookie"))))
	})
	h, u := e.originHost(), e.origin.URL
	rc := e.dialRaw(t)
	cookie := strings.Repeat("c", 20<<10)
	rc.send("GET " + u + "/cookie HTTP/1.1\r\nHost: " + h + "\r\n" + aliceAuth() + "Cookie: " + cookie + "\r\n\r\n")
	if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != strconv.Itoa(len(cookie)) {
		t.Fatalf("20 KiB head: %d %q, want 200 and the origin seeing the whole cookie", resp.StatusCode, body)
	}
	slow := "GET " + u + "/cookie HTTP/1.1\r\nHost: " + h + "\r\n" + aliceAuth() + "Cookie: abc\r\n\r\n"
	for i := 0; i < len(slow); i += 7 {
		rc.send(slow[i:min(i+7, len(slow))])
		time.Sleep(time.Millisecond)
	}
	if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "3" {
		t.Fatalf("head in pieces after a large one: %d %q, want 200 \"3\"", resp.StatusCode, body)
	}
}

// TestLargeConnectHeadKeepsEarlyBytes: a CONNECT head larger than the connection's first buffer,
// with the tunnel's first bytes sent right behind it in the same write, reaches the target with
// every one of those bytes.
func TestLargeConnectHeadKeepsEarlyBytes(t *testing.T) {
	e := newEnv(t)
	target := tcptest.Serve(t, tcptest.Echo)
	early := strings.Repeat("e", 6000) + "\n"
	rc := e.dialRaw(t)
	rc.send("CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n" + aliceAuth() +
		"X-Padding: " + strings.Repeat("p", 9000) + "\r\n\r\n" + early)
	if resp, err := http.ReadResponse(rc.br, &http.Request{Method: http.MethodConnect}); err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT with a 9 KiB head: %v %v", resp, err)
	}
	echoed, err := rc.br.ReadString('\n')
	if err != nil || echoed != early {
		t.Fatalf("echoed %d bytes (%v), want the %d early bytes", len(echoed), err, len(early))
	}
}
