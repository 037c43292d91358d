package exits_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/egress"
	"github.com/exitmesh/exitmesh/internal/exits"
	"github.com/exitmesh/exitmesh/internal/origin"
	"github.com/exitmesh/exitmesh/internal/upstreamtest"
)

// testTimeout bounds each dial and exchange so a broken build fails instead of hanging; it is not a
// performance threshold.
const testTimeout = 10 * time.Second

// upstreamEnv is an origin on 127.0.0.1 that reports the client address it sees, and a node-side
// dialer whose policy allows only that origin among internal addresses. rec records every connection
// the node opens, to an upstream or to a destination.
type upstreamEnv struct {
	origin *httptest.Server
	rec    *upstreamtest.DialRecorder
	dialer *egress.Dialer
}

func newUpstreamEnv(t *testing.T) *upstreamEnv {
	t.Helper()
	e := &upstreamEnv{origin: httptest.NewServer(origin.Handler()), rec: &upstreamtest.DialRecorder{}}
	t.Cleanup(e.origin.Close)
	e.dialer = &egress.Dialer{
		Policy: &egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}},
		Lookup: func(_ context.Context, host string) ([]netip.Addr, error) {
			switch host {
			case "origin.test":
				return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
			case "intranet.test":
				return []netip.Addr{netip.MustParseAddr("10.20.30.40")}, nil
			}
			return nil, fmt.Errorf("no such host %q", host)
		},
		DialTCP: e.rec.Dial,
	}
	return e
}

// originAddr is the origin's host:port.
func (e *upstreamEnv) originAddr() string { return e.origin.Listener.Addr().String() }

// exit builds an upstream exit through u, as an operator would configure it with ip.
func (e *upstreamEnv) exit(t *testing.T, ip, rawURL string, u *upstreamtest.Proxy) *exits.Exit {
	t.Helper()
	var opts []exits.UpstreamOption
	if u != nil && u.RootCAs != nil {
		opts = append(opts, exits.WithRootCAs(u.RootCAs))
	}
	ex, err := exits.NewUpstream(netip.MustParseAddr(ip), "DE", rawURL, e.dialer, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ex.CloseIdle)
	return ex
}

// upstreams are the kinds of upstream proxy, each binding its outgoing connections to its own
// loopback address so the origin tells them apart.
var upstreams = []struct {
	name  string
	bind  string
	start func(t *testing.T, bind string) *upstreamtest.Proxy
}{
	{"http", "127.0.0.6", func(t *testing.T, bind string) *upstreamtest.Proxy {
		return upstreamtest.StartHTTPProxy(t, bind, "up-user", "up-pass")
	}},
	{"https", "127.0.0.8", func(t *testing.T, bind string) *upstreamtest.Proxy {
		return upstreamtest.StartHTTPSProxy(t, bind, "up-user", "up-pass")
	}},
	{"socks5", "127.0.0.7", func(t *testing.T, bind string) *upstreamtest.Proxy {
		return upstreamtest.StartSOCKS5(t, bind)
	}},
}

// eachUpstream runs test as a subtest per kind of upstream, with a fresh env and the upstream
// started; bind is the address the origin sees for that upstream.
func eachUpstream(t *testing.T, test func(t *testing.T, e *upstreamEnv, u *upstreamtest.Proxy, bind string)) {
	for _, up := range upstreams {
		t.Run(up.name, func(t *testing.T) {
			test(t, newUpstreamEnv(t), up.start(t, up.bind), up.bind)
		})
	}
}

// ipThroughTunnel asks the origin for the client IP it sees, over a raw connection from Exit.Dial.
func ipThroughTunnel(t *testing.T, ex *exits.Exit, dest string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := ex.Dial(ctx, dest)
	if err != nil {
		t.Fatalf("Dial(%s): %v", dest, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testTimeout))
	fmt.Fprintf(c, "GET /ip HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", dest)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read answer through the tunnel: %v", err)
	}
	return bodyText(t, resp)
}

