package exits

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/exitmesh/exitmesh/internal/peek"
)

// Limits of an exit's idle origin connections.
const (
	maxIdlePerKey     = 256  // per login and origin; more concurrent requests than that dial afresh
	maxIdlePerExit    = 1024 // across logins and origins: the least recently used one goes first
	originIdleTimeout = 90 * time.Second
)

// Login is whose requests an origin connection carries: an account, or one of its sub-accounts.
// Connections are never shared between logins, so an origin cannot link two customers by the
// connection their requests arrive on, and whatever one login's origin leaves on a connection can
// reach only that login.
type Login struct {
	AccountID int64
	SubID     int64 // 0 for the account itself
}

// OriginKey is what a kept-alive origin connection may be reused for: the same login, through the
// same exit, to the same origin (scheme and host:port as the client wrote them).
type OriginKey struct {
	Login    Login
	Scheme   string // "http" or "https"
	HostPort string
}

// OriginConn is a connection from an exit to an origin that carries plain HTTP requests, one at a
// time, with its buffers. Release hands it back to its exit for the next request of the same login to
// that origin.
type OriginConn struct {
	net.Conn               // TLS for an https:// origin
	R        *bufio.Reader // the origin's responses
	W        *bufio.Writer // requests to the origin
	// Unsolicited is how many idle connections to the same origin were found holding bytes nobody
	// asked for, and closed, before this one was handed out (for the metrics).
	Unsolicited int

	raw      syscall.Conn // the socket, to check an idle connection is still open; nil when unknown
	tls      bool         // Conn is TLS: decrypted bytes may wait in it, out of the socket's sight
	key      OriginKey    // which idle list it goes back to
	idleAt   time.Time    // when it was last released
	reused   bool         // it carried a request before this one
	exit     *Exit        // where it goes back to
	released bool         // Release was called: a second call is a no-op

	prev, next *OriginConn // neighbours in the pool's list of idle connections, while idle
}

// Reused reports whether the connection carried a request before, so it may have been closed by the
// origin just as it was taken: a request that failed on it before any answer may be retried on a
// new connection.
func (c *OriginConn) Reused() bool { return c.reused }

// Release returns c to its exit's idle connections when reusable (the exchange on it ended cleanly
// and both sides left it open), and closes it otherwise. A connection with bytes left in its reader
// after the answer ended is closed whatever the caller says: the origin sent more than it was asked
// for, and those bytes would be taken for the next answer. unsolicited reports that case. It is safe
// to call twice.
func (c *OriginConn) Release(reusable bool) (unsolicited bool) {
	if c.released {
		return false
	}
	c.released = true
	if reusable && c.raw != nil {
		if c.R.Buffered() == 0 {
			c.exit.origins.put(c)
			return false
		}
		unsolicited = true
	}
	c.Conn.Close()
	return unsolicited
}

// The state of an idle connection when it is taken.
type idleState uint8

const (
	stateIdle        idleState = iota // open, nothing to read: it may carry a request
	stateClosed                       // the origin closed it or it failed
	stateUnsolicited                  // bytes are waiting that no request asked for
)

// state looks at an idle connection before it is reused. Every connection is looked at: an origin
// that writes a second answer some time after the first must not have it taken for the answer to the
// next request. One system call (a non-blocking peek) per reuse is the price.
func (c *OriginConn) state() idleState {
	if c.R.Buffered() > 0 {
		return stateUnsolicited
	}
	if c.tls { // whole records the TLS layer read but did not hand out yet
		// A read past its deadline returns what is buffered and never waits: Go checks the deadline
		// before any system call.
		c.Conn.SetReadDeadline(aLongTimeAgo)
		_, err := c.R.Peek(1)
		c.Conn.SetReadDeadline(time.Time{})
		switch {
		case err == nil:
			return stateUnsolicited
		case !errors.Is(err, os.ErrDeadlineExceeded):
			return stateClosed
		}
	}
	switch {
	case peek.Idle(c.raw):
		return stateIdle
	case peek.Closed(c.raw):
		return stateClosed
	}
	return stateUnsolicited
}

