// Package upstreamtest starts real upstream proxies on loopback for tests of upstream-proxy exits: an
// HTTP CONNECT proxy (exitmesh's own proxy server, optionally behind TLS) and a SOCKS5 server
// (Debian's microsocks). Each binds its outgoing connections to a loopback address of the test's
// choosing, so an origin can tell which upstream a request came through, and each can be stopped and
// started again on the same port, to simulate an exit that dies and comes back.
package upstreamtest

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"
)

// readyTimeout bounds the wait for a started upstream to accept connections. It keeps a broken setup
// from hanging a test; it is not a performance threshold.
const readyTimeout = 10 * time.Second

// Proxy is a running upstream proxy. Its address stays the same across Stop and Start.
type Proxy struct {
	Scheme  string // http, https or socks5
	Addr    string // 127.0.0.1:port
	User    string
	Pass    string
	RootCAs *x509.CertPool // https: the pool that trusts the proxy's certificate; nil otherwise

	t      testing.TB
	launch func() (stop func(), err error) // starts the server on Addr

	mu   sync.Mutex // guards the following field
	stop func()     // nil while stopped
}

// URL returns the proxy's URL with its credentials.
func (p *Proxy) URL() string { return p.URLWith(p.User, p.Pass) }

// URLWith returns the proxy's URL with other credentials, e.g. a wrong password.
func (p *Proxy) URLWith(user, pass string) string {
	u := url.URL{Scheme: p.Scheme, Host: p.Addr}
	if user != "" {
		u.User = url.UserPassword(user, pass)
	}
	return u.String()
}

// Stop kills the proxy: its listener and every connection through it close at once. Stopping a
// stopped proxy does nothing.
func (p *Proxy) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop != nil {
		p.stop()
		p.stop = nil
	}
}

// Start starts a stopped proxy again on the same address and returns once it accepts connections.
// It must be called from the test's goroutine; starting a running proxy does nothing.
func (p *Proxy) Start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop != nil {
		return
	}
	stop, err := p.launch()
	if err != nil {
		p.t.Fatalf("upstreamtest: restart %s proxy on %s: %v", p.Scheme, p.Addr, err)
	}
	p.stop = stop
}

// run starts p for the first time on a free port, retrying with another port when one is taken
// between choosing it and binding it, and stops it when the test ends.
func (p *Proxy) run(t testing.TB) {
	t.Helper()
	p.t = t
	var err error
	for range 3 {
		if p.Addr, err = freePort(); err != nil {
			break
		}
		if p.stop, err = p.launch(); err == nil {
			t.Cleanup(p.Stop)
			return
		}
	}
	t.Fatalf("upstreamtest: start %s proxy: %v", p.Scheme, err)
}

// freePort returns a 127.0.0.1 address no listener holds right now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitAccepting dials addr until it answers, exited reports that the server is gone, or readyTimeout
// passes.
func waitAccepting(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return err
		default:
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// secret returns a random credential.
func secret() string { return rand.Text()[:16] }

// DialRecorder is an egress.Dialer DialTCP hook for tests: it records every connection asked for and
// makes it for real only to a loopback address, so no test sends a packet off this machine.
type DialRecorder struct {
	mu    sync.Mutex // guards dials
	dials []netip.AddrPort
}

// Dial records remote, refuses it unless it is loopback, and otherwise connects to it from local.
func (r *DialRecorder) Dial(ctx context.Context, local, remote netip.AddrPort) (net.Conn, error) {
	r.mu.Lock()
	r.dials = append(r.dials, remote)
	r.mu.Unlock()
	if !remote.Addr().IsLoopback() {
		return nil, fmt.Errorf("upstreamtest: refusing non-loopback %s", remote)
	}
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(local)}
	return d.DialContext(ctx, "tcp", remote.String())
}

// Dials returns the destinations asked for so far, in order.
func (r *DialRecorder) Dials() []netip.AddrPort {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.dials)
}