// ipThroughRoundTrip asks the origin for the client IP it sees, with a plain HTTP request through
// Exit.RoundTrip.
func ipThroughRoundTrip(t *testing.T, ex *exits.Exit, rawURL string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ex.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip(%s): %v", rawURL, err)
	}
	return bodyText(t, resp)
}

// bodyText reads and closes resp's body and returns it without surrounding space.
func bodyText(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read the origin's answer: %v", err)
	}
	return strings.TrimSpace(string(body))
}

// Raw tunnels (CONNECT) and plain HTTP through each kind of upstream reach the origin, which sees the
// upstream's outgoing address, not the node's; the node itself connects only to the upstream.
func TestUpstreamExitReachesOriginFromUpstreamAddress(t *testing.T) {
	eachUpstream(t, func(t *testing.T, e *upstreamEnv, u *upstreamtest.Proxy, bind string) {
		ex := e.exit(t, "203.0.113.9", u.URL(), u)

		if got := ipThroughTunnel(t, ex, e.originAddr()); got != bind {
			t.Errorf("through Dial, origin saw %s, want the upstream's %s", got, bind)
		}
		_, port, _ := net.SplitHostPort(e.originAddr())
		if got := ipThroughTunnel(t, ex, "origin.test:"+port); got != bind {
			t.Errorf("through Dial to a name, origin saw %s, want %s", got, bind)
		}
		if got := ipThroughRoundTrip(t, ex, e.origin.URL+"/ip"); got != bind {
			t.Errorf("through RoundTrip, origin saw %s, want %s", got, bind)
		}
		if ex.IP != netip.MustParseAddr("203.0.113.9") {
			t.Errorf("Exit.IP = %s, want the configured 203.0.113.9", ex.IP)
		}
		dials := e.rec.Dials()
		for _, d := range dials {
			if d.String() != u.Addr {
				t.Errorf("node dialled %s, want only the upstream %s", d, u.Addr)
			}
		}
		if len(dials) == 0 {
			t.Errorf("no dial recorded: the connection to the upstream bypassed the DialTCP hook")
		}
	})
}

// An upstream that dies makes its exit fail with a connection error (a 502 at the proxy, not a
// timeout); once it is back on the same port, the same exit works again.
func TestUpstreamExitFollowsUpstreamStopAndStart(t *testing.T) {
	eachUpstream(t, func(t *testing.T, e *upstreamEnv, u *upstreamtest.Proxy, bind string) {
		ex := e.exit(t, "203.0.113.9", u.URL(), u)
		if got := ipThroughTunnel(t, ex, e.originAddr()); got != bind {
			t.Fatalf("before the stop, origin saw %s, want %s", got, bind)
		}
		ex.CloseIdle()
		u.Stop()
		if err := dialFails(t, ex, e.originAddr()); !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("error = %v, want the upstream's connection refused", err)
		}
		u.Start()
		if got := ipThroughTunnel(t, ex, e.originAddr()); got != bind {
			t.Errorf("after the restart, origin saw %s, want %s", got, bind)
		}
	})
}

// Wrong credentials for the upstream give a clear error that names the upstream without its password.
func TestUpstreamWrongCredentials(t *testing.T) {
	eachUpstream(t, func(t *testing.T, e *upstreamEnv, u *upstreamtest.Proxy, bind string) {
		ex := e.exit(t, "203.0.113.9", u.URLWith(u.User, "wrong-secret"), u)
		err := dialFails(t, ex, e.originAddr())
		want := "407 Proxy Authentication Required"
		if u.Scheme == "socks5" {
			want = "authentication failed"
		}
		msg := err.Error()
		if !strings.Contains(msg, want) || !strings.Contains(msg, "upstream proxy "+u.Scheme+"://"+u.User+":xxxxx@"+u.Addr) {
			t.Errorf("error = %q, want it to name the upstream (password masked) and say %q", msg, want)
		}
		if strings.Contains(msg, "wrong-secret") {
			t.Errorf("error %q repeats the upstream password", msg)
		}
		var timeout interface{ Timeout() bool }
		if errors.As(err, &timeout) && timeout.Timeout() {
			t.Errorf("error %q reads as a timeout; the proxy would answer 504, not 502", msg)
		}
	})
}

