package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/egress"
	"github.com/exitmesh/exitmesh/internal/proxy"
	"github.com/exitmesh/exitmesh/internal/tcptest"
	"github.com/exitmesh/exitmesh/internal/testwait"
)

// Tenant isolation on the data plane, attacked as a customer with one valid account would: with raw
// sockets, through a real proxy server, against an origin the attacker controls.

// connOrigin is an HTTP/1.1 origin written by hand, so that it can misbehave as a hostile origin
// does. Each answer names the request and the number of the TCP connection it arrived on, and the
// origin records both:
//   - /poison answers, and appends in the same write a second answer nobody asked for;
//   - /late-poison answers, and 100 ms later writes a second one on the idle connection;
//   - /early answers at once, with a chunked body it finishes only once it has read the request's
//     body;
//   - any other path gets "answer to GET <path>".
type connOrigin struct {
	ln   net.Listener
	addr string // host:port

	mu    sync.Mutex
	conns int
	open  []net.Conn // closed when the test ends
	ended int        // connections whose serving ended: the proxy closed them, or sent garbage
	seen  []originRequest
}

type originRequest struct {
	path    string
	conn    int    // 1 for the origin's first connection, and so on
	from    string // the source IP it saw
	bodyErr error  // how reading the request's body ended, when it did not end well
}

func newConnOrigin(t *testing.T) *connOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &connOrigin{ln: ln, addr: ln.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		o.mu.Lock()
		for _, c := range o.open {
			c.Close()
		}
		o.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			o.mu.Lock()
			o.conns++
			n := o.conns
			o.open = append(o.open, c)
			o.mu.Unlock()
			wg.Go(func() { o.serve(c, n) })
		}
	})
	return o
}

func (o *connOrigin) serve(c net.Conn, n int) {
	defer func() {
		c.Close()
		o.mu.Lock()
		o.ended++
		o.mu.Unlock()
	}()
	from, _, _ := net.SplitHostPort(c.RemoteAddr().String())
	br := bufio.NewReader(c)
	for {
		// Longer than a client's deadline (dialAs): an exchange the proxy leaves hanging fails the
		// test instead of ending when the origin gives up.
		c.SetReadDeadline(time.Now().Add(time.Minute))
		r, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if r.URL.Path == "/early" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nearly\r\n")
		}
		_, bodyErr := io.Copy(io.Discard, r.Body)
		o.mu.Lock()
		o.seen = append(o.seen, originRequest{path: r.URL.Path, conn: n, from: from, bodyErr: bodyErr})
		o.mu.Unlock()
		if bodyErr != nil {
			return
		}
		switch r.URL.Path {
		case "/early":
			io.WriteString(c, "0\r\n\r\n")
		case "/poison":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"+
				"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\npoisoned")
		case "/late-poison":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			time.Sleep(100 * time.Millisecond)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\npoisoned")
		default:
			body := fmt.Sprintf("answer to GET %s", r.URL.Path)
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nX-Conn: %d\r\nContent-Length: %d\r\n\r\n%s", n, len(body), body)
		}
	}
}

// allEnded reports whether every connection the origin accepted was closed.
func (o *connOrigin) allEnded() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ended != o.conns {
		return fmt.Errorf("%d of the origin's %d connections still open", o.conns-o.ended, o.conns)
	}
	return nil
}

// requests returns what the origin received so far.
func (o *connOrigin) requests() []originRequest {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]originRequest(nil), o.seen...)
}

// connOf returns the connection number the origin saw path arrive on, or 0.
func (o *connOrigin) connOf(t *testing.T, path string) originRequest {
	t.Helper()
	for _, r := range o.requests() {
		if r.path == path {
			return r
		}
	}
	t.Fatalf("the origin never received %s", path)
	return originRequest{}
}

// rawClient is one customer's connection to the proxy, written to and read from as bytes.
type rawClient struct {
	t     *testing.T
	e     *env
	conn  net.Conn
	br    *bufio.Reader
	login string
}

