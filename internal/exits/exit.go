// Package exits holds a proxy server's pool of exits — the ways out to the internet — and chooses one
// for each request, honouring the client's steering (pinned, preferred and excluded IPs, country).
package exits

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/exitmesh/exitmesh/internal/egress"
)

// Exit is one way out: a local source address the node binds outgoing connections to, or an upstream
// proxy that exits from IP (see NewUpstream). It keeps connections to origins alive, so plain HTTP
// requests reuse them per exit (OriginConn); its http.Transport serves the health checks.
type Exit struct {
	IP      netip.Addr // the address origins see; reported in X-ProxyMesh-IP
	Country string     // upper-case ISO code, or ""
	// Where the exit is, for steering; set before the exit joins a pool, each in the one case
	// requests are compared in so that choosing an exit never converts.
	Region string // upper-case ISO 3166-2 ("US-CA"), or ""
	City   string // lower-case slug ("los_angeles"), or ""
	ASN    uint32 // 0: unknown

	dialer    *egress.Dialer
	transport *http.Transport
	origins   originPool
	upstream  *upstream // nil for a local exit
	health    health
}

// NewLocal returns an exit that binds ip as the source address of every connection it makes, through
// dialer's egress policy.
func NewLocal(ip netip.Addr, country string, dialer *egress.Dialer) *Exit {
	return newExit(ip, country, dialer)
}

func newExit(ip netip.Addr, country string, dialer *egress.Dialer) *Exit {
	e := &Exit{IP: ip, Country: country, dialer: dialer}
	e.transport = &http.Transport{
		Proxy: nil, // never HTTP_PROXY from the environment
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return e.Dial(ctx, addr)
		},
		DisableCompression:     true, // pass the client's Accept-Encoding and the body through untouched
		MaxIdleConns:           1024,
		MaxIdleConnsPerHost:    64,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 1 << 20,
	}
	return e
}

// String describes the exit for logs: its IP, and for an upstream exit the proxy's URL with the
// password redacted.
func (e *Exit) String() string {
	if e.upstream == nil {
		return e.IP.String()
	}
	return e.IP.String() + " via " + e.upstream.String()
}

// Dial connects to hostport (a CONNECT target or an origin) from this exit.
func (e *Exit) Dial(ctx context.Context, hostport string) (net.Conn, error) {
	c, err := e.dialer.Dial(ctx, e.IP, hostport)
	if err != nil {
		return nil, fmt.Errorf("exit %s: %w", e.IP, err)
	}
	return c, nil
}

// RoundTrip sends an HTTP request to its origin from this exit (the health checks' way; the proxy
// forwards through OriginConn).
func (e *Exit) RoundTrip(req *http.Request) (*http.Response, error) {
	return e.transport.RoundTrip(req)
}

// CloseIdle closes the exit's idle origin connections.
func (e *Exit) CloseIdle() {
	e.transport.CloseIdleConnections()
	e.origins.closeIdle()
}

// Via describes the upstream proxy the exit leaves through, without its password; "" for a local
// address.
func (e *Exit) Via() string {
	if e.upstream == nil {
		return ""
	}
	return e.upstream.String()
}