// The egress policy applies before the upstream is asked: internal destinations are refused, and no
// connection at all is made to the upstream for them.
func TestUpstreamExitRefusesInternalDestinations(t *testing.T) {
	dests := []struct{ dest, reason string }{
		{"10.0.0.1:80", "private"},
		{"169.254.169.254:80", "link-local"},
		{"[fd00::1]:80", "private"},
		{"127.0.0.2:80", "loopback"},
		{"intranet.test:80", "private"},
	}
	eachUpstream(t, func(t *testing.T, e *upstreamEnv, u *upstreamtest.Proxy, bind string) {
		ex := e.exit(t, "203.0.113.9", u.URL(), u)
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		for _, d := range dests {
			c, err := ex.Dial(ctx, d.dest)
			var denied *egress.DeniedError
			if !errors.As(err, &denied) || denied.Reason != d.reason {
				if c != nil {
					c.Close()
				}
				t.Errorf("Dial(%s) error = %v, want a %s *egress.DeniedError", d.dest, err, d.reason)
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.dest+"/", nil)
			if resp, err := ex.RoundTrip(req); !errors.As(err, &denied) {
				if resp != nil {
					resp.Body.Close()
				}
				t.Errorf("RoundTrip(%s) error = %v, want *egress.DeniedError", d.dest, err)
			}
		}
		if dials := e.rec.Dials(); len(dials) != 0 {
			t.Errorf("connections made: %v, want none (not even to the upstream %s)", dials, u.Addr)
		}
		// The control: the same recorder sees the upstream dialled for an allowed destination.
		if got := ipThroughTunnel(t, ex, e.originAddr()); got != bind {
			t.Errorf("allowed destination: origin saw %s, want %s", got, bind)
		}
		if dials := e.rec.Dials(); len(dials) != 1 || dials[0].String() != u.Addr {
			t.Errorf("connections made for the allowed destination: %v, want one to the upstream %s", dials, u.Addr)
		}
	})
}

// An https:// upstream's certificate is verified: without the test CA (system roots only) the
// handshake fails, and the error says so.
func TestUpstreamHTTPSVerifiesCertificate(t *testing.T) {
	e := newUpstreamEnv(t)
	u := upstreamtest.StartHTTPSProxy(t, "127.0.0.8", "up-user", "up-pass")
	ex := e.exit(t, "203.0.113.9", u.URL(), nil)
	if err := dialFails(t, ex, e.originAddr()); !strings.Contains(err.Error(), "TLS handshake") || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("error = %q, want a TLS certificate error", err)
	}
}

// silentUpstream accepts connections and reads them but never answers, like a hung upstream. It
// reports each accepted connection on the returned channel.
func silentUpstream(t *testing.T) (addr string, accepted <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan struct{}, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ch <- struct{}{}
			go func() {
				defer c.Close()
				io.Copy(io.Discard, c) // until the node gives up and closes
			}()
		}
	}()
	return ln.Addr().String(), ch
}

// Every handshake step runs under the caller's deadline, and a caller that cancels (a client that
// left) ends the handshake with context.Canceled, which the proxy does not report as a failure.
func TestUpstreamHandshakeHasDeadline(t *testing.T) {
	for _, scheme := range []string{"http", "socks5"} {
		t.Run(scheme+"/deadline", func(t *testing.T) {
			e := newUpstreamEnv(t)
			addr, _ := silentUpstream(t)
			ex := e.exit(t, "203.0.113.9", scheme+"://u:p@"+addr, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			err := dialBounded(t, ex, ctx, e.originAddr())
			var netErr net.Error
			if !errors.Is(err, context.DeadlineExceeded) && !(errors.As(err, &netErr) && netErr.Timeout()) {
				t.Errorf("error = %v, want a timeout", err)
			}
		})
		t.Run(scheme+"/cancel", func(t *testing.T) {
			e := newUpstreamEnv(t)
			addr, accepted := silentUpstream(t)
			ex := e.exit(t, "203.0.113.9", scheme+"://u:p@"+addr, nil)
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-accepted: // the handshake has begun
				case <-time.After(testTimeout):
				}
				cancel()
			}()
			err := dialBounded(t, ex, ctx, e.originAddr())
			if !errors.Is(err, context.Canceled) {
				t.Errorf("error = %v, want context.Canceled", err)
			}
		})
	}
}

