// Package connlimit bounds what one client IP or one account holds open at once: connections per
// source IP, counted when a connection is accepted and when it closes, and requests and tunnels in
// flight per account, counted around each one. A nil limiter limits nothing.
package connlimit

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
)

// ipShards spreads the per-IP counts over several locks, so that accepts on several listeners and
// CPUs rarely wait for each other.
const ipShards = 16

// PerIP counts open connections per source IP, up to a limit. An IPv6 client counts by its /64: one
// host or site routinely holds a whole /64 and could otherwise take a fresh address per connection.
// An entry is removed when its last connection closes, so the table holds only the sources with a
// connection open.
type PerIP struct {
	max    int32
	shards [ipShards]ipShard
}

type ipShard struct {
	mu     sync.Mutex
	counts map[netip.Addr]int32
}

// NewPerIP returns a limiter allowing limit connections per IP (limit > 0).
func NewPerIP(limit int) *PerIP {
	l := &PerIP{max: int32(limit)}
	for i := range l.shards {
		l.shards[i].counts = make(map[netip.Addr]int32)
	}
	return l
}

func (l *PerIP) shard(ip netip.Addr) *ipShard {
	b := ip.As16()
	return &l.shards[(b[15]^b[7])%ipShards] // the host part of IPv4 and the subnet of an IPv6 /64
}

// source is what a connection from ip counts as: the address itself, or its /64 for IPv6.
func source(ip netip.Addr) netip.Addr {
	if ip.Is4() {
		return ip
	}
	p, _ := ip.Prefix(64)
	return p.Addr()
}

// Acquire counts a connection from ip and reports whether it is within the limit; only then must
// Release follow. An invalid ip (not a TCP peer) is not counted and always allowed.
func (l *PerIP) Acquire(ip netip.Addr) bool {
	if l == nil || !ip.IsValid() {
		return true
	}
	ip = source(ip)
	sh := l.shard(ip)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	n := sh.counts[ip]
	if n >= l.max {
		return false
	}
	sh.counts[ip] = n + 1
	return true
}

// Release forgets a connection from ip that Acquire allowed.
func (l *PerIP) Release(ip netip.Addr) {
	if l == nil || !ip.IsValid() {
		return
	}
	ip = source(ip)
	sh := l.shard(ip)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if n := sh.counts[ip] - 1; n > 0 {
		sh.counts[ip] = n
	} else {
		delete(sh.counts, ip)
	}
}

// Open returns how many connections from ip (from its /64, for IPv6) are open now.
func (l *PerIP) Open(ip netip.Addr) int {
	if l == nil || !ip.IsValid() {
		return 0
	}
	ip = source(ip)
	sh := l.shard(ip)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return int(sh.counts[ip])
}

// PerAccount counts requests and tunnels in flight per account, up to a limit. It is consulted on
// every request, so it takes no lock once an account has its counter: counters are kept for every
// account seen, which the store bounds, not the clients.
type PerAccount struct {
	max    int32
	counts sync.Map // account ID (int64) → *atomic.Int32
}

// NewPerAccount returns a limiter allowing limit requests and tunnels in flight per account (limit > 0).
func NewPerAccount(limit int) *PerAccount { return &PerAccount{max: int32(limit)} }

// Acquire counts one request or tunnel of account id and reports whether it is within the limit;
// only then must Release follow.
func (l *PerAccount) Acquire(id int64) bool { return l.AcquireWithin(id, 0) }

// AcquireWithin is Acquire with a lower limit of the account's own (its plan's; 0: none).
func (l *PerAccount) AcquireWithin(id int64, limit int) bool {
	if l == nil {
		return true
	}
	v, ok := l.counts.Load(id)
	if !ok {
		v, _ = l.counts.LoadOrStore(id, new(atomic.Int32))
	}
	most := l.max
	if limit > 0 && int32(limit) < most {
		most = int32(limit)
	}
	c := v.(*atomic.Int32)
	if c.Add(1) > most {
		c.Add(-1)
		return false
	}
	return true
}

// Release ends a request or tunnel of account id that Acquire allowed.
func (l *PerAccount) Release(id int64) {
	if l == nil {
		return
	}
	if v, ok := l.counts.Load(id); ok {
		v.(*atomic.Int32).Add(-1)
	}
}

// InFlight returns how many requests and tunnels of account id are in flight now.
func (l *PerAccount) InFlight(id int64) int {
	if l == nil {
		return 0
	}
	if v, ok := l.counts.Load(id); ok {
		return int(v.(*atomic.Int32).Load())
	}
	return 0
}

// Listener applies a PerIP limit to a listener served by net/http: a connection over the limit is
// closed as soon as it is accepted, before anything is read from it, and Accept waits for the next.
// The connections it returns release their count when closed.
type Listener struct {
	net.Listener
	Limit   *PerIP
	Refused func() // called for each connection refused, to count it
	// HeadTimedOut, if set, is called once for a connection whose read hits its deadline before its
	// first request was read — a TLS handshake or request head slower than the server's
	// ReadHeaderTimeout — when the server's ConnState hook is ConnState. Later deadlines are keep-alive
	// idle ends and net/http's own wake-ups, not counted.
	HeadTimedOut func()
}

// Accept returns the next connection within the limit.
func (ln *Listener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := SourceIP(c)
		if ln.Limit.Acquire(ip) {
			lc := &conn{Conn: c, limit: ln.Limit, ip: ip, headTimedOut: ln.HeadTimedOut}
			lc.fresh.Store(true)
			return lc, nil
		}
		c.Close()
		if ln.Refused != nil {
			ln.Refused()
		}
	}
}

// conn is a connection counted by a Listener's limit until it is closed.
type conn struct {
	net.Conn
	limit        *PerIP
	ip           netip.Addr
	released     atomic.Bool
	headTimedOut func()
	fresh        atomic.Bool // no request read yet
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && c.headTimedOut != nil && errors.Is(err, os.ErrDeadlineExceeded) && c.fresh.CompareAndSwap(true, false) {
		c.headTimedOut()
	}
	return n, err
}

// ConnState is the http.Server ConnState hook that tells a Listener's connections when their first
// request has been read (StateActive), so that a deadline is no longer the head's.
func ConnState(c net.Conn, state http.ConnState) {
	if state == http.StateNew {
		return
	}
	// Guards above this package's conn (TLS, the httphead check) each give the connection below.
	for {
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = u.NetConn()
	}
	if lc, ok := c.(*conn); ok {
		lc.fresh.Store(false)
	}
}

// Close closes the connection and, the first time, releases its count: net/http may close a
// connection more than once.
func (c *conn) Close() error {
	err := c.Conn.Close()
	if c.released.CompareAndSwap(false, true) {
		c.limit.Release(c.ip)
	}
	return err
}

// SourceIP returns a TCP connection's peer address, unmapped; invalid for any other connection.
func SourceIP(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}