func dialAs(t *testing.T, e *env, login, password string) *rawClient {
	c := tcptest.DialFrom(t, e.proxyAddr, "127.0.0.1")
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawClient{t: t, e: e, conn: c, br: bufio.NewReader(c), login: basic(login, password)}
}

// get sends GET http://host/path pinned to exit and returns the status and body of the answer.
func (c *rawClient) get(host, path, exit string) (int, string) {
	c.t.Helper()
	fmt.Fprintf(c.conn, "GET http://%s%s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\nX-ProxyMesh-IP: %s\r\n\r\n",
		host, path, host, c.login, exit)
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("GET %s: body: %v", path, err)
	}
	if got := resp.Header.Get("X-ProxyMesh-IP"); got != exit && resp.StatusCode == http.StatusOK {
		c.t.Fatalf("GET %s went out through %s, want the pinned %s", path, got, exit)
	}
	return resp.StatusCode, string(body)
}

// TestPoisonedOriginConnectionAnswersNobodyElse is issue 14's first reproduction: an origin appends
// an answer nobody asked for behind its real one. Before the fix, the connection went back to the
// exit's pool with those bytes in its reader: the next customer on that exit received "poisoned", and
// the customer after that received the second one's answer. Now each request gets its own answer,
// the attacker's own next request included, and the metric counts the origin's misbehaviour.
func TestPoisonedOriginConnectionAnswersNobodyElse(t *testing.T) {
	e := newEnv(t, withDave)
	m := serveMetrics(t, e)
	o := newConnOrigin(t)
	const exit = "127.0.0.2"

	attacker := dialAs(t, e, "alice", alicePW)
	if status, body := attacker.get(o.addr, "/poison", exit); status != http.StatusOK || body != "ok" {
		t.Fatalf("attacker's /poison: %d %q, want 200 \"ok\"", status, body)
	}
	victims := []struct{ login, password, path string }{
		{"dave", alicePW, "/victim-A"},    // another customer
		{"alice-us", subPW, "/victim-B"},  // another login of the attacker's own account
		{"dave", alicePW, "/victim-C"},    // and the one after them
		{"alice", alicePW, "/attacker-D"}, // the attacker itself, on a new connection to the proxy
	}
	for _, v := range victims {
		c := dialAs(t, e, v.login, v.password)
		status, body := c.get(o.addr, v.path, exit)
		if want := "answer to GET " + v.path; status != http.StatusOK || body != want {
			t.Errorf("%s asked for %s and received %d %q, want 200 %q", v.login, v.path, status, body, want)
		}
	}
	// The attacker's own connection too.
	if status, body := attacker.get(o.addr, "/attacker-E", exit); status != http.StatusOK || body != "answer to GET /attacker-E" {
		t.Errorf("attacker's next request on its connection: %d %q", status, body)
	}
	if got := m.value(t, `exitmesh_origin_unsolicited_total{proxy="us-ca"}`); got != 1 {
		t.Errorf("exitmesh_origin_unsolicited_total = %v, want 1 (the poisoned connection)", got)
	}
	if poisoned := o.connOf(t, "/poison").conn; o.connOf(t, "/attacker-D").conn == poisoned || o.connOf(t, "/attacker-E").conn == poisoned {
		t.Error("the connection that carried the unsolicited answer was used again")
	}
}

// TestLateUnsolicitedAnswerIsNotTakenForTheNext: an origin that writes its extra answer a moment
// after the real one, once the connection is idle in the pool, is caught when the connection is next
// taken: the login's next request goes out on a new connection and gets its own answer.
func TestLateUnsolicitedAnswerIsNotTakenForTheNext(t *testing.T) {
	e := newEnv(t)
	m := serveMetrics(t, e)
	o := newConnOrigin(t)
	const exit = "127.0.0.3"
	c := dialAs(t, e, "alice", alicePW)
	if status, body := c.get(o.addr, "/late-poison", exit); status != http.StatusOK || body != "ok" {
		t.Fatalf("/late-poison: %d %q", status, body)
	}
	time.Sleep(300 * time.Millisecond) // the second answer reaches the idle connection
	for _, path := range []string{"/next", "/after"} {
		if status, body := c.get(o.addr, path, exit); status != http.StatusOK || body != "answer to GET "+path {
			t.Errorf("%s: %d %q, want its own answer", path, status, body)
		}
	}
	if o.connOf(t, "/next").conn == o.connOf(t, "/late-poison").conn {
		t.Error("the connection holding the unsolicited answer carried the next request")
	}
	if o.connOf(t, "/after").conn != o.connOf(t, "/next").conn {
		t.Error("a clean connection was not reused for the login's next request")
	}
	if got := m.value(t, `exitmesh_origin_unsolicited_total{proxy="us-ca"}`); got != 1 {
		t.Errorf("exitmesh_origin_unsolicited_total = %v, want 1", got)
	}
}

