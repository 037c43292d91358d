package api_test

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// apiConn is one raw TLS connection to the API, for requests written by hand.
type apiConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func (e *env) dialAPI(t *testing.T) *apiConn {
	t.Helper()
	c, err := tls.Dial("tcp", e.node.APIAddr(), &tls.Config{RootCAs: e.certs, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &apiConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (ac *apiConn) send(s string) {
	ac.t.Helper()
	if _, err := io.WriteString(ac.c, s); err != nil {
		ac.t.Fatal(err)
	}
}

func (ac *apiConn) read() (*http.Response, string) {
	ac.t.Helper()
	resp, err := http.ReadResponse(ac.br, nil)
	if err != nil {
		ac.t.Fatalf("reading an answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// closed fails unless the server closed the connection with nothing more to say.
func (ac *apiConn) closed() {
	ac.t.Helper()
	if rest, err := io.ReadAll(ac.br); len(rest) > 0 {
		ac.t.Errorf("after the refusal: %q, %v; want the connection closed", rest, err)
	}
}

// TestAPIRefusesSmugglingHeads attacks the API and dashboard listener with the heads a front proxy
// and net/http could read differently. Each is refused with its status before any handler runs:
// the IPs the requests try to add are never added.
func TestAPIRefusesSmugglingHeads(t *testing.T) {
	e := newEnv(t)
	host := e.node.APIAddr()
	auth := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("alice:"+alicePW)) + "\r\n"
	add := func(ip string) string { return "ip=" + ip }
	post := "POST /api/ip/add/ HTTP/1.1\r\nHost: " + host + "\r\n" + auth + "Content-Type: application/x-www-form-urlencoded\r\n"
	for i, tt := range []struct {
		name, request string
		status        int
	}{
		{"Content-Length and Transfer-Encoding", post + "Content-Length: 15\r\nTransfer-Encoding: chunked\r\n\r\nf\r\n" + add("127.0.0.51") + "\r\n0\r\n\r\n", 400},
		{"two Content-Lengths", post + "Content-Length: 13\r\nContent-Length: 13\r\n\r\n" + add("127.0.0.52"), 400},
		{"obs-fold", post + "Content-Length: 13\r\nX-A: b\r\n c\r\n\r\n" + add("127.0.0.53"), 400},
		{"bare LF", strings.ReplaceAll(post+"Content-Length: 13\r\n\r\n", "\r\n", "\n") + add("127.0.0.54"), 400},
		{"absolute URI unlike Host", "POST https://internal.example/api/ip/add/ HTTP/1.1\r\nHost: " + host + "\r\n" + auth +
			"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 13\r\n\r\n" + add("127.0.0.55"), 400},
		{"space before colon", post + "Content-Length : 13\r\n\r\n" + add("127.0.0.56"), 400},
		{"too many fields", post + "Content-Length: 13\r\n" + strings.Repeat("X-A: b\r\n", 100) + "\r\n" + add("127.0.0.57"), 431},
		{"Transfer-Encoding gzip", post + "Transfer-Encoding: gzip\r\n\r\n", 501},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ac := e.dialAPI(t)
			ac.send(tt.request)
			resp, body := ac.read()
			if resp.StatusCode != tt.status || !resp.Close {
				t.Errorf("case %d: %d %q close=%v; want %d and close", i, resp.StatusCode, body, resp.Close, tt.status)
			}
			ac.closed()
		})
	}
	if r := e.get("/api/ips/", "alice", alicePW); r.status != 200 || strings.Contains(r.body, "127.0.0.5") {
		t.Errorf("alice's IPs after the attacks: %d %s; want none of 127.0.0.51–57", r.status, r.body)
	}
}

// TestAPISmuggledRequestAfterAGoodOne pipelines a good request and a smuggling one on one
// connection: the good one is answered, the other refused, and the connection closed.
func TestAPISmuggledRequestAfterAGoodOne(t *testing.T) {
	e := newEnv(t)
	host := e.node.APIAddr()
	auth := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("alice:"+alicePW)) + "\r\n"
	smuggled := "POST /api/ip/add/ HTTP/1.1\r\nHost: " + host + "\r\n" + auth +
		"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 13\r\n\r\nip=127.0.0.58"
	ac := e.dialAPI(t)
	ac.send("GET /api/ips/ HTTP/1.1\r\nHost: " + host + "\r\n" + auth + "\r\n" +
		"POST /api/ips/ HTTP/1.1\r\nHost: " + host + "\r\n" + auth + "Content-Length: " + strconv.Itoa(5+len(smuggled)) +
		"\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled)
	if resp, body := ac.read(); resp.StatusCode != 200 {
		t.Fatalf("good request: %d %q", resp.StatusCode, body)
	}
	if resp, body := ac.read(); resp.StatusCode != 400 || !resp.Close {
		t.Fatalf("smuggling request: %d %q close=%v, want 400 and close", resp.StatusCode, body, resp.Close)
	}
	ac.closed()
	if r := e.get("/api/ips/", "alice", alicePW); strings.Contains(r.body, "127.0.0.58") {
		t.Errorf("the smuggled request ran: alice's IPs %s", r.body)
	}
}

// TestAPIPlainHTTPToTLSPort: a client that speaks plain HTTP to the HTTPS port is told so.
func TestAPIPlainHTTPToTLSPort(t *testing.T) {
	e := newEnv(t)
	c, err := net.Dial("tcp", e.node.APIAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /api/ips/ HTTP/1.1\r\nHost: x\r\n\r\n")
	raw, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(raw), "HTTP/1.0 400 Bad Request") || !strings.Contains(string(raw), "HTTP request to an HTTPS server") {
		t.Errorf("answer %q, want net/http's 400 telling HTTP from HTTPS", raw)
	}
}
