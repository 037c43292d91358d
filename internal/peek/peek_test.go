package peek

import (
	"errors"
	"net"
	"os"
	"runtime"
	"testing"
	"time"
)

func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a.(*net.TCPConn), b.(*net.TCPConn)
}

func TestIdleAndWait(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("peeking is implemented on Linux only")
	}
	a, b := tcpPair(t)
	if !Idle(a) {
		t.Fatal("a fresh connection is not idle")
	}
	a.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if err := Wait(a); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Wait on a silent connection: %v, want the deadline", err)
	}
	a.SetReadDeadline(time.Time{})
	go b.Write([]byte("x"))
	if err := Wait(a); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if Idle(a) {
		t.Error("a connection with a byte queued is idle")
	}
	buf := make([]byte, 1)
	if n, err := a.Read(buf); n != 1 || err != nil || buf[0] != 'x' {
		t.Fatalf("the byte Wait saw was consumed: %d %v %q", n, err, buf)
	}
	b.Close()
	if err := Wait(a); err != nil {
		t.Fatalf("Wait after the peer closed: %v", err)
	}
	if Idle(a) {
		t.Error("a connection closed by its peer is idle")
	}
}

func TestClosed(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("peeking is implemented on Linux only")
	}
	a, b := tcpPair(t)
	if Closed(a) {
		t.Fatal("an open, quiet connection reported closed")
	}
	b.Write([]byte("x"))
	if err := Wait(a); err != nil || Closed(a) {
		t.Fatalf("with a byte queued: Wait %v, Closed %v; want open", err, Closed(a))
	}
	a.Read(make([]byte, 1))
	b.Close()
	if err := Wait(a); err != nil || !Closed(a) {
		t.Fatalf("after the peer closed: Wait %v, Closed %v; want closed", err, Closed(a))
	}
}
