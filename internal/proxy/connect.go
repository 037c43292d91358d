package proxy

import (
	"context"
	"net/http"
	"net/netip"
	"sync"
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
	// Register before Hijack: until then http.Server.Shutdown waits for this connection, so a
	// shutdown cannot slip between the 200 and the registration and kill the tunnel undrained.
	tun := s.track()
	if tun == nil {
		upstream.Close()
		s.refuse(w, errShuttingDown, nil, netip.Addr{})
		return
	}
	defer s.untrack(tun)
	client, buffered, err := http.NewResponseController(w).Hijack()
	if err != nil {
		upstream.Close()
		s.log.Warn("cannot take over the client connection", "err", err)
		return
	}
	if !tun.attach(func() { client.Close() }) {
		client.Close()
		upstream.Close()
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

// inFlight is a forwarded request or an open CONNECT tunnel as Shutdown sees it.
type inFlight struct {
	mu     sync.Mutex // guards the following fields
	cut    func()     // ends it early: closes a tunnel's client connection, cancels a request
	closed bool
}

// attach records how to cut it short; it returns false if Shutdown already closed it.
func (f *inFlight) attach(cut func()) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.cut = cut
	return true
}

// close cuts it short, now or, once attached, then.
func (f *inFlight) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	if f.cut != nil {
		f.cut()
	}
}

// track registers a request or tunnel so Shutdown can wait for it and, past its deadline, close it.
// It returns nil once Shutdown has begun.
func (s *Server) track() *inFlight {
	s.inFlightMu.Lock()
	defer s.inFlightMu.Unlock()
	if s.closing {
		return nil
	}
	f := &inFlight{}
	s.inFlight[f] = struct{}{}
	return f
}

// untrack ends what track registered, after it recorded its usage.
func (s *Server) untrack(f *inFlight) {
	s.inFlightMu.Lock()
	defer s.inFlightMu.Unlock()
	delete(s.inFlight, f)
	if len(s.inFlight) == 0 && s.drained != nil {
		close(s.drained)
		s.drained = nil
	}
}
