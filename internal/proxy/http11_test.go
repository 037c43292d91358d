package proxy_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/egress"
	"github.com/exitmesh/exitmesh/internal/proxy"
)

// The proxy speaks HTTP/1.1 itself; these tests hold it to the parts of the protocol a forward
// proxy must get right beyond plain GETs.

// rawConn is one client connection to the proxy, for requests written by hand.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func (e *env) dialRaw(t *testing.T) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", e.proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (rc *rawConn) send(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatal(err)
	}
}

// read reads one response to a request of method and its whole body.
func (rc *rawConn) read(method string) (*http.Response, string) {
	rc.t.Helper()
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	if err != nil {
		rc.t.Fatalf("reading the answer to %s: %v", method, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		rc.t.Fatalf("reading the body of the answer to %s: %v", method, err)
	}
	return resp, string(body)
}

// originHost is the plain origin's host:port, as a client writes it in Host.
func (e *env) originHost() string { return strings.TrimPrefix(e.origin.URL, "http://") }

func aliceAuth() string { return "Proxy-Authorization: " + basic("alice", alicePW) + "\r\n" }

func TestHeadAndBodylessAnswersKeepTheConnection(t *testing.T) {
	e := newEnv(t)
	e.mux.HandleFunc("/status/204", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	e.mux.HandleFunc("/sized", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "11")
		io.WriteString(w, "hello world")
	})
	rc := e.dialRaw(t)
	for _, tt := range []struct {
		method, path string
		status       int
		length       int64
		body         string
	}{
		{"HEAD", "/sized", 200, 11, ""},
		{"GET", "/status/204", 204, 0, ""},
		{"GET", "/sized", 200, 11, "hello world"},
	} {
		rc.send(tt.method + " " + e.origin.URL + tt.path + " HTTP/1.1\r\nHost: " + e.originHost() + "\r\n" + aliceAuth() + "\r\n")
		resp, body := rc.read(tt.method)
		if resp.StatusCode != tt.status || resp.ContentLength != tt.length || body != tt.body {
			t.Errorf("%s %s: %d, length %d, body %q; want %d, %d, %q", tt.method, tt.path, resp.StatusCode,
				resp.ContentLength, body, tt.status, tt.length, tt.body)
		}
	}
	if n := e.proxyConns.Load(); n != 1 {
		t.Errorf("%d client connections, want the one kept alive", n)
	}
}

func TestTrailersAndInformationalAnswers(t *testing.T) {
	e := newEnv(t)
	e.mux.HandleFunc("/trailer", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		w.Header().Add("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "body")
		w.Header().Set("X-Checksum", "abc")
	})
	rc := e.dialRaw(t)
	rc.send("GET " + e.origin.URL + "/trailer HTTP/1.1\r\nHost: " + e.originHost() + "\r\n" + aliceAuth() + "\r\n")
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil || resp.StatusCode != http.StatusEarlyHints || resp.Header.Get("Link") == "" {
		t.Fatalf("first answer %v %v, want 103 Early Hints with its Link", resp, err)
	}
	resp, body := rc.read("GET")
	if resp.StatusCode != 200 || body != "body" || resp.Trailer.Get("X-Checksum") != "abc" {
		t.Errorf("final answer %d %q, trailer %v; want 200 \"body\" with X-Checksum abc", resp.StatusCode, body, resp.Trailer)
	}
}

func TestExpectContinueAndChunkedUpload(t *testing.T) {
	e := newEnv(t)
	rc := e.dialRaw(t)
	rc.send("POST " + e.origin.URL + "/sha256 HTTP/1.1\r\nHost: " + e.originHost() + "\r\n" + aliceAuth() +
		"Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n")
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil || resp.StatusCode != http.StatusContinue {
		t.Fatalf("before the body: %v %v, want 100 Continue", resp, err)
	}
	rc.send("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
	resp, body := rc.read("POST")
	// sha256("hello world")
	if resp.StatusCode != 200 || body != "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9 11\n" {
		t.Errorf("origin answered %d %q", resp.StatusCode, body)
	}
}

func TestUpgradeRelaysBothWays(t *testing.T) {
	e := newEnv(t)
	e.mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want Upgrade: echo", http.StatusBadRequest)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString(strings.ToUpper(line))
		brw.Flush()
	})
	rc := e.dialRaw(t)
	rc.send("GET " + e.origin.URL + "/echo HTTP/1.1\r\nHost: " + e.originHost() + "\r\n" + aliceAuth() + "Connection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("X-ProxyMesh-IP") == "" {
		t.Fatalf("upgrade answered %v %v, want 101 with X-ProxyMesh-IP", resp, err)
	}
	rc.send("ping\n")
	if line, err := rc.br.ReadString('\n'); line != "PING\n" {
		t.Errorf("through the upgraded connection: %q %v, want PING", line, err)
	}
}

func TestHTTP10ClientGetsAClosedConnection(t *testing.T) {
	e := newEnv(t)
	rc := e.dialRaw(t)
	rc.send("GET " + e.origin.URL + "/bytes/100 HTTP/1.0\r\n" + aliceAuth() + "\r\n")
	raw, err := io.ReadAll(rc.br) // to the end of the connection
	if err != nil || !strings.HasPrefix(string(raw), "HTTP/1.1 200") || strings.Contains(string(raw), "chunked") {
		t.Fatalf("answer %q %v, want 200 without chunking", raw, err)
	}
	if _, body, _ := strings.Cut(string(raw), "\r\n\r\n"); len(body) != 100 {
		t.Errorf("body of %d bytes, want 100", len(body))
	}
}

func TestMalformedAndOversizedHeads(t *testing.T) {
	e := newEnv(t, func(c *proxy.Config, _ *egress.Dialer) { c.MaxHeaderBytes = 1 << 10 })
	for _, tt := range []struct {
		name, request string
		status        int
	}{
		{"garbage", "NOT HTTP AT ALL\r\n\r\n", 400},
		{"header too large", "GET " + e.origin.URL + "/ HTTP/1.1\r\nHost: " + e.originHost() + "\r\nX-Big: " + strings.Repeat("a", 8<<10) + "\r\n\r\n", 431},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rc := e.dialRaw(t)
			rc.send(tt.request)
			resp, _ := rc.read("GET")
			if resp.StatusCode != tt.status || !resp.Close {
				t.Errorf("%d (close %v), want %d and the connection closed", resp.StatusCode, resp.Close, tt.status)
			}
		})
	}
}

func TestOriginClosingAnIdleConnectionIsNotAnError(t *testing.T) {
	e := newEnv(t)
	c := e.client("alice", alicePW, nil, nil)
	pin := http.Header{"X-Proxymesh-Ip": {"127.0.0.2"}}
	if resp, _ := e.get(c, e.origin.URL+"/", pin); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// The origin drops every idle connection, as origins do after their keep-alive timeout.
	e.origin.CloseClientConnections()
	for i := range 3 {
		if resp, _ := e.get(c, e.origin.URL+"/", pin); resp.StatusCode != 200 {
			t.Fatalf("request %d after the origin closed its idle connections: %d %s", i, resp.StatusCode,
				resp.Header.Get("X-ProxyMesh-Error"))
		}
	}
}