// TestOriginConnectionsAreNotSharedBetweenLogins: two accounts, and an account and its sub-account,
// fetching from one origin through one exit arrive on different origin connections, so the origin
// cannot link them by connection; each login's keep-alive requests still reuse its own.
func TestOriginConnectionsAreNotSharedBetweenLogins(t *testing.T) {
	e := newEnv(t, withDave)
	o := newConnOrigin(t)
	const exit = "127.0.0.4"
	logins := []struct{ login, password string }{{"alice", alicePW}, {"dave", alicePW}, {"alice-us", subPW}}
	connOfLogin := map[string]int{}
	for round := range 3 {
		for _, l := range logins {
			// A new client connection each time: reuse comes from the exit's pool, not from the
			// client's connection.
			c := dialAs(t, e, l.login, l.password)
			path := fmt.Sprintf("/%s/%d", l.login, round)
			if status, body := c.get(o.addr, path, exit); status != http.StatusOK || body != "answer to GET "+path {
				t.Fatalf("%s: %d %q", path, status, body)
			}
			c.conn.Close()
			seen := o.connOf(t, path)
			if seen.from != exit {
				t.Fatalf("%s reached the origin from %s, want the pinned exit %s", path, seen.from, exit)
			}
			if round == 0 {
				connOfLogin[l.login] = seen.conn
			} else if seen.conn != connOfLogin[l.login] {
				t.Errorf("%s arrived on origin connection %d, want %s's own connection %d (keep-alive per login)",
					path, seen.conn, l.login, connOfLogin[l.login])
			}
		}
	}
	owner := map[int]string{}
	for login, conn := range connOfLogin {
		if other, ok := owner[conn]; ok {
			t.Errorf("%s and %s shared origin connection %d", login, other, conn)
		}
		owner[conn] = login
	}
	if got := len(o.requests()); got != 9 {
		t.Errorf("the origin received %d requests, want 9", got)
	}
}

// TestUnparsableRequestsGetA400: request targets that pass the head's byte-level check but not the
// URL parser (a percent-encoded host, an invalid escape in the path) used to close the connection
// without an answer, because the parser's *url.Error passes for a network error. Each now gets a 400
// with X-ProxyMesh-Error: bad-request, and the connection is closed.
func TestUnparsableRequestsGetA400(t *testing.T) {
	e := newEnv(t)
	originHost := strings.TrimPrefix(e.origin.URL, "http://")
	_, port, _ := net.SplitHostPort(originHost)
	for _, target := range []string{
		"http://%31%32%37.0.0.9:" + port + "/",
		"http://" + originHost + "/%zz",
		"http://" + originHost + "/a%",
	} {
		host := strings.TrimPrefix(target, "http://")
		host = host[:strings.IndexByte(host, '/')]
		c := dialAs(t, e, "alice", alicePW)
		fmt.Fprintf(c.conn, "GET %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n", target, host, c.login)
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			t.Errorf("GET %s: no answer: %v", target, err)
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("X-ProxyMesh-Error") != "bad-request" || !resp.Close {
			t.Errorf("GET %s: %d %q close=%v, want 400 bad-request and Connection: close",
				target, resp.StatusCode, resp.Header.Get("X-ProxyMesh-Error"), resp.Close)
		}
		if n, err := c.br.ReadByte(); err != io.EOF {
			t.Errorf("GET %s: after the 400 the connection gave %q, %v; want it closed", target, n, err)
		}
	}
	if dials := e.dials.list(); len(dials) != 0 {
		t.Errorf("the proxy dialled %v for requests it could not parse", dials)
	}
}

