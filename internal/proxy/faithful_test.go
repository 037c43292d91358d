package proxy_test

import (
	"bufio"
	"io"
	"net"
	"net/http/httputil"
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
		n, chunked := headFraming(head)
		io.CopyN(io.Discard, br, n)
		if chunked {
			io.Copy(io.Discard, httputil.NewChunkedReader(br))
			br.ReadString('\n') // the empty line that ends the trailer section
		}
		o.heads <- head
		io.WriteString(c, answer(head))
	}
}

// next returns the request head the origin read for the answer the client has just read: the
// origin records a head before it answers.
func (o *rawOrigin) next(t *testing.T) string {
	t.Helper()
	if len(o.heads) == 0 {
		t.Fatal("the origin got no request")
	}
	return <-o.heads
}

// crlf returns a head written one field a line in s, with CRLF line ends and {name} replaced by
// vars (name, value pairs); {sp} is a space at the end of a line.
func crlf(s string, vars ...string) string {
	vars = append(vars, "{sp}", " ", "\n", "\r\n")
	return strings.NewReplacer(vars...).Replace(s)
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

// headFraming returns the Content-Length a head states, in any letter case, or 0, and whether
// its body is chunked.
func headFraming(head string) (n int64, chunked bool) {
	for line := range strings.SplitSeq(head, "\r\n") {
		name, v, _ := strings.Cut(line, ":")
		switch {
		case strings.EqualFold(name, "content-length"):
			n, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		case strings.EqualFold(name, "transfer-encoding"):
			chunked = true
		}
	}
	return n, chunked
}

func answerOK(string) string { return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" }

func TestRequestFieldsKeepTheirOrderAndCase(t *testing.T) {
	e := newEnv(t)
	o := newRawOrigin(t, answerOK)
	_, proxyPort, _ := net.SplitHostPort(e.proxyAddr)
	vars := []string{"{origin}", o.addr, "{proxy-port}", proxyPort, "{auth}", strings.TrimSuffix(aliceAuth(), "\r\n")}
	rc := e.dialRaw(t)
	for _, tt := range []struct {
		name, request, want string
	}{{
		name: "steering, proxy and hop-by-hop fields removed, the rest untouched",
		request: `GET http://{origin}/path?q=1 HTTP/1.1
user-agent: test/1.0
X-ProxyMesh-IP: 127.0.0.2
ACCEPT: */*
Cookie: a=1
{auth}
X-Custom-B:  b  value{sp}
host: {origin}
Connection: keep-alive, X-Hop
X-Hop: secret
x-custom-a:tight
Keep-Alive: timeout=5
Proxy-Connection: keep-alive
x-proxymesh-prefer-ip: 127.0.0.3
X-Forwarded-For: 10.0.0.1
Forwarded: for=10.0.0.1
Cookie: b=2

`,
		want: `GET /path?q=1 HTTP/1.1
user-agent: test/1.0
ACCEPT: */*
Cookie: a=1
X-Custom-B:  b  value{sp}
host: {origin}
x-custom-a:tight
Cookie: b=2

`,
	}, {
		name: "a body's framing, TE and Host written where the client put them",
		request: `POST http://{origin}/up HTTP/1.1
Content-Type: text/plain
content-length: 5
HOST: {origin}
{auth}
te: trailers, deflate
Connection: te
x-last: 1

hello`,
		want: `POST /up HTTP/1.1
Content-Type: text/plain
content-length: 5
HOST: {origin}
te: trailers
x-last: 1

`,
	}, {
		name: "a chunked body's framing where the client put it",
		request: `PUT http://{origin}/chunks HTTP/1.1
Host: {origin}
transfer-encoding: chunked
{auth}
accept-encoding: gzip

5
hello
0

`,
		want: "PUT /chunks HTTP/1.1\nHost: {origin}\ntransfer-encoding: chunked\naccept-encoding: gzip\n\n",
	}, {
		name: "a Host naming the proxy gets the target's authority in its place",
		request: `GET http://{origin}/ HTTP/1.1
accept: text/html
host: 127.0.0.1:{proxy-port}
{auth}
user-agent: node

`,
		want: "GET / HTTP/1.1\naccept: text/html\nhost: {origin}\nuser-agent: node\n\n",
	}} {
		rc.send(crlf(tt.request, vars...))
		resp, body := rc.read("GET")
		if resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("%s: answered %d %q (%s)", tt.name, resp.StatusCode, body, resp.Header.Get("X-ProxyMesh-Error"))
		}
		if got, want := o.next(t), crlf(tt.want, vars...); got != want {
			t.Errorf("%s: the origin read\n%q\nwant\n%q", tt.name, got, want)
		}
	}
}

func TestAnswerFieldsKeepTheirOrderAndCase(t *testing.T) {
	e := newEnv(t)
	answers := map[string]string{
		"/sized": `HTTP/1.1 200 OK
date: Thu, 01 Jan 2026 00:00:00 GMT
Set-Cookie: a=1; Path=/
content-type: text/plain
X-ProxyMesh-IP: 192.0.2.1
Set-Cookie: b=2
Keep-Alive: timeout=5
Connection: keep-alive, X-Hop
X-Hop: secret
content-length: 5
x-z:  last{sp}

hello`,
		"/chunked": "HTTP/1.1 201 Created\nSERVER: raw\ntransfer-encoding: chunked\nset-cookie: c=3\n\n5\nhello\n0\n\n",
		"/hints": `HTTP/1.1 103 Early Hints
link: </a.css>; rel=preload
X-ProxyMesh-IP: 192.0.2.1
Link: </b.js>; rel=preload

HTTP/1.1 200 OK
Content-Length: 5
link: </a.css>; rel=preload

hello`,
		// Heads the proxy does not relay line by line, written from net/http's map as before.
		"/folded": "HTTP/1.1 200 OK\nX-Folded: a\n b\nContent-Length: 5\n\nhello",
		"/large":  "HTTP/1.1 200 OK\nX-Large: {large}\nContent-Length: 5\n\nhello",
	}
	vars := []string{"{large}", strings.Repeat("a", 5000), "{exit}", "X-ProxyMesh-IP: 127.0.0.2"}
	o := newRawOrigin(t, func(head string) string {
		return crlf(answers[strings.Fields(head)[1]], vars...) // the target, in origin-form
	})
	rc := e.dialRaw(t)
	for _, tt := range []struct {
		path, want, body string
	}{{
		path: "/sized",
		want: `HTTP/1.1 200 OK
date: Thu, 01 Jan 2026 00:00:00 GMT
Set-Cookie: a=1; Path=/
content-type: text/plain
Set-Cookie: b=2
content-length: 5
x-z:  last{sp}
{exit}

`,
		body: "hello",
	}, {
		path: "/chunked",
		want: "HTTP/1.1 201 Created\nSERVER: raw\ntransfer-encoding: chunked\nset-cookie: c=3\n{exit}\n\n",
		body: "5\nhello\n0\n\n",
	}, {
		path: "/hints",
		want: "HTTP/1.1 103 Early Hints\nlink: </a.css>; rel=preload\nLink: </b.js>; rel=preload\n\n",
		body: "HTTP/1.1 200 OK\nContent-Length: 5\nlink: </a.css>; rel=preload\n{exit}\n\nhello",
	}, {
		path: "/folded",
		want: "HTTP/1.1 200 OK\nX-Folded: a b\n{exit}\nContent-Length: 5\n\n",
		body: "hello",
	}, {
		path: "/large",
		want: "HTTP/1.1 200 OK\nX-Large: {large}\n{exit}\nContent-Length: 5\n\n",
		body: "hello",
	}} {
		rc.send("GET http://" + o.addr + tt.path + " HTTP/1.1\r\nHost: " + o.addr + "\r\n" + aliceAuth() +
			"X-ProxyMesh-IP: 127.0.0.2\r\n\r\n")
		want, wantBody := crlf(tt.want, vars...), crlf(tt.body, vars...)
		head, err := readHead(rc.br)
		if err != nil {
			t.Fatalf("%s: %q %v", tt.path, head, err)
		}
		if head != want {
			t.Errorf("%s: the client read\n%q\nwant\n%q", tt.path, head, want)
		}
		body := make([]byte, len(wantBody))
		if _, err := io.ReadFull(rc.br, body); err != nil || string(body) != wantBody {
			t.Errorf("%s: body %q %v, want %q", tt.path, body, err, wantBody)
		}
	}
}

func TestUpgradeFieldsKeepTheirOrderAndCase(t *testing.T) {
	e := newEnv(t)
	o := newRawOrigin(t, func(string) string {
		return crlf(`HTTP/1.1 101 Switching Protocols
upgrade: websocket
Keep-Alive: timeout=5
connection: upgrade
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=

`)
	})
	vars := []string{"{origin}", o.addr, "{auth}", strings.TrimSuffix(aliceAuth(), "\r\n")}
	rc := e.dialRaw(t)
	rc.send(crlf(`GET http://{origin}/ws HTTP/1.1
host: {origin}
connection: Upgrade, HTTP2-Settings
pragma: no-cache
{auth}
upgrade: websocket
HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA
Sec-WebSocket-Version: 13
sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==
X-ProxyMesh-IP: 127.0.0.2

`, vars...))
	want := crlf(`HTTP/1.1 101 Switching Protocols
upgrade: websocket
connection: Upgrade
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
X-ProxyMesh-IP: 127.0.0.2

`)
	if got, err := readHead(rc.br); got != want {
		t.Errorf("the client read\n%q %v\nwant\n%q", got, err, want)
	}
	want = crlf(`GET /ws HTTP/1.1
host: {origin}
connection: Upgrade
pragma: no-cache
upgrade: websocket
Sec-WebSocket-Version: 13
sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==

`, vars...)
	if got := o.next(t); got != want {
		t.Errorf("the origin read\n%q\nwant\n%q", got, want)
	}
}
