package exits

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"golang.org/x/net/proxy"

	"github.com/exitmesh/exitmesh/internal/egress"
)

// defaultHandshakeTimeout bounds reaching an upstream proxy and its handshake when the caller's
// context ends later or never: the HTTP transport dials under the request's context, which has no
// deadline of its own.
const defaultHandshakeTimeout = 30 * time.Second

// maxConnectHead bounds the head of an upstream's answer to CONNECT, so a broken upstream cannot make
// the node buffer without end.
const maxConnectHead = 64 << 10

// defaultPorts are used when an upstream URL names no port, as Go's own proxy support does.
var defaultPorts = map[string]string{"http": "80", "https": "443", "socks5": "1080"}

// UpstreamOption adjusts an upstream exit.
type UpstreamOption func(*upstream)

// WithRootCAs verifies an https:// upstream's certificate against roots instead of the system's
// roots; tests use it to trust their own CA.
func WithRootCAs(roots *x509.CertPool) UpstreamOption {
	return func(u *upstream) { u.roots = roots }
}

// upstream is the proxy an exit leaves through.
type upstream struct {
	scheme   string         // http, https or socks5
	host     string         // the proxy's host name or IP, for TLS verification
	addr     string         // the proxy's host:port
	redacted string         // the URL with its password masked: the only form that is printed
	basic    string         // http(s): the Proxy-Authorization value, or "" without credentials
	socks    *proxy.Auth    // socks5: username and password, or nil without credentials
	roots    *x509.CertPool // nil: the system's roots
	base     *egress.Dialer // connects to the proxy itself: no policy, but the DialTCP hook
}

func (u *upstream) String() string { return u.redacted }

// NewUpstream returns an exit that leaves through the upstream proxy at rawURL (http://, https:// or
// socks5://, with optional user:password) and that origins see as ip. The egress policy applies as
// for a local exit: dialer resolves and checks each destination here, and the upstream is asked to
// connect to the approved IP:port, never to a name it would resolve again. Like a local exit, it
// reaches only destinations of ip's family. The connection to the upstream itself goes to the
// operator's address without the policy's checks, through dialer's DialTCP hook when it has one.
func NewUpstream(ip netip.Addr, country, rawURL string, dialer *egress.Dialer, opts ...UpstreamOption) (*Exit, error) {
	u, err := parseUpstream(rawURL)
	if err != nil {
		return nil, err
	}
	for _, o := range opts {
		o(u)
	}
	u.base = dialer
	through := *dialer // the same policy and resolver; only the last step, the dial, changes
	through.DialTCP = func(ctx context.Context, _, remote netip.AddrPort) (net.Conn, error) {
		return u.dial(ctx, remote.String())
	}
	e := newExit(ip, country, &through)
	e.upstream = u
	return e, nil
}

// parseUpstream reads an upstream URL. Its errors show the URL only with the password masked.
func parseUpstream(raw string) (*upstream, error) {
	pu, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("upstream proxy: not a valid URL")
	}
	port, ok := defaultPorts[pu.Scheme]
	switch {
	case !ok:
		return nil, fmt.Errorf("upstream proxy %s: scheme must be http, https or socks5", pu.Redacted())
	case pu.Hostname() == "":
		return nil, fmt.Errorf("upstream proxy %s: missing host", pu.Redacted())
	}
	if pu.Port() != "" {
		port = pu.Port()
	}
	u := &upstream{
		scheme:   pu.Scheme,
		host:     pu.Hostname(),
		addr:     net.JoinHostPort(pu.Hostname(), port),
		redacted: pu.Redacted(),
	}
	if pu.User != nil {
		pw, _ := pu.User.Password()
		u.basic = "Basic " + base64.StdEncoding.EncodeToString([]byte(pu.User.Username()+":"+pw))
		u.socks = &proxy.Auth{User: pu.User.Username(), Password: pw}
	}
	return u, nil
}

// dial opens a tunnel through the upstream to target, an IP:port the egress policy approved.
func (u *upstream) dial(ctx context.Context, target string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, defaultHandshakeTimeout) // keeps ctx's deadline if earlier
	defer cancel()
	var c net.Conn
	var err error
	if u.scheme == "socks5" {
		c, err = u.dialSOCKS5(ctx, target)
	} else {
		c, err = u.dialHTTP(ctx, target)
	}
	// A handshake cut short by ctx fails as an I/O timeout on the connection; say why it was cut, so
	// a client that left is not reported as a slow upstream.
	if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		err = fmt.Errorf("%w: %w", err, ctx.Err())
	}
	return c, err
}