// originPool is an exit's idle origin connections. Its lock is never held during I/O.
type originPool struct {
	mu   sync.Mutex                  // guards the following fields
	idle map[OriginKey][]*OriginConn // per key, least recently released first
	// lru holds every idle connection, least recently released first: the front is the first to
	// go when the exit holds maxIdlePerExit, and the first to time out. It is also the front of its
	// key's list.
	lru originList
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
func (p *originPool) take(key OriginKey, now time.Time) *OriginConn {
	var stale []*OriginConn
	defer closeAll(stale)
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.idle[key]
	if len(list) == 0 {
		return nil
	}
	c := list[len(list)-1]
	if now.Sub(c.idleAt) >= p.idleTimeout() { // the most recent is stale, and so are the others
		for _, s := range list {
			p.lru.remove(s)
		}
		stale = list
		delete(p.idle, key)
		return nil
	}
	list[len(list)-1] = nil
	if list = list[:len(list)-1]; len(list) == 0 {
		delete(p.idle, key)
	} else {
		p.idle[key] = list
	}
	p.lru.remove(c)
	return c
}

// put keeps c for reuse, making room by closing the least recently used connection to its origin
// for its login, or of the whole exit.
func (p *originPool) put(c *OriginConn) {
	var evicted []*OriginConn
	p.mu.Lock()
	if p.idle == nil {
		p.idle = make(map[OriginKey][]*OriginConn)
	}
	c.idleAt = time.Now() // under the lock: the lists stay in order of idleAt
	if list := p.idle[c.key]; len(list) >= maxIdlePerKey {
		evicted = append(evicted, p.removeOldest(list[0]))
	}
	if p.lru.len >= maxIdlePerExit {
		evicted = append(evicted, p.removeOldest(p.lru.front))
	}
	p.idle[c.key] = append(p.idle[c.key], c)
	p.lru.pushBack(c)
	if p.sweeper == nil {
		p.sweeper = time.AfterFunc(p.idleTimeout(), p.sweep)
	}
	p.mu.Unlock()
	closeAll(evicted)
}

// removeOldest takes c, the least recently released connection of its key, out of the pool.
func (p *originPool) removeOldest(c *OriginConn) *OriginConn {
	list := p.idle[c.key]
	if len(list) == 1 {
		delete(p.idle, c.key)
	} else {
		p.idle[c.key] = append(list[:0], list[1:]...)
		list[len(list)-1] = nil
	}
	p.lru.remove(c)
	return c
}

// sweep closes the connections idle past the timeout and runs again when the next one will be,
// while any are left.
func (p *originPool) sweep() {
	now := time.Now()
	timeout := p.idleTimeout()
	var stale []*OriginConn
	p.mu.Lock()
	for p.lru.front != nil && now.Sub(p.lru.front.idleAt) >= timeout {
		stale = append(stale, p.removeOldest(p.lru.front))
	}
	switch {
	case p.sweeper == nil: // closeIdle ran meanwhile
	case p.lru.front == nil:
		p.sweeper = nil
	default:
		p.sweeper.Reset(p.lru.front.idleAt.Add(timeout).Sub(now))
	}
	p.mu.Unlock()
	closeAll(stale)
}

// closeIdle closes every idle connection.
func (p *originPool) closeIdle() {
	var idle []*OriginConn
	p.mu.Lock()
	for c := p.lru.front; c != nil; c = c.next {
		idle = append(idle, c)
	}
	p.idle, p.lru = nil, originList{}
	if p.sweeper != nil {
		p.sweeper.Stop()
		p.sweeper = nil
	}
	p.mu.Unlock()
	closeAll(idle)
}

func closeAll(conns []*OriginConn) {
	for _, c := range conns {
		c.Conn.Close()
	}
}

// originList is a doubly linked list of idle connections through their prev and next fields.
type originList struct {
	front, back *OriginConn
	len         int
}

func (l *originList) pushBack(c *OriginConn) {
	c.prev, c.next = l.back, nil
	if l.back != nil {
		l.back.next = c
	} else {
		l.front = c
	}
	l.back = c
	l.len++
}

func (l *originList) remove(c *OriginConn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.front = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		l.back = c.prev
	}
	c.prev, c.next = nil, nil
	l.len--
}

// OriginConn returns a connection from this exit to the origin key names, for key's login: an idle
// one that is still open with nothing to read when there is one, else a new one dialled (and, for
// https, TLS-verified) under ctx by deadline.
func (e *Exit) OriginConn(ctx context.Context, deadline time.Time, key OriginKey) (*OriginConn, error) {
	unsolicited := 0
	for range maxIdlePerKey {
		c := e.origins.take(key, time.Now())
		if c == nil {
			break
		}
		switch c.state() {
		case stateIdle:
			c.reused, c.released, c.Unsolicited = true, false, unsolicited
			return c, nil
		case stateUnsolicited:
			unsolicited++
		}
		c.Conn.Close()
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	conn, err := e.Dial(ctx, key.HostPort)
	if err != nil {
		return nil, err
	}
	c := &OriginConn{Conn: conn, key: key, exit: e, raw: socketOf(conn), Unsolicited: unsolicited}
	if key.Scheme == "https" {
		host, _, _ := net.SplitHostPort(key.HostPort)
		tc := tls.Client(conn, &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		c.Conn, c.tls = tc, true
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
