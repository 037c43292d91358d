package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/httphead"
	"github.com/exitmesh/exitmesh/internal/metrics"
	"github.com/exitmesh/exitmesh/internal/ratelimit"
)

// Resource limits: what one client IP or account may hold open, and how slow a client may be. Each
// refusal or cut is counted in exitmesh_limit_hits_total; a keep-alive connection closed after
// timeouts.idle is the normal end of a connection and is not counted.

// admit takes a new connection if its source IP is within limits.connections_per_ip. One over the
// limit is closed on the accepting goroutine, before anything is read from it, so it holds no
// goroutine and no buffer.
func (s *Server) admit(c net.Conn) *clientConn {
	src := clientIP(c)
	if !s.cfg.ConnsPerIP.Acquire(src) {
		c.Close()
		s.metrics.Limits.Hit(metrics.LimitConnectionsPerIP)
		return nil
	}
	cc := s.track(c, src)
	if cc == nil {
		s.cfg.ConnsPerIP.Release(src)
	}
	return cc
}

// countHeadRefusal counts a request head that a limit refused or cut: too large, with too many
// fields, or not complete within timeouts.read_header (such a client gets no answer: its request was
// slow, not bad).
func (s *Server) countHeadRefusal(herr *httphead.Error, err error) {
	switch {
	case herr == httphead.ErrTooLarge:
		s.metrics.Limits.Hit(metrics.LimitMaxHeaderBytes)
	case herr == httphead.ErrTooManyFields:
		s.metrics.Limits.Hit(metrics.LimitMaxHeaderFields)
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.metrics.Limits.Hit(metrics.LimitReadHeader)
	}
}

// acquireAccount counts a request or tunnel of p's account (sub-accounts count toward it) against
// limits.connections_per_account, or refuses it.
func (s *Server) acquireAccount(p *auth.Principal) *refusal {
	rates := p.Rates()
	if ok, wait := s.cfg.Rates.Allow(p.AccountID, rates.Rate); !ok {
		s.metrics.Limits.Hit(metrics.LimitRate)
		return errRateLimited(wait)
	}
	if s.cfg.ConnsPerAccount.AcquireWithin(p.AccountID, rates.Connections) {
		return nil
	}
	s.metrics.Limits.Hit(metrics.LimitConnectionsPerAccount)
	return errTooManyConnections
}

// pace makes the connection's transfers for p keep to its plan's speed, until unpace.
func (cc *clientConn) pace(p *auth.Principal) {
	cc.up, cc.down = cc.s.cfg.Rates.Pacers(p.AccountID, p.Rates().Speed)
}

func (cc *clientConn) unpace() { cc.up, cc.down = nil, nil }

func (s *Server) releaseAccount(p *auth.Principal) { s.cfg.ConnsPerAccount.Release(p.AccountID) }

// clientWriter is what a connection's bufio.Writer writes to. Each write must make progress within
// timeouts.write: a client that takes no byte of an answer for that long is dropped, however long the
// answer, while one that reads slowly but steadily is not. The deadline is pushed forward once per
// write of up to 32 KiB, not per byte, and the loop runs again only when a deadline passed.
type clientWriter struct{ cc *clientConn }

func (w clientWriter) Write(p []byte) (int, error) {
	if w.cc.down != nil { // the plan's speed, for the bytes of this request's answer
		if err := ratelimit.Wait(w.cc.ctx, w.cc.down, len(p)); err != nil {
			return 0, err
		}
	}
	c, timeout := w.cc.conn, w.cc.s.cfg.WriteTimeout
	written := 0
	for {
		c.SetWriteDeadline(time.Now().Add(timeout))
		n, err := c.Write(p[written:])
		written += n
		switch {
		case err == nil:
			return written, nil
		case !errors.Is(err, os.ErrDeadlineExceeded):
			return written, err
		case n == 0:
			w.cc.s.metrics.Limits.Hit(metrics.LimitWrite)
			return written, err
		}
		// Some bytes left before the deadline: the client is reading, only slowly.
	}
}

// pacedBody is a request body read at its plan's speed.
type pacedBody struct {
	io.Reader
	io.Closer
}