// dialHTTP connects to an http:// or https:// upstream and asks it to CONNECT to target.
func (u *upstream) dialHTTP(ctx context.Context, target string) (net.Conn, error) {
	conn, err := u.base.DialTrusted(ctx, u.addr)
	if err != nil {
		return nil, fmt.Errorf("upstream proxy %s: %w", u, err)
	}
	var tunnel net.Conn
	err = withDeadline(ctx, conn, func() (hsErr error) {
		tunnel, hsErr = u.handshakeHTTP(ctx, conn, target)
		return hsErr
	})
	if err != nil {
		conn.Close()
		return nil, err
	}
	return tunnel, nil
}

// handshakeHTTP speaks TLS to an https:// upstream, then sends CONNECT and reads the answer.
func (u *upstream) handshakeHTTP(ctx context.Context, conn net.Conn, target string) (net.Conn, error) {
	if u.scheme == "https" {
		tc := tls.Client(conn, &tls.Config{ServerName: u.host, RootCAs: u.roots, MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("upstream proxy %s: TLS handshake: %w", u, err)
		}
		conn = tc
	}
	head := "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n"
	if u.basic != "" {
		head += "Proxy-Authorization: " + u.basic + "\r\n"
	}
	if _, err := io.WriteString(conn, head+"\r\n"); err != nil {
		return nil, fmt.Errorf("upstream proxy %s: send CONNECT: %w", u, err)
	}
	br := bufio.NewReader(io.LimitReader(conn, maxConnectHead))
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return nil, fmt.Errorf("upstream proxy %s: read CONNECT answer: %w", u, err)
	}
	// RFC 9110 §9.3.6: any 2xx answer to CONNECT means the tunnel is open.
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("upstream proxy %s refused CONNECT to %s: %s", u, target, resp.Status)
	}
	// A server that speaks first (SSH, SMTP) may already have sent bytes; they are in br, not lost.
	if n := br.Buffered(); n > 0 {
		early, _ := br.Peek(n)
		return &tunnelConn{Conn: conn, raw: conn, pending: append([]byte(nil), early...)}, nil
	}
	return conn, nil
}

// dialSOCKS5 asks a socks5:// upstream to connect to target, with username/password authentication
// when the URL has a user.
func (u *upstream) dialSOCKS5(ctx context.Context, target string) (net.Conn, error) {
	var raw net.Conn // the connection to the upstream: it alone can half-close the tunnel
	forward := dialFunc(func(ctx context.Context, _, _ string) (net.Conn, error) {
		c, err := u.base.DialTrusted(ctx, u.addr)
		raw = c
		return c, err
	})
	d, err := proxy.SOCKS5("tcp", u.addr, u.socks, forward)
	if err != nil {
		return nil, fmt.Errorf("upstream proxy %s: %w", u, err)
	}
	cd, ok := d.(proxy.ContextDialer)
	if !ok { // x/net's SOCKS5 dialer has always had DialContext; without it, ctx would not bound the handshake
		return nil, fmt.Errorf("upstream proxy %s: SOCKS5 client %T cannot dial under a context", u, d)
	}
	// The SOCKS client applies ctx's deadline and cancellation to its handshake itself.
	c, err := cd.DialContext(ctx, "tcp", target)
	if err != nil {
		return nil, fmt.Errorf("upstream proxy %s: %w", u, err)
	}
	return &tunnelConn{Conn: c, raw: raw}, nil
}

// dialFunc is a proxy.ContextDialer made of a function.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

func (f dialFunc) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return f(ctx, network, addr)
}

// Dial is never used (the SOCKS client prefers DialContext); it is bounded all the same.
func (f dialFunc) Dial(network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), defaultHandshakeTimeout)
	defer cancel()
	return f(ctx, network, addr)
}

// aLongTimeAgo is a deadline in the past: setting it makes blocked reads and writes return at once.
var aLongTimeAgo = time.Unix(1, 0)

// withDeadline runs handshake with ctx's deadline and cancellation applied to conn, then clears them:
// a tunnel's own idle deadline takes over from there.
func withDeadline(ctx context.Context, conn net.Conn, handshake func() error) error {
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(aLongTimeAgo) })
	err := handshake()
	if !stop() && err == nil { // ctx ended as the handshake finished: the conn may be past its deadline
		return ctx.Err()
	}
	conn.SetDeadline(time.Time{})
	return err
}

// tunnelConn is a connection through an upstream proxy. It first returns the bytes the upstream sent
// right behind its CONNECT answer, and it passes CloseWrite to the connection to the upstream, so a
// client's half-close still reaches the destination through the tunnel.
type tunnelConn struct {
	net.Conn
	raw     net.Conn
	pending []byte
}

func (c *tunnelConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes the tunnel, or reports errors.ErrUnsupported (the relay then closes it).
func (c *tunnelConn) CloseWrite() error {
	if cw, ok := c.raw.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}
