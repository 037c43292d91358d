package proxy

import (
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/exits"
	"github.com/exitmesh/exitmesh/internal/metrics"
	"github.com/exitmesh/exitmesh/internal/ratelimit"
	"github.com/exitmesh/exitmesh/internal/relay"
)

// handshakeWrite bounds writing the 200 line to a client that does not read.
const handshakeWrite = 10 * time.Second

// serveConnect opens a tunnel to r.Host through the chosen exit (or another, see attempts), answers 200 with the exit's IP, and
// starts relaying bytes both ways until the tunnel ends. tunnel reports whether the tunnel started
// (the connection then carries nothing more); keep, whether a refused CONNECT's connection may carry
// another request.
func (s *Server) serveConnect(cc *clientConn, r *http.Request, p *auth.Principal, a *attempts) (keep, tunnel bool) {
	upstream, err := a.dial(cc, r.Host)
	if err != nil {
		s.log.Debug("connect failed", "target", r.Host, "exit", a.choice.Exit.IP, "err", err)
		return cc.refuse(r, failure(err), a.choice.Exit, a.choice.NotFound), false
	}
	return false, s.startTunnel(cc, upstream, r, p, a.choice)
}

// startTunnel answers 200 to a CONNECT whose upstream connection is open and starts the relay; it
// reports whether the tunnel started.
func (s *Server) startTunnel(cc *clientConn, upstream net.Conn, r *http.Request, p *auth.Principal, c exits.Choice) bool {
	target := r.Host
	cc.setUpstream(upstream)            // Shutdown closes it with the client's, until the tunnel ends
	if cc.state.Load() == stateClosed { // Shutdown gave up on the connection while it dialled
		upstream.Close()
		return false
	}
	w := cc.bw // its writes to a client that does not read end after timeouts.write
	w.WriteString("HTTP/1.1 200 Connection established\r\n" + headerExitIP + ": " + c.Exit.IP.String() + "\r\n")
	if c.NotFound.IsValid() {
		w.WriteString(headerNotFound + ": " + c.NotFound.String() + "\r\n")
	}
	w.WriteString("\r\n")
	if err := w.Flush(); err != nil {
		upstream.Close()
		return false
	}
	cc.entryOutcome(http.StatusOK, c.Exit.IP, "")
	return s.relayTunnel(cc, upstream, p, c.Exit.IP, target)
}

// relayTunnel starts relaying between the client, whose request for the tunnel was answered, and
// upstream; it reports whether the tunnel started.
func (s *Server) relayTunnel(cc *clientConn, upstream net.Conn, p *auth.Principal, exit netip.Addr, target string) bool {
	cc.conn.SetDeadline(time.Time{}) // the head's and the answer's; the relay sets its own

	// Bytes the client sent right behind the CONNECT head (a pipelined TLS ClientHello) are already
	// in the connection's read buffer; they go first.
	var early int64
	if n := cc.br.Buffered(); n > 0 {
		b, _ := cc.br.Peek(n)
		upstream.SetWriteDeadline(time.Now().Add(handshakeWrite))
		if _, err := upstream.Write(b); err != nil {
			upstream.Close()
			return false
		}
		cc.br.Discard(n)
		early = int64(n)
	}
	cc.releaseBuffers() // an idle tunnel holds no buffer: it splices, or copies through pooled ones

	// The relay runs on goroutines of their own, which start with small stacks: this one, grown by
	// reading and authenticating the request, ends here. An idle tunnel costs two small stacks.
	cc.tunnel = true
	go s.runTunnel(cc, upstream, p, exit, target, early)
	return true
}

// runTunnel relays a tunnel's bytes both ways until it ends, then closes and accounts for it, and
// releases its account's count.
func (s *Server) runTunnel(cc *clientConn, upstream net.Conn, p *auth.Principal, exit netip.Addr, target string, early int64) {
	defer s.end(cc)
	defer s.releaseAccount(p)
	s.metrics.Tunnels.Inc()
	s.metrics.ActiveTunnels.Inc()
	var moved relay.Counters
	metered := s.startTransfer(p, exit, func() (int64, int64) { return early + moved.Up.Load(), moved.Down.Load() }, cc.closeAll)
	in, out, idled := relay.Pipe(ratelimit.Conn(cc.ctx, cc.conn, cc.up, cc.down), upstream, s.cfg.TunnelIdle, &moved)
	in += early
	if idled {
		s.metrics.Limits.Hit(metrics.LimitTunnelIdle)
	}
	s.metrics.ActiveTunnels.Dec()
	s.metrics.BytesIn.Add(float64(in))
	s.metrics.BytesOut.Add(float64(out))
	if s.cfg.Usage != nil {
		restIn, restOut := s.finishTransfer(metered, in, out)
		s.cfg.Usage.Add(usageLogin(p), s.cfg.Name, exit, domain.UsageCounts{BytesIn: restIn, BytesOut: restOut, Tunnels: 1})
	}
	cc.endEntry(in, out)
	s.log.Debug("tunnel closed", "target", target, "exit", exit, "login", p.Login, "in", in, "out", out)
}
