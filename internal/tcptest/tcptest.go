// Package tcptest runs small TCP servers on loopback for tests: each connection accepted is handed
// to a function of the test's, and closed when that returns. DialFrom plays another client IP.
package tcptest

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/testwait"
)

// Serve listens on 127.0.0.1 and runs handle for each connection in a goroutine of its own, closing
// the connection when handle returns. The listener closes when the test ends. It returns the
// listener's address.
func Serve(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// Echo sends back what it reads from c until the peer closes its side.
func Echo(c net.Conn) { io.Copy(c, c) }

// DialFrom connects to addr from the loopback address ip, as another client would; the connection's
// deadline is testwait.Bound, and it closes when the test ends.
func DialFrom(t testing.TB, addr, ip string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(testwait.Bound))
	return c
}
