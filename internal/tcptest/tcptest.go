// Package tcptest runs small TCP servers on loopback for tests: each connection accepted is handed
// to a function of the test's, and closed when that returns.
package tcptest

import (
	"io"
	"net"
	"testing"
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
