package exits

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/exitmesh/exitmesh/internal/peek"
)

// Limits of an exit's idle origin connections.
const (
	maxIdlePerOrigin  = 256 // per origin; more concurrent requests than that dial afresh
	originIdleTimeout = 90 * time.Second
	// trustIdle is how long a connection released in good order is taken for still open without
	// looking (one system call per request saved under load). Origins close idle connections after
	// seconds, not milliseconds; an idempotent request that meets one closed anyway is retried.
	trustIdle = time.Second
)

// OriginConn is a connection from an exit to an origin that carries plain HTTP requests, one at a
// time, with its buffers. Release hands it back to its exit for the next request to that origin.
type OriginConn struct {
	net.Conn               // TLS for an https:// origin
	R        *bufio.Reader // the origin's responses
	W        *bufio.Writer // requests to the origin
	raw      syscall.Conn  // the socket, to check an idle connection is still open; nil when unknown
	key      originKey     // which idle list it goes back to
	idleAt   time.Time     // when it was last released
	reused   bool          // it carried a request before this one
	exit     *Exit         // where it goes back to
	released bool          // Release was called: a second call is a no-op
}

// Reused reports whether the connection carried a request before, so it may have been closed by the
// origin just as it was taken: a request that failed on it before any answer may be retried on a
// new connection.
func (c *OriginConn) Reused() bool { return c.reused }

// Release returns c to its exit's idle connections when reusable (the exchange on it ended cleanly
// and both sides left it open), and closes it otherwise. It is safe to call twice.
func (c *OriginConn) Release(reusable bool) {
	if c.released {
		return
	}
	c.released = true
	if reusable && c.raw != nil {
		c.exit.origins.put(c)
	} else {
		c.Conn.Close()
	}
}

type originKey struct {
	scheme, hostport string
}

// originPool is an exit's idle origin connections, most recently used last. Its lock is never held
// during I/O.
type originPool struct {
	mu   sync.Mutex // guards idle and sweeper
	idle map[originKey][]*OriginConn
	// sweeper closes connections idle past the timeout whichever origin they go to, so that one
	// no request goes to again does not keep its socket forever; nil while none are idle.
	sweeper *time.Timer
	timeout time.Duration // the idle timeout; 0 means originIdleTimeout (tests shorten it)
}

func (p *originPool) idleTimeout() time.Duration {
	if p.timeout > 0 {
		return p.timeout
	}
	return originIdleTimeout
}

// take returns the most recently released connection to key, or nil. Connections idle past the
// timeout are closed on the way.
func (p *originPool) take(key originKey, now time.Time) *OriginConn {
	var stale []*OriginConn
	defer func() {
		for _, c := range stale {
			c.Conn.Close()
		}
	}()
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.idle[key]
	for len(list) > 0 {
		c := list[len(list)-1]
		list[len(list)-1] = nil
		list = list[:len(list)-1]
		if now.Sub(c.idleAt) < p.idleTimeout() {
			p.idle[key] = list
			return c
		}
		stale = append(stale, c)
	}
	delete(p.idle, key)
	return nil
}

// put keeps c for reuse, making room by closing the least recently used connection to its origin.
func (p *originPool) put(c *OriginConn) {
	c.idleAt = time.Now()
	var oldest *OriginConn
	p.mu.Lock()
	if p.idle == nil {
		p.idle = make(map[originKey][]*OriginConn)
	}
	list := p.idle[c.key]
	// The least recently used connection goes when the list is full or has idled out.
	if len(list) > 0 && (len(list) >= maxIdlePerOrigin || c.idleAt.Sub(list[0].idleAt) >= p.idleTimeout()) {
		oldest = list[0]
		list = append(list[:0], list[1:]...)
	}
	p.idle[c.key] = append(list, c)
	if p.sweeper == nil {
		p.sweeper = time.AfterFunc(p.idleTimeout(), p.sweep)
	}
	p.mu.Unlock()
	if oldest != nil {
		oldest.Conn.Close()
	}
}

// sweep closes the connections idle past the timeout and runs again when the next one will be,
// while any are left.
func (p *originPool) sweep() {
	now := time.Now()
	timeout := p.idleTimeout()
	var stale []*OriginConn
	var next time.Time // when the longest-idle connection left times out
	p.mu.Lock()
	for key, list := range p.idle {
		n := 0 // the list runs from the longest idle to the most recently released
		for n < len(list) && now.Sub(list[n].idleAt) >= timeout {
			n++
		}
		stale = append(stale, list[:n]...)
		if n == len(list) {
			delete(p.idle, key)
			continue
		}
		if n > 0 {
			p.idle[key] = append(list[:0], list[n:]...)
			clear(list[len(list)-n:])
		}
		if at := list[0].idleAt.Add(timeout); next.IsZero() || at.Before(next) {
			next = at
		}
	}
	switch {
	case p.sweeper == nil: // closeIdle ran meanwhile
	case len(p.idle) == 0:
		p.sweeper = nil
	default:
		p.sweeper.Reset(next.Sub(now))
	}
	p.mu.Unlock()
	for _, c := range stale {
		c.Conn.Close()
	}
}

// closeIdle closes every idle connection.
func (p *originPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	if p.sweeper != nil {
		p.sweeper.Stop()
		p.sweeper = nil
	}
	p.mu.Unlock()
	for _, list := range idle {
		for _, c := range list {
			c.Conn.Close()
		}
	}
}

// OriginConn returns a connection from this exit to the origin scheme://hostport ("http" or
// "https"): an idle one that is still open when there is one, else a new one dialled (and, for
// https, TLS-verified) under ctx by deadline.
func (e *Exit) OriginConn(ctx context.Context, deadline time.Time, scheme, hostport string) (*OriginConn, error) {
	key := originKey{scheme, hostport}
	now := time.Now()
	for range maxIdlePerOrigin {
		c := e.origins.take(key, now)
		if c == nil {
			break
		}
		if time.Since(c.idleAt) < trustIdle || peek.Idle(c.raw) {
			c.reused, c.released = true, false
			return c, nil
		}
		c.Conn.Close() // the origin closed it, or sent what nobody asked for
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	conn, err := e.Dial(ctx, hostport)
	if err != nil {
		return nil, err
	}
	c := &OriginConn{Conn: conn, key: key, exit: e, raw: socketOf(conn)}
	if scheme == "https" {
		host, _, _ := net.SplitHostPort(hostport)
		tc := tls.Client(conn, &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		c.Conn = tc
	}
	c.R = bufio.NewReader(c.Conn)
	c.W = bufio.NewWriter(c.Conn)
	return c, nil
}

// socketOf returns the socket under conn whose receive queue tells whether an idle connection to an
// origin is still open: conn itself, or the connection to the upstream proxy a tunnel goes through.
// It returns nil when there is none (the connection is then not kept for reuse).
func socketOf(conn net.Conn) syscall.Conn {
	switch c := conn.(type) {
	case *tunnelConn:
		if len(c.pending) == 0 {
			return socketOf(c.raw)
		}
	case syscall.Conn:
		return c
	}
	return nil
}