// withPatientOrigins makes the origin timeout longer than any test: a request that waits for it
// fails the test on its own deadline.
func withPatientOrigins(c *proxy.Config, _ *egress.Dialer) { c.OriginTimeout = time.Hour }

// TestMalformedChunkedBodyIsRefusedAtOnce: a chunk size of "+5" used to leave the origin waiting for
// a body and the proxy waiting for the origin's answer until the origin timeout, holding the origin
// connection all along, then 504. Now the exchange ends at once: 400 bad-request, the client's
// connection closed, and the origin's connection closed too.
func TestMalformedChunkedBodyIsRefusedAtOnce(t *testing.T) {
	e := newEnv(t, withPatientOrigins)
	o := newConnOrigin(t)
	c := dialAs(t, e, "alice", alicePW)
	fmt.Fprintf(c.conn, "POST http://%s/upload HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n"+
		"Transfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n", o.addr, o.addr, c.login)
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("X-ProxyMesh-Error") != "bad-request" || !resp.Close {
		t.Errorf("answer %d %q close=%v, want 400 bad-request with Connection: close",
			resp.StatusCode, resp.Header.Get("X-ProxyMesh-Error"), resp.Close)
	}
	if _, err := c.br.ReadByte(); err != io.EOF {
		t.Errorf("after the 400: %v, want the connection closed", err)
	}
	testwait.For(t, "the origin's connection closed", o.allEnded)
	for _, r := range o.requests() {
		if r.bodyErr == nil {
			t.Errorf("the origin received a whole request %s from a malformed body", r.path)
		}
	}
}

// TestBodyBreakingAfterTheAnswerStartedClosesBothSides: when the origin has begun answering, a
// request body that then breaks its framing cannot get a 400; both connections are closed at once,
// and the client sees the answer cut short.
func TestBodyBreakingAfterTheAnswerStartedClosesBothSides(t *testing.T) {
	e := newEnv(t, withPatientOrigins)
	o := newConnOrigin(t)
	c := dialAs(t, e, "alice", alicePW)
	fmt.Fprintf(c.conn, "POST http://%s/early HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n"+
		"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", o.addr, o.addr, c.login)
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	first := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "early" {
		t.Fatalf("the answer's first chunk: %q, %v", first, err)
	}
	io.WriteString(c.conn, "+5\r\nworld\r\n0\r\n\r\n")
	rest, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Errorf("the answer ended well (%q more) after the request body broke; want it cut short", rest)
	}
	if _, err := c.br.ReadByte(); err != io.EOF {
		t.Errorf("after the broken body: %v, want the connection closed", err)
	}
	testwait.For(t, "the origin's connection closed", o.allEnded)
}

// Bytes the proxy buffered must never outlive the exchange they belong to.

