package upstreamtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/certs"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/egress"
	"github.com/exitmesh/exitmesh/internal/exits"
	"github.com/exitmesh/exitmesh/internal/proxy"
)

// proxyName is the test upstream's proxy server name, which its one account is authorized for.
const proxyName = "upstream"

// StartHTTPProxy starts an HTTP proxy on a free 127.0.0.1 port that requires Basic credentials
// user:pass and binds its outgoing connections to bindIP. It is exitmesh's own proxy server, so it
// speaks CONNECT as a real proxy does; it reaches loopback destinations only. It is killed when the
// test ends.
func StartHTTPProxy(t testing.TB, bindIP, user, pass string) *Proxy {
	t.Helper()
	return startHTTP(t, "http", bindIP, user, pass, nil)
}

// StartHTTPSProxy is StartHTTPProxy behind TLS, with a certificate for 127.0.0.1 that only the
// returned proxy's RootCAs trusts.
func StartHTTPSProxy(t testing.TB, bindIP, user, pass string) *Proxy {
	t.Helper()
	cert, certPEM, _, err := certs.SelfSigned("127.0.0.1")
	if err != nil {
		t.Fatalf("upstreamtest: certificate: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	p := startHTTP(t, "https", bindIP, user, pass, &tls.Config{Certificates: []tls.Certificate{cert}})
	p.RootCAs = roots
	return p
}

func startHTTP(t testing.TB, scheme, bindIP, user, pass string, tlsConfig *tls.Config) *Proxy {
	t.Helper()
	bind, err := netip.ParseAddr(bindIP)
	if err != nil || !bind.IsLoopback() {
		t.Fatalf("upstreamtest: bind address %q: want a loopback IP", bindIP)
	}
	hash, err := auth.HashPassword(pass)
	if err != nil {
		t.Fatalf("upstreamtest: %v", err)
	}
	view := auth.NewView(nil)
	view.Load(domain.Snapshot{Version: 1, Accounts: []domain.Account{
		{ID: 1, Username: user, PasswordHash: hash, Proxies: []string{proxyName}},
	}})
	pool := exits.NewPool([]*exits.Exit{exits.NewLocal(bind, "", loopbackDialer())})
	p := &Proxy{Scheme: scheme, User: user, Pass: pass}
	p.launch = func() (func(), error) {
		return launchHTTP(p.Addr, tlsConfig, proxy.Config{Name: proxyName, Pool: pool, Accounts: view})
	}
	p.run(t)
	return p
}

// loopbackDialer reaches loopback addresses only, and only by IP: the node asks its upstream for an
// IP it already checked, and a test never sends a packet off this machine.
func loopbackDialer() *egress.Dialer {
	return &egress.Dialer{
		Policy: &egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		Lookup: func(_ context.Context, host string) ([]netip.Addr, error) {
			return nil, fmt.Errorf("upstreamtest: the test upstream resolves no names (%q)", host)
		},
		DialTCP: (&DialRecorder{}).Dial,
	}
}

// launchHTTP serves a new proxy server on addr and returns a function that kills it: it closes the
// listener and every accepted connection, tunnels included, before shutting the server down.
func launchHTTP(addr string, tlsConfig *tls.Config, cfg proxy.Config) (stop func(), err error) {
	raw, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	tracked := &trackingListener{Listener: raw, conns: make(map[net.Conn]struct{})}
	var ln net.Listener = tracked
	if tlsConfig != nil {
		ln = tls.NewListener(tracked, tlsConfig)
	}
	srv := proxy.New(cfg)
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()
	stop = func() {
		tracked.closeAll()
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		srv.Shutdown(ctx)
		select {
		case <-served:
		case <-ctx.Done():
		}
	}
	if err := waitAccepting(addr, served); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// trackingListener remembers the connections it accepted, so closeAll can cut them like a crash.
type trackingListener struct {
	net.Listener
	mu     sync.Mutex // guards the following fields
	conns  map[net.Conn]struct{}
	closed bool
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	l.conns[c] = struct{}{}
	return c, nil
}

// closeAll closes the listener and every connection it accepted.
func (l *trackingListener) closeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.Listener.Close()
	for c := range l.conns {
		c.Close()
	}
	clear(l.conns)
}
