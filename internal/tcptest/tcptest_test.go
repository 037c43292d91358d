package tcptest_test

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/tcptest"
)

func TestEchoUntilThePeerCloses(t *testing.T) {
	c, err := net.Dial("tcp", tcptest.Serve(t, tcptest.Echo))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "ping")
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if string(got) != "ping" || err != nil {
		t.Errorf("echoed %q, %v; want %q and the server's close", got, err, "ping")
	}
}