// dialBounded dials dest through ex under ctx, closes what it got, and returns Dial's error. It
// fails the test if Dial does not return within testTimeout, whatever ctx says.
func dialBounded(t *testing.T, ex *exits.Exit, ctx context.Context, dest string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		c, err := ex.Dial(ctx, dest)
		if c != nil {
			c.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(testTimeout):
		t.Fatal("Dial did not return: the handshake has no deadline")
		return nil
	}
}

// dialFails dials dest through ex and returns the error, failing the test if the dial succeeds.
func dialFails(t *testing.T, ex *exits.Exit, dest string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	err := dialBounded(t, ex, ctx, dest)
	if err == nil {
		t.Fatalf("Dial(%s) through %s succeeded, want an error", dest, ex)
	}
	return err
}

// An upstream may send the destination's first bytes in the same packet as its CONNECT answer (a
// server that speaks first, like SSH). They reach the caller, and the caller's half-close reaches
// the upstream.
func TestUpstreamKeepsBytesSentWithConnectAnswer(t *testing.T) {
	e := newUpstreamEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	gotEOF := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(testTimeout))
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\nSSH-2.0-banner\r\n")
		rest, _ := io.ReadAll(br) // ends at the node's half-close
		gotEOF <- req.Header.Get("Proxy-Authorization") + "|" + string(rest)
	}()
	ex := e.exit(t, "203.0.113.9", "http://u:p@"+ln.Addr().String(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := ex.Dial(ctx, e.originAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testTimeout))
	banner, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || banner != "SSH-2.0-banner\r\n" {
		t.Fatalf("first bytes = %q, %v; want the banner sent with the CONNECT answer", banner, err)
	}
	io.WriteString(c, "client-hello")
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		t.Fatalf("tunnel %T cannot half-close", c)
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	select {
	case got := <-gotEOF:
		if want := "Basic dTpw|client-hello"; got != want { // base64("u:p")
			t.Errorf("upstream got %q, want %q", got, want)
		}
	case <-time.After(testTimeout):
		t.Fatal("the upstream never saw the half-close")
	}
}

// Logs and errors show an upstream exit's URL with the password masked; a bad URL is refused without
// repeating it.
func TestUpstreamDescriptionRedactsPassword(t *testing.T) {
	d := &egress.Dialer{Policy: &egress.Policy{}}
	ex, err := exits.NewUpstream(netip.MustParseAddr("203.0.113.9"), "", "socks5://bob:hunter2@10.1.2.3:1080", d)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ex.String(), "203.0.113.9 via socks5://bob:xxxxx@10.1.2.3:1080"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := fmt.Sprint(exits.NewLocal(netip.MustParseAddr("127.0.0.2"), "", d)); got != "127.0.0.2" {
		t.Errorf("local exit String() = %q, want 127.0.0.2", got)
	}
	for _, raw := range []string{"ftp://bob:hunter2@10.1.2.3:21", "http://bob:hunter2@:3128", "http://bob:hunter2@10.1.2.3:port"} {
		_, err := exits.NewUpstream(netip.MustParseAddr("203.0.113.9"), "", raw, d)
		if err == nil {
			t.Errorf("NewUpstream(%s) succeeded, want an error", raw)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("NewUpstream error %q repeats the password", err)
		}
	}
}
