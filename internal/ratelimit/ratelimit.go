// Package ratelimit keeps each account's request rate and byte pacing on one node: the plan's rate
// and speed limits. Every connection of an account, sub-accounts included, draws on the same
// limiters, so a customer cannot multiply the limit by opening more connections. Limits hold per
// node: a network of N nodes lets an account through at up to N times the plan's figures.
package ratelimit

import (
	"context"
	"io"
	"math"
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Accounts holds the limiters of the accounts seen, created on first use. Like the per-account
// connection counters, they are kept for every account seen, which the store bounds, not clients.
type Accounts struct {
	m sync.Map // account ID (int64) → *account
}

type account struct {
	mu       sync.Mutex // guards the fields below when they change with the plan
	rate     int
	requests *rate.Limiter
	speed    int64
	up, down *rate.Limiter
}

func (a *Accounts) of(id int64) *account {
	v, ok := a.m.Load(id)
	if !ok {
		v, _ = a.m.LoadOrStore(id, &account{})
	}
	return v.(*account)
}

// Allow takes one request or tunnel open of account id under a limit of perSecond (0: none), with a
// burst of one second's worth. When it is refused, retryAfter is how long until one is allowed.
func (a *Accounts) Allow(id int64, perSecond int) (ok bool, retryAfter time.Duration) {
	if perSecond <= 0 {
		return true, 0
	}
	ac := a.of(id)
	ac.mu.Lock()
	if ac.requests == nil || ac.rate != perSecond { // new, or the plan changed
		ac.rate, ac.requests = perSecond, rate.NewLimiter(rate.Limit(perSecond), perSecond)
	}
	lim := ac.requests
	ac.mu.Unlock()
	r := lim.Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		return false, d
	}
	return true, 0
}

// Pacers returns the limiters that pace account id's bytes to speed bytes per second, one for each
// direction; nil, nil when speed is 0.
func (a *Accounts) Pacers(id int64, speed int64) (up, down *rate.Limiter) {
	if speed <= 0 {
		return nil, nil
	}
	ac := a.of(id)
	ac.mu.Lock()
	defer ac.mu.Unlock()
	if ac.up == nil || ac.speed != speed {
		ac.speed = speed
		ac.up, ac.down = newPacer(speed), newPacer(speed)
	}
	return ac.up, ac.down
}

// newPacer paces to bytesPerSecond with a burst of an eighth of a second's bytes (at least 16 KiB,
// a few packets), small enough that a transfer's average is the limit within a few percent.
func newPacer(bytesPerSecond int64) *rate.Limiter {
	burst := min(max(bytesPerSecond/8, 16<<10), math.MaxInt32)
	return rate.NewLimiter(rate.Limit(bytesPerSecond), int(burst))
}

// RetryAfter is d in whole seconds, at least 1, for a Retry-After header.
func RetryAfter(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// wait takes n bytes from lim, in bursts; it fails when ctx ends first.
func wait(ctx context.Context, lim *rate.Limiter, n int) error {
	for n > 0 {
		k := min(n, lim.Burst())
		if err := lim.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// Conn paces c: what is read from it waits on in, what is written to it on out (either nil: not
// paced). Waits end when ctx does.
func Conn(ctx context.Context, c net.Conn, in, out *rate.Limiter) net.Conn {
	if in == nil && out == nil {
		return c
	}
	return &pacedConn{Conn: c, ctx: ctx, in: in, out: out}
}

type pacedConn struct {
	net.Conn
	ctx     context.Context
	in, out *rate.Limiter
}

func (c *pacedConn) Read(p []byte) (int, error) {
	if c.in == nil {
		return c.Conn.Read(p)
	}
	n, err := c.Conn.Read(p[:min(len(p), c.in.Burst())])
	if werr := wait(c.ctx, c.in, n); werr != nil && err == nil {
		err = werr
	}
	return n, err
}

func (c *pacedConn) Write(p []byte) (int, error) {
	if c.out == nil {
		return c.Conn.Write(p)
	}
	written := 0
	for len(p) > 0 {
		k := min(len(p), c.out.Burst())
		if err := c.out.WaitN(c.ctx, k); err != nil {
			return written, err
		}
		n, err := c.Conn.Write(p[:k])
		written += n
		if err != nil {
			return written, err
		}
		p = p[k:]
	}
	return written, nil
}

// CloseWrite half-closes the connection underneath, as the relay does at a side's EOF.
func (c *pacedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// Reader paces what is read from r on lim (nil: not paced).
func Reader(ctx context.Context, r io.Reader, lim *rate.Limiter) io.Reader {
	if lim == nil {
		return r
	}
	return &pacedReader{r: r, ctx: ctx, lim: lim}
}

type pacedReader struct {
	r   io.Reader
	ctx context.Context
	lim *rate.Limiter
}

func (r *pacedReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p[:min(len(p), r.lim.Burst())])
	if werr := wait(r.ctx, r.lim, n); werr != nil && err == nil {
		err = werr
	}
	return n, err
}

// Wait takes n bytes from lim (nil: none), for a writer that paces itself.
func Wait(ctx context.Context, lim *rate.Limiter, n int) error {
	if lim == nil {
		return nil
	}
	return wait(ctx, lim, n)
}
