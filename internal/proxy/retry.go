package proxy

import (
	"context"
	"errors"
	"net"
	"syscall"
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/exits"
)

// attempts chooses the exits of one request or tunnel: the first as the client steered, then, each
// time the chosen exit fails to connect before any byte of the request was sent, another one, at
// most Config.Retries times. A pinned exit (X-ProxyMesh-IP, -ip-) and a strict session are never
// moved: the client asked for that exit and no other. The failed exits are excluded as if the client
// had sent them in X-ProxyMesh-Not-IP, so a session moves to the exit that served.
type attempts struct {
	s        *Server
	key      exits.SessionKey
	steer    exits.Steering
	left     int       // retries still allowed
	deadline time.Time // the client's whole wait for the origin
	choice   exits.Choice
}

// newAttempts makes the first choice of exit for a request of p steered by steer, whose Timeout is
// set.
func (s *Server) newAttempts(p *auth.Principal, steer exits.Steering) (attempts, error) {
	a := attempts{s: s, key: exits.SessionKey{AccountID: p.AccountID, SubID: p.SubID, ID: steer.Session},
		steer: steer, deadline: time.Now().Add(steer.Timeout)}
	if !steer.IP.IsValid() && !steer.Strict {
		a.left = s.cfg.Retries
	}
	var err error
	if a.choice, err = s.cfg.Sessions.Choose(s.pool.Load(), a.key, a.steer); err != nil {
		return a, err
	}
	s.metrics.ExitUsed(a.choice.Exit.IP)
	return a, nil
}

// connectDeadline is when the connect of the current attempt gives up: while other exits may be
// tried, each attempt gets an equal share of the time left, so that an exit that never answers
// leaves time to try the next one.
func (a *attempts) connectDeadline() time.Time {
	if a.left == 0 {
		return a.deadline
	}
	return time.Now().Add(time.Until(a.deadline) / time.Duration(a.left+1))
}

// retry reports whether another exit was chosen after the current one failed to connect with err;
// a.choice is then that exit.
func (a *attempts) retry(err error) bool {
	if a.left == 0 || !exitFailed(err) || !time.Now().Before(a.deadline) {
		return false
	}
	a.left--
	steer := a.steer
	steer.NotIPs = append(steer.NotIPs[:len(steer.NotIPs):len(steer.NotIPs)], a.choice.Exit.IP)
	c, cerr := a.s.cfg.Sessions.Choose(a.s.pool.Load(), a.key, steer)
	if cerr != nil {
		return false // no other exit: the client hears of the failure it had
	}
	a.steer = steer
	a.s.log.Debug("exit failed to connect; trying another", "exit", a.choice.Exit.IP, "next", c.Exit.IP, "err", err)
	c.NotFound = a.choice.NotFound
	a.choice = c
	a.s.metrics.ExitRetries.Inc()
	a.s.metrics.ExitUsed(c.Exit.IP)
	return true
}

// exitFailed reports whether err is a connect that failed in a way another exit may not: refused,
// unreachable, an exit address gone, or a connect that timed out. A name that does not resolve, a
// destination the egress policy refuses, or a client that left fail the same on every exit.
func exitFailed(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return false
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ECONNREFUSED, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.EADDRNOTAVAIL, syscall.ETIMEDOUT:
			return true
		}
		return false
	}
	var netErr net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout()
}

// dial connects to target (a tunnel's destination) from the chosen exit, or from others while
// retry allows; a.choice is the exit of the last attempt.
func (a *attempts) dial(cc *clientConn, target string) (net.Conn, error) {
	for {
		ctx, cancel := context.WithDeadline(cc.ctx, a.connectDeadline())
		upstream, err := a.choice.Exit.Dial(ctx, target)
		cancel()
		if err == nil || !a.retry(err) {
			return upstream, err
		}
	}
}
