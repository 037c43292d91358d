package exits

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/certs"
)

// TestOriginPoolClosesIdleConnectionsOfForgottenOrigins: an origin no request goes to again must
// not keep its idle connection (and the node's descriptor) beyond the idle timeout. Before the
// sweeper, connections were only closed when their own origin was asked for again, so a node that
// visited many origins once held their sockets forever (found by bench/soak).
func TestOriginPoolClosesIdleConnectionsOfForgottenOrigins(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// conn returns the pool's end of a new connection and the origin's end.
	conn := func() (net.Conn, net.Conn) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(); s.Close() })
		return c, s
	}
	// closedWithin says whether the origin sees its end closed within d.
	closedWithin := func(s net.Conn, d time.Duration) bool {
		s.SetReadDeadline(time.Now().Add(d))
		_, err := s.Read(make([]byte, 1))
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return false
		}
		if err != io.EOF {
			t.Fatalf("origin's read: %v, want EOF or a timeout", err)
		}
		return true
	}

	const timeout = time.Second // long enough that a loaded machine's stalls stay well inside each window
	p := &originPool{timeout: timeout}
	a, aOrigin := conn()
	b, bOrigin := conn()
	c, cOrigin := conn()
	p.put(&OriginConn{Conn: a, key: OriginKey{Scheme: "http", HostPort: "a.test:80"}})
	p.put(&OriginConn{Conn: b, key: OriginKey{Scheme: "http", HostPort: "a.test:80"}})
	time.Sleep(timeout / 2)
	p.put(&OriginConn{Conn: c, key: OriginKey{Scheme: "http", HostPort: "c.test:80"}})

	if closedWithin(aOrigin, timeout/4) || closedWithin(cOrigin, 10*time.Millisecond) {
		t.Fatal("an idle connection was closed before its timeout")
	}
	if !closedWithin(aOrigin, 2*timeout) || !closedWithin(bOrigin, timeout/4) {
		t.Fatal("the connections to a.test, idle past the timeout and never asked for again, are still open")
	}
	if closedWithin(cOrigin, timeout/4) {
		t.Fatal("the connection to c.test was closed with the older ones, before its own timeout")
	}
	if !closedWithin(cOrigin, 2*timeout) {
		t.Fatal("the connection to c.test, idle past the timeout, is still open")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) != 0 || p.sweeper != nil {
		t.Errorf("after every connection timed out: %d origins idle, sweeper %v; want none", len(p.idle), p.sweeper)
	}
}

// TestOriginPoolCloseIdleStopsTheSweeper: a pool retired by a reload closes its connections and
// leaves no timer behind.
func TestOriginPoolCloseIdleStopsTheSweeper(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	p := &originPool{timeout: time.Hour}
	p.put(&OriginConn{Conn: a, key: OriginKey{Scheme: "http", HostPort: "a.test:80"}})
	p.closeIdle()
	if _, err := b.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read after closeIdle: %v, want EOF", err)
	}
	if p.sweeper != nil {
		t.Error("closeIdle left the sweeper running")
	}
}

// TestOriginPoolBoundsIdleConnectionsPerExit: with connections kept per login and origin, an exit
// serving many logins could hold a socket for each; past maxIdlePerExit the least recently released
// one, whatever its key, is closed.
func TestOriginPoolBoundsIdleConnectionsPerExit(t *testing.T) {
	p := &originPool{timeout: time.Hour}
	defer p.closeIdle()
	peers := make([]net.Conn, maxIdlePerExit+1)
	for i := range peers {
		a, b := net.Pipe()
		peers[i] = b
		key := OriginKey{Login: Login{AccountID: int64(i)}, Scheme: "http", HostPort: "a.test:80"}
		p.put(&OriginConn{Conn: a, key: key})
	}
	peers[0].SetReadDeadline(time.Now().Add(time.Second))
	if _, err := peers[0].Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("the least recently released connection: read %v, want EOF (closed)", err)
	}
	peers[1].SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := peers[1].Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the second connection: read %v, want it still open", err)
	}
	if p.lru.len != maxIdlePerExit || len(p.idle) != maxIdlePerExit {
		t.Errorf("%d idle connections under %d keys, want %d", p.lru.len, len(p.idle), maxIdlePerExit)
	}
	if c := p.take(OriginKey{Login: Login{AccountID: 0}, Scheme: "http", HostPort: "a.test:80"}, time.Now()); c != nil {
		t.Error("the evicted connection was handed out")
	}
	if c := p.take(OriginKey{Login: Login{AccountID: 1}, Scheme: "http", HostPort: "a.test:80"}, time.Now()); c == nil {
		t.Error("login 1's connection is gone")
	}
}

// TestOriginConnStateSeesAnswersBufferedByTLS: over TLS, bytes an origin sent behind its answer may
// sit decrypted inside the TLS connection, out of sight of both the bufio.Reader and the socket. The
// origin here writes its answer's body in two TLS records, the second followed by an unsolicited
// answer; the proxy's way of reading the body leaves that answer inside the TLS layer, and the check
// made before reuse must still find it.
func TestOriginConnStateSeesAnswersBufferedByTLS(t *testing.T) {
	cert, _, _, err := certs.SelfSigned("a.test")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, DynamicRecordSizingDisabled: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const first, second = 3000, 5000
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		http.ReadRequest(bufio.NewReader(c))
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", first+second, strings.Repeat("a", first))
		io.WriteString(c, strings.Repeat("b", second)+"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\npoisoned")
		io.Copy(io.Discard, c)
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
	defer tc.Close()
	c := &OriginConn{Conn: tc, R: bufio.NewReader(tc), W: bufio.NewWriter(tc), tls: true, raw: socketOf(raw)}
	io.WriteString(c.W, "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
	c.W.Flush()
	resp, err := http.ReadResponse(c.R, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.CopyBuffer(io.Discard, resp.Body, make([]byte, 32<<10)) // as the proxy copies
	if err != nil || n != first+second {
		t.Fatalf("body: %d bytes, %v", n, err)
	}
	time.Sleep(50 * time.Millisecond)
	if got := c.state(); got != stateUnsolicited {
		t.Errorf("state of a connection with an answer left in its TLS layer: %d, want unsolicited (%d)", got, stateUnsolicited)
	}
}
