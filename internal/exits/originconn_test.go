package exits

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
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

	const timeout = 300 * time.Millisecond
	p := &originPool{timeout: timeout}
	a, aOrigin := conn()
	b, bOrigin := conn()
	c, cOrigin := conn()
	p.put(&OriginConn{Conn: a, key: originKey{"http", "a.test:80"}})
	p.put(&OriginConn{Conn: b, key: originKey{"http", "a.test:80"}})
	time.Sleep(timeout / 2)
	p.put(&OriginConn{Conn: c, key: originKey{"http", "c.test:80"}})

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
	p.put(&OriginConn{Conn: a, key: originKey{"http", "a.test:80"}})
	p.closeIdle()
	if _, err := b.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read after closeIdle: %v, want EOF", err)
	}
	if p.sweeper != nil {
		t.Error("closeIdle left the sweeper running")
	}
}