// TestRefusedConnectDropsTheTunnelsEarlyBytes: bytes a client sent right behind a CONNECT head
// belong to the tunnel; when the tunnel is refused they are not read as the connection's next
// request (here one that would have reached the origin): the connection is closed after the refusal.
// Without early bytes, a refused CONNECT keeps the connection (curl retries its 407 on it).
func TestRefusedConnectDropsTheTunnelsEarlyBytes(t *testing.T) {
	e := newEnv(t)
	o := newConnOrigin(t)
	good := basic("alice", alicePW)
	early := fmt.Sprintf("GET http://%s/early-bytes HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n", o.addr, o.addr, good)
	for _, tt := range []struct {
		what, target, password string
		status                 int
	}{
		{"wrong password", o.addr, "wrong", http.StatusProxyAuthRequired},
		{"private destination", "10.1.2.3:443", alicePW, http.StatusForbidden},
	} {
		c := dialAs(t, e, "alice", tt.password)
		fmt.Fprintf(c.conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n%s", tt.target, tt.target, c.login, early)
		resp, err := http.ReadResponse(c.br, &http.Request{Method: http.MethodConnect})
		if err != nil {
			t.Fatalf("%s: %v", tt.what, err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != tt.status || !resp.Close {
			t.Errorf("%s: %d close=%v, want %d and Connection: close", tt.what, resp.StatusCode, resp.Close, tt.status)
		}
		if rest, _ := io.ReadAll(c.br); len(rest) > 0 {
			t.Errorf("%s: after the refusal the proxy sent %q: the tunnel's bytes were served as a request", tt.what, rest)
		}
	}
	if got := o.requests(); len(got) != 0 {
		t.Errorf("the origin received %v", got)
	}
	c := dialAs(t, e, "alice", "wrong")
	fmt.Fprintf(c.conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n", o.addr, o.addr, c.login)
	if resp, err := http.ReadResponse(c.br, &http.Request{Method: http.MethodConnect}); err != nil || resp.StatusCode != 407 || resp.Close {
		t.Errorf("CONNECT with a wrong password and nothing behind it: %v %v, want 407 keeping the connection", resp, err)
	}
}

// TestLeftoverBytesOfAClosedConnectionReachNobody: a client that leaves with half a request head in
// the proxy's buffer (a pooled reader) must not have it completed by the next client's bytes.
func TestLeftoverBytesOfAClosedConnectionReachNobody(t *testing.T) {
	e := newEnv(t, withDave)
	o := newConnOrigin(t)
	for round := range 20 {
		a := dialAs(t, e, "alice", alicePW)
		fmt.Fprintf(a.conn, "GET http://%s/a-%d HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n"+
			"GET http://%s/stolen HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\nX-Half: ",
			o.addr, round, o.addr, a.login, o.addr, o.addr, a.login)
		if resp, err := http.ReadResponse(a.br, nil); err != nil || resp.StatusCode != 200 {
			t.Fatalf("alice's request: %v %v", resp, err)
		}
		a.conn.Close()
		b := dialAs(t, e, "dave", alicePW)
		path := fmt.Sprintf("/b-%d", round)
		if status, body := b.get(o.addr, path, "127.0.0.2"); status != http.StatusOK || body != "answer to GET "+path {
			t.Fatalf("round %d: dave received %d %q, want his own answer", round, status, body)
		}
		b.conn.Close()
	}
	for _, r := range o.requests() {
		if r.path == "/stolen" {
			t.Fatal("the half request alice left behind reached the origin")
		}
	}
}

// TestPipelinedRequestsOfTwoLoginsGetTheirOwnAnswers: requests pipelined on one client connection,
// under two logins, are answered in order, each with its own answer, over each login's own origin
// connection.
func TestPipelinedRequestsOfTwoLoginsGetTheirOwnAnswers(t *testing.T) {
	e := newEnv(t, withDave)
	o := newConnOrigin(t)
	c := dialAs(t, e, "alice", alicePW)
	logins := []string{basic("alice", alicePW), basic("dave", alicePW)}
	var batch strings.Builder
	for i := range 6 {
		fmt.Fprintf(&batch, "GET http://%s/p%d HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\nX-ProxyMesh-IP: 127.0.0.2\r\n\r\n",
			o.addr, i, o.addr, logins[i%2])
	}
	io.WriteString(c.conn, batch.String())
	for i := range 6 {
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if want := fmt.Sprintf("answer to GET /p%d", i); string(body) != want {
			t.Errorf("answer %d: %q, want %q", i, body, want)
		}
	}
	for i := 2; i < 6; i++ {
		if o.connOf(t, fmt.Sprintf("/p%d", i)).conn != o.connOf(t, fmt.Sprintf("/p%d", i%2)).conn {
			t.Errorf("/p%d did not reuse its login's origin connection", i)
		}
	}
	if o.connOf(t, "/p0").conn == o.connOf(t, "/p1").conn {
		t.Error("alice's and dave's pipelined requests shared an origin connection")
	}
}
