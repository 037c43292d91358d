package proxy_test

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Header fields cross the proxy in the order and letter case their sender used: a head rebuilt in
// canonical case and random order is a fingerprint anti-bot systems read. These tests put raw TCP
// on both sides of the proxy and compare bytes.

// rawOrigin is an origin on loopback that records each request head it reads, byte for byte, and
// answers with what answer returns, on kept-alive connections.
type rawOrigin struct {
	addr  string
	heads chan string
}

func newRawOrigin(t *testing.T, answer func(head string) string) *rawOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	o := &rawOrigin{addr: ln.Addr().String(), heads: make(chan string, 16)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go o.serve(c, answer)
		}
	}()
	return o
}

func (o *rawOrigin) serve(c net.Conn, answer func(string) string) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	for {
		head, err := readHead(br)
		if err != nil {
			return
		}
		if n := headLength(head); n > 0 {
			io.CopyN(io.Discard, br, n)
		}
		o.heads <- head
		io.WriteString(c, answer(head))
	}
}

// next returns the next request head the origin read.
func (o *rawOrigin) next(t *testing.T) string {
	t.Helper()
	select {
	case h := <-o.heads:
		return h
	case <-time.After(10 * time.Second):
		t.Fatal("the origin got no request")
		return ""
	}
}

// readHead reads a head up to its empty line, included.
func readHead(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return b.String(), err
		}
		b.WriteString(line)
		if line == "\r\n" {
			return b.String(), nil
		}
	}
}

