package main_test

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/tcptest"
)

// tunnel is a client's CONNECT tunnel through a proxy server, with what it relayed each way.
type tunnel struct {
	t        *testing.T
	name     string
	conn     net.Conn
	r        *bufio.Reader
	sent     int64 // bytes written into the tunnel
	received int64 // bytes read from it
}

// openTunnel opens a tunnel to target through the proxy server at proxyAddr, as alice.
func openTunnel(t *testing.T, name, proxyAddr, target string) *tunnel {
	t.Helper()
	c, err := net.DialTimeout("tcp", proxyAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	creds := base64.StdEncoding.EncodeToString([]byte("alice:" + alicePassword))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\n\r\n", target, target, creds)
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT %s: %v %v", target, resp, err)
	}
	return &tunnel{t: t, name: name, conn: c, r: r}
}

// echo sends msg through the tunnel and requires it back.
func (tn *tunnel) echo(msg string) {
	tn.t.Helper()
	if _, err := io.WriteString(tn.conn, msg); err != nil {
		tn.t.Fatalf("tunnel %s: write %q: %v", tn.name, msg, err)
	}
	tn.sent += int64(len(msg))
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(tn.r, got); err != nil || string(got) != msg {
		tn.t.Fatalf("tunnel %s: sent %q, got back %q (%v)", tn.name, msg, got, err)
	}
	tn.received += int64(len(msg))
}

// TestSIGTERMDrains stops a serving node with SIGTERM while two CONNECT tunnels relay, a slow
// plain-HTTP request waits for its origin and a streamed answer goes on: every listener refuses new
// connections at once, the request completes, one tunnel relays until its client ends it, the other
// tunnel and the stream until timeouts.shutdown (5s) cuts them; the usage of all four is in the store,
// and the exit status is 0.
func TestSIGTERMDrains(t *testing.T) {
	n := newStoreNode(t, backends[0], "1h") // only the flush at shutdown writes usage
	const slowAnswer, streamStart = "the slow answer", "a stream that never ends"
	arrived, release, testOver := make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			io.WriteString(w, streamStart)
			w.(http.Flusher).Flush()
			<-testOver
			return
		}
		arrived <- struct{}{}
		<-release
		io.WriteString(w, slowAnswer)
	}))
	t.Cleanup(origin.Close)
	letGo := sync.OnceFunc(func() { close(release) })
	t.Cleanup(letGo) // before origin.Close, should the test end early
	t.Cleanup(func() { close(testOver) })
	echo := tcptest.Serve(t, tcptest.Echo)
	n.start()
	proxyAddr := n.addrs["us-ca"]
	client := proxyClient("http://alice:"+alicePassword+"@"+proxyAddr, nil)
	client.Timeout = 60 * time.Second // the stream outlives the grace period

	a, b := openTunnel(t, "a", proxyAddr, echo), openTunnel(t, "b", proxyAddr, echo)
	a.echo("hello from a")
	b.echo("hello from b")
	stream, err := client.Get(origin.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	if got := make([]byte, len(streamStart)); stream.StatusCode != 200 {
		t.Fatalf("stream: status %d", stream.StatusCode)
	} else if _, err := io.ReadFull(stream.Body, got); err != nil || string(got) != streamStart {
		t.Fatalf("stream: %q %v", got, err)
	}
	type answer struct {
		status int
		body   string
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := client.Get(origin.URL + "/slow")
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		answered <- answer{resp.StatusCode, string(body), err}
	}()
	<-arrived

	signalled := time.Now()
	n.proc.cmd.Process.Signal(syscall.SIGTERM)
	n.proc.waitFor(t, regexp.MustCompile(`msg="shutting down" grace=5s`))
	// The request, the stream and the tunnels hold the node open, so a refusal here is a closed
	// listener.
	eventually(t, func() error {
		for name, addr := range n.addrs {
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				return fmt.Errorf("%s (%s) still accepts connections after SIGTERM", name, addr)
			}
		}
		return nil
	})
	if d := time.Since(signalled); d >= 5*time.Second {
		t.Fatalf("the listeners closed %v after SIGTERM, when the drain was over; want at once", d)
	}
	a.echo("a, while draining")
	b.echo("b, while draining")

	letGo()
	if got := <-answered; got.err != nil || got.status != http.StatusOK || got.body != slowAnswer {
		t.Errorf("the request in flight at SIGTERM: %d %q %v, want 200 %q", got.status, got.body, got.err, slowAnswer)
	}
	a.echo("a, after the request")
	a.conn.Close() // the client ends tunnel a
	b.echo("b, after tunnel a ended")

	// Tunnel b and the stream stay open until the grace period is over; then the node cuts them.
	if _, err := b.r.ReadByte(); err == nil {
		t.Errorf("tunnel b: read a byte nobody sent")
	}
	if _, err := stream.Body.Read(make([]byte, 1)); err == nil {
		t.Errorf("stream: read a byte the origin never sent")
	}
	if d := time.Since(signalled); d < 5*time.Second {
		t.Errorf("tunnel b and the stream were cut %v after SIGTERM, before timeouts.shutdown (5s)", d)
	}
	n.proc.requireExit(t, syscall.SIGTERM)

	// The flush at shutdown wrote the requests and both tunnels, the cut ones too: bytes in are what the
	// clients sent into the tunnels, bytes out what came back plus the answer and the stream's start.
	out, err := adminCmd(t, n.cfg, "", "usage", "alice").CombinedOutput()
	if err != nil {
		t.Fatalf("admin usage: %v\n%s", err, out)
	}
	row := regexp.MustCompile(`alice\s+-\s+us-ca\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)`).FindStringSubmatch(string(out))
	want := []string{fmt.Sprint(a.sent + b.sent), fmt.Sprint(a.received + b.received + int64(len(slowAnswer)+len(streamStart))), "2", "2"}
	if row == nil || fmt.Sprint(row[1:]) != fmt.Sprint(want) {
		t.Errorf("usage after SIGTERM:\n%s\nwant bytes in, bytes out, requests, tunnels = %v", out, want)
	}
	t.Logf("drained in %v: 2 requests and 2 tunnels, %v (bytes in, bytes out, requests, tunnels) flushed",
		time.Since(signalled).Round(10*time.Millisecond), want)
}
