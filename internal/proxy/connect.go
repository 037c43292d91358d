package proxy

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/exits"
	"github.com/exitmesh/exitmesh/internal/relay"
)

// handshakeWrite bounds writing the 200 line to a client that does not read.
const handshakeWrite = 10 * time.Second

// serveConnect opens a tunnel to r.Host through the chosen exit, answers 200 with the exit's IP, and
// relays bytes both ways until the tunnel ends.
func (s *Server) serveConnect(w http.ResponseWriter, r *http.Request, p *auth.Principal, c exits.Choice, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	upstream, err := c.Exit.Dial(ctx, r.Host)
	cancel()
	if err != nil {
		s.log.Debug("connect failed", "target", r.Host, "exit", c.Exit.IP, "err", err)
		s.refuse(w, failure(err), c.Exit, c.NotFound)
		return
	}
	client, buffered, err := http.NewResponseController(w).Hijack()
	if err != nil {
		upstream.Close()
		s.log.Warn("cannot take over the client connection", "err", err)
		return
	}
	// The server's header read deadline still applies to the hijacked connection; the tunnel's own
	// idle deadline replaces it.
	client.SetDeadline(time.Now().Add(handshakeWrite))
	head := "HTTP/1.1 200 Connection established\r\n" + headerExitIP + ": " + c.Exit.IP.String() + "\r\n"
	if c.NotFound.IsValid() {
		head += headerNotFound + ": " + c.NotFound.String() + "\r\n"
	}
	if _, err := client.Write([]byte(head + "\r\n")); err != nil {
		client.Close()
		upstream.Close()
		return
	}
	client.SetDeadline(time.Time{})

	// Bytes the client sent right behind the CONNECT head (a pipelined TLS ClientHello) are already
	// in the server's read buffer; they go first.
	var early int64
	if n := buffered.Reader.Buffered(); n > 0 {
		b, _ := buffered.Reader.Peek(n)
		upstream.SetWriteDeadline(time.Now().Add(handshakeWrite))
		if _, err := upstream.Write(b); err != nil {
			client.Close()
			upstream.Close()
			return
		}
		early = int64(n)
	}

	if !s.trackTunnel(client) {
		client.Close()
		upstream.Close()
		return
	}
	defer s.untrackTunnel(client)
	s.metrics.Tunnels.Inc()
	s.metrics.ActiveTunnels.Inc()
	in, out := relay.Pipe(client, upstream, s.cfg.TunnelIdle)
	in += early
	s.metrics.ActiveTunnels.Dec()
	s.metrics.BytesIn.Add(float64(in))
	s.metrics.BytesOut.Add(float64(out))
	if s.cfg.Usage != nil {
		s.cfg.Usage.Add(p.AccountID, p.SubID, s.cfg.Name, domain.UsageCounts{BytesIn: in, BytesOut: out, Tunnels: 1})
	}
	s.log.Debug("tunnel closed", "target", r.Host, "exit", c.Exit.IP, "login", p.Login, "in", in, "out", out)
}

// trackTunnel registers a tunnel's client connection so Shutdown can wait for it and, past its
// deadline, close it. It refuses (false) once Shutdown has begun.
func (s *Server) trackTunnel(c net.Conn) bool {
	s.tunnelsMu.Lock()
	defer s.tunnelsMu.Unlock()
	if s.closing {
		return false
	}
	s.tunnels[c] = struct{}{}
	return true
}

func (s *Server) untrackTunnel(c net.Conn) {
	s.tunnelsMu.Lock()
	defer s.tunnelsMu.Unlock()
	delete(s.tunnels, c)
	if len(s.tunnels) == 0 && s.drained != nil {
		close(s.drained)
		s.drained = nil
	}
}