// headLength returns the Content-Length a head states, in any letter case, or 0.
func headLength(head string) int64 {
	for line := range strings.SplitSeq(head, "\r\n") {
		if name, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(name, "content-length") {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

func answerOK(string) string { return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" }

func TestRequestFieldsKeepTheirOrderAndCase(t *testing.T) {
	e := newEnv(t)
	o := newRawOrigin(t, answerOK)
	_, proxyPort, _ := net.SplitHostPort(e.proxyAddr)
	rc := e.dialRaw(t)
	for _, tt := range []struct {
		name, request, want string
	}{{
		name: "steering, proxy and hop-by-hop fields removed, the rest untouched",
		request: "GET http://" + o.addr + "/path?q=1 HTTP/1.1\r\n" +
			"user-agent: test/1.0\r\n" +
			"X-ProxyMesh-IP: 127.0.0.2\r\n" +
			"ACCEPT: */*\r\n" +
			"Cookie: a=1\r\n" +
			aliceAuth() +
			"X-Custom-B:  b  value \r\n" +
			"host: " + o.addr + "\r\n" +
			"Connection: keep-alive, X-Hop\r\n" +
			"X-Hop: secret\r\n" +
			"x-custom-a:tight\r\n" +
			"Keep-Alive: timeout=5\r\n" +
			"Proxy-Connection: keep-alive\r\n" +
			"x-proxymesh-prefer-ip: 127.0.0.3\r\n" +
			"X-Forwarded-For: 10.0.0.1\r\n" +
			"Forwarded: for=10.0.0.1\r\n" +
			"Cookie: b=2\r\n" +
			"\r\n",
		want: "GET /path?q=1 HTTP/1.1\r\n" +
			"user-agent: test/1.0\r\n" +
			"ACCEPT: */*\r\n" +
			"Cookie: a=1\r\n" +
			"X-Custom-B:  b  value \r\n" +
			"host: " + o.addr + "\r\n" +
			"x-custom-a:tight\r\n" +
			"Cookie: b=2\r\n" +
			"\r\n",
	}, {
		name: "a body's framing, TE and Host written where the client put them",
		request: "POST http://" + o.addr + "/up HTTP/1.1\r\n" +
			"Content-Type: text/plain\r\n" +
			"content-length: 5\r\n" +
			"HOST: " + o.addr + "\r\n" +
			aliceAuth() +
			"te: trailers, deflate\r\n" +
			"Connection: te\r\n" +
			"x-last: 1\r\n" +
			"\r\nhello",
		want: "POST /up HTTP/1.1\r\n" +
			"Content-Type: text/plain\r\n" +
			"content-length: 5\r\n" +
			"HOST: " + o.addr + "\r\n" +
			"te: trailers\r\n" +
			"x-last: 1\r\n" +
			"\r\n",
	}, {
		name: "a Host naming the proxy gets the target's authority in its place",
		request: "GET http://" + o.addr + "/ HTTP/1.1\r\n" +
			"accept: text/html\r\n" +
			"host: 127.0.0.1:" + proxyPort + "\r\n" +
			aliceAuth() +
			"user-agent: node\r\n" +
			"\r\n",
		want: "GET / HTTP/1.1\r\n" +
			"accept: text/html\r\n" +
			"host: " + o.addr + "\r\n" +
			"user-agent: node\r\n" +
			"\r\n",
	}} {
		rc.send(tt.request)
		resp, body := rc.read("GET")
		if resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("%s: answered %d %q (%s)", tt.name, resp.StatusCode, body, resp.Header.Get("X-ProxyMesh-Error"))
		}
		if got := o.next(t); got != tt.want {
			t.Errorf("%s: the origin read\n%q\nwant\n%q", tt.name, got, tt.want)
		}
	}
}

func TestAnswerFieldsKeepTheirOrderAndCase(t *testing.T) {
	e := newEnv(t)
	answers := map[string]string{
		"/sized": "HTTP/1.1 200 OK\r\n" +
			"date: Thu, 01 Jan 2026 00:00:00 GMT\r\n" +
			"Set-Cookie: a=1; Path=/\r\n" +
			"content-type: text/plain\r\n" +
			"X-ProxyMesh-IP: 192.0.2.1\r\n" +
			"Set-Cookie: b=2\r\n" +
			"Keep-Alive: timeout=5\r\n" +
			"Connection: keep-alive, X-Hop\r\n" +
			"X-Hop: secret\r\n" +
			"content-length: 5\r\n" +
			"x-z:  last \r\n" +
			"\r\nhello",
		"/chunked": "HTTP/1.1 201 Created\r\n" +
			"SERVER: raw\r\n" +
			"transfer-encoding: chunked\r\n" +
			"set-cookie: c=3\r\n" +
			"\r\n5\r\nhello\r\n0\r\n\r\n",
		"/hints": "HTTP/1.1 103 Early Hints\r\n" +
			"link: </a.css>; rel=preload\r\n" +
			"X-ProxyMesh-IP: 192.0.2.1\r\n" +
			"Link: </b.js>; rel=preload\r\n" +
			"\r\n" +
			"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nlink: </a.css>; rel=preload\r\n\r\nhello",
		// Heads the proxy does not relay line by line, written from net/http's map as before.
		"/folded": "HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 5\r\n\r\nhello",
		"/large":  "HTTP/1.1 200 OK\r\nX-Large: " + strings.Repeat("a", 5000) + "\r\nContent-Length: 5\r\n\r\nhello",
	}
	o := newRawOrigin(t, func(head string) string {
		return answers[strings.Fields(head)[1]] // the target, in origin-form
	})
	rc := e.dialRaw(t)
	for _, tt := range []struct {
		path, want, body string
	}{{
		path: "/sized",
		want: "HTTP/1.1 200 OK\r\n" +
			"date: Thu, 01 Jan 2026 00:00:00 GMT\r\n" +
			"Set-Cookie: a=1; Path=/\r\n" +
			"content-type: text/plain\r\n" +
			"Set-Cookie: b=2\r\n" +
			"content-length: 5\r\n" +
			"x-z:  last \r\n" +
			"X-ProxyMesh-IP: 127.0.0.2\r\n" +
			"\r\n",
		body: "hello",
	}, {
		path: "/chunked",
		want: "HTTP/1.1 201 Created\r\n" +
			"SERVER: raw\r\n" +
			"transfer-encoding: chunked\r\n" +
			"set-cookie: c=3\r\n" +
			"X-ProxyMesh-IP: 127.0.0.2\r\n" +
			"\r\n",
		body: "5\r\nhello\r\n0\r\n\r\n",
	}, {
		path: "/hints",
		want: "HTTP/1.1 103 Early Hints\r\n" +
			"link: </a.css>; rel=preload\r\n" +
			"Link: </b.js>; rel=preload\r\n" +
			"\r\n",
		body: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nlink: </a.css>; rel=preload\r\nX-ProxyMesh-IP: 127.0.0.2\r\n\r\nhello",
	}, {
		path: "/folded",
		want: "HTTP/1.1 200 OK\r\nX-Folded: a b\r\nX-ProxyMesh-IP: 127.0.0.2\r\nContent-Length: 5\r\n\r\n",
		body: "hello",
	}, {
		path: "/large",
		want: "HTTP/1.1 200 OK\r\nX-Large: " + strings.Repeat("a", 5000) + "\r\nX-ProxyMesh-IP: 127.0.0.2\r\nContent-Length: 5\r\n\r\n",
		body: "hello",
	}} {
		rc.send("GET http://" + o.addr + tt.path + " HTTP/1.1\r\nHost: " + o.addr + "\r\n" + aliceAuth() +
			"X-ProxyMesh-IP: 127.0.0.2\r\n\r\n")
		head, err := readHead(rc.br)
		if err != nil {
			t.Fatalf("%s: %q %v", tt.path, head, err)
		}
		if head != tt.want {
			t.Errorf("%s: the client read\n%q\nwant\n%q", tt.path, head, tt.want)
		}
		body := make([]byte, len(tt.body))
		if _, err := io.ReadFull(rc.br, body); err != nil || string(body) != tt.body {
			t.Errorf("%s: body %q %v, want %q", tt.path, body, err, tt.body)
		}
	}
}

func TestUpgradeFieldsKeepTheirOrderAndCase(t *testing.T) {
	e := newEnv(t)
	o := newRawOrigin(t, func(string) string {
		return "HTTP/1.1 101 Switching Protocols\r\n" +
			"upgrade: websocket\r\n" +
			"Keep-Alive: timeout=5\r\n" +
			"connection: upgrade\r\n" +
			"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" +
			"\r\n"
	})
	rc := e.dialRaw(t)
	rc.send("GET http://" + o.addr + "/ws HTTP/1.1\r\n" +
		"host: " + o.addr + "\r\n" +
		"connection: Upgrade, HTTP2-Settings\r\n" +
		"pragma: no-cache\r\n" +
		aliceAuth() +
		"upgrade: websocket\r\n" +
		"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n" +
		"Sec-WebSocket-Version: 13\r\n" +
		"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"X-ProxyMesh-IP: 127.0.0.2\r\n" +
		"\r\n")
	want := "GET /ws HTTP/1.1\r\n" +
		"host: " + o.addr + "\r\n" +
		"connection: Upgrade\r\n" +
		"pragma: no-cache\r\n" +
		"upgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\n" +
		"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"\r\n"
	if got := o.next(t); got != want {
		t.Errorf("the origin read\n%q\nwant\n%q", got, want)
	}
	want = "HTTP/1.1 101 Switching Protocols\r\n" +
		"upgrade: websocket\r\n" +
		"connection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" +
		"X-ProxyMesh-IP: 127.0.0.2\r\n" +
		"\r\n"
	if got, err := readHead(rc.br); got != want {
		t.Errorf("the client read\n%q %v\nwant\n%q", got, err, want)
	}
}
