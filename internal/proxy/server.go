// Package proxy is the data plane of one proxy server (a "location"): it authenticates each client,
// chooses an exit, and forwards HTTP requests or opens CONNECT tunnels through that exit.
package proxy

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/bans"
	"github.com/exitmesh/exitmesh/internal/egress"
	"github.com/exitmesh/exitmesh/internal/exits"
	"github.com/exitmesh/exitmesh/internal/metrics"
	"github.com/exitmesh/exitmesh/internal/usage"
)

// Config is what a proxy server needs. Zero durations take the defaults noted.
type Config struct {
	Name     string // the proxy server's name, as accounts authorize it
	Pool     *exits.Pool
	Accounts *auth.View
	Usage    *usage.Recorder // nil: usage is not recorded
	Bans     *bans.Tracker   // shared with the node's other servers; nil: nobody is banned
	Sessions *exits.Sessions // sticky sessions; nil: a table with SessionTTL and MaxSessions
	Metrics  *metrics.Metrics
	Log      *slog.Logger

	OriginTimeout    time.Duration // default 30s: connect + first byte, unless the client sends X-ProxyMesh-Timeout
	MaxOriginTimeout time.Duration // default 120s: cap on X-ProxyMesh-Timeout
	TunnelIdle       time.Duration // default 10m
	ReadHeader       time.Duration // default 10s
	Idle             time.Duration // default 90s: keep-alive idle on client connections
	MaxHeaderBytes   int           // default 64 KiB
	SessionTTL       time.Duration // default 10m: a sticky session's life after its last request
	MaxSessions      int           // default 100,000 sessions remembered
}

func (c *Config) applyDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.OriginTimeout, 30*time.Second)
	def(&c.MaxOriginTimeout, 120*time.Second)
	def(&c.TunnelIdle, 10*time.Minute)
	def(&c.ReadHeader, 10*time.Second)
	def(&c.Idle, 90*time.Second)
	def(&c.SessionTTL, 10*time.Minute)
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = 64 << 10
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = 100_000
	}
	if c.Sessions == nil {
		c.Sessions = exits.NewSessions(c.SessionTTL, c.MaxSessions, nil)
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = metrics.New()
	}
}

// Server serves one proxy server's listener.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics.Proxy
	pool    atomic.Pointer[exits.Pool]
	http    *http.Server
	fwd     *forwarder

	inFlightMu sync.Mutex // guards the following fields
	inFlight   map[*inFlight]struct{}
	closing    bool
	drained    chan struct{} // closed when the last request or tunnel ends during Shutdown
}

// New returns a proxy server; call Serve to start it.
func New(cfg Config) *Server {
	cfg.applyDefaults()
	s := &Server{
		cfg:      cfg,
		log:      cfg.Log.With("proxy", cfg.Name),
		metrics:  cfg.Metrics.Proxy(cfg.Name),
		inFlight: make(map[*inFlight]struct{}),
	}
	s.pool.Store(cfg.Pool)
	s.http = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: cfg.ReadHeader,
		IdleTimeout:       cfg.Idle,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){}, // HTTP/1.1 only: CONNECT needs Hijack
	}
	s.fwd = newForwarder(s)
	return s
}

// Name returns the proxy server's name.
func (s *Server) Name() string { return s.cfg.Name }

// SetPool replaces the exits; requests and tunnels in flight keep the exit they chose.
func (s *Server) SetPool(p *exits.Pool) {
	old := s.pool.Swap(p)
	if old != nil && old != p {
		old.CloseIdle()
	}
}

// Pool returns the exits in use now.
func (s *Server) Pool() *exits.Pool { return s.pool.Load() }

// Serve accepts clients on ln until Shutdown. It returns http.ErrServerClosed after Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.http.Serve(ln) }

// Shutdown stops accepting, waits for requests and tunnels to finish until ctx ends, then closes
// the connections of those still open and waits until each has recorded its usage.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	s.inFlightMu.Lock()
	s.closing = true
	var drained chan struct{}
	if len(s.inFlight) > 0 {
		drained = make(chan struct{})
		s.drained = drained
	}
	s.inFlightMu.Unlock()
	if drained != nil {
		select {
		case <-drained:
		case <-ctx.Done():
			s.http.Close() // forwarded requests' connections, unless upgraded: cut below
			s.inFlightMu.Lock()
			for f := range s.inFlight {
				f.close()
			}
			s.inFlightMu.Unlock()
			<-drained
		}
	}
	s.pool.Load().CloseIdle()
	return err
}

// ServeHTTP handles one proxy request: CONNECT or an absolute-URI HTTP request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	src := clientIP(r)
	if left, banned := s.cfg.Bans.Banned(src); banned {
		s.refuse(w, errBanned(left), nil, netip.Addr{})
		return
	}
	connect := r.Method == http.MethodConnect
	if rf := checkTarget(r, connect); rf != nil {
		s.refuse(w, rf, nil, netip.Addr{})
		return
	}
	p, userSteer, rf := s.authenticate(r, src)
	if rf != nil {
		if rf == errAuthFailed {
			s.countAuthFailure(src)
		}
		s.refuse(w, rf, nil, netip.Addr{})
		return
	}
	if rf := s.checkBandwidth(p); rf != nil {
		s.refuse(w, rf, nil, netip.Addr{})
		return
	}
	steer, err := exits.ParseSteering(r.Header, s.cfg.MaxOriginTimeout)
	if err != nil {
		s.refuse(w, failure(err), nil, netip.Addr{})
		return
	}
	steer.Merge(userSteer)
	if steer.Timeout == 0 {
		steer.Timeout = s.cfg.OriginTimeout
	}
	choice, err := s.cfg.Sessions.Choose(s.pool.Load(), exits.SessionKey{AccountID: p.AccountID, SubID: p.SubID, ID: steer.Session}, steer)
	if err != nil {
		s.refuse(w, failure(err), nil, netip.Addr{})
		return
	}
	s.metrics.ExitUsed(choice.Exit.IP)
	if connect {
		s.serveConnect(w, r, p, choice, steer.Timeout)
		return
	}
	f := s.track()
	if f == nil {
		s.refuse(w, errShuttingDown, nil, netip.Addr{})
		return
	}
	defer s.untrack(f)
	s.fwd.serve(w, r, p, choice, steer.Timeout, f)
}

// checkTarget refuses a request that is not a proxy request: a CONNECT must name host:port, any other
// method an absolute http:// or https:// URI.
func checkTarget(r *http.Request, connect bool) *refusal {
	if connect {
		if _, _, err := egress.SplitHostPort(r.Host); err != nil {
			return failure(err)
		}
		return nil
	}
	if r.URL.Host == "" || (r.URL.Scheme != "http" && r.URL.Scheme != "https") {
		return errNotProxy
	}
	return nil
}

// clientIP returns the client's source address, unmapped; invalid if RemoteAddr is not ip:port.
func clientIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// countAuthFailure counts wrong credentials from src toward a ban, and logs the ban they cause.
func (s *Server) countAuthFailure(src netip.Addr) {
	if s.cfg.Bans.Fail(src, bans.AuthFailure) {
		s.log.Warn("client banned after too many failed authentications", "ip", src)
	}
}

// authenticate identifies the client by Proxy-Authorization, else by its source IP src, and checks
// that it may use this proxy server. It returns the steering parameters of the username, if any.
func (s *Server) authenticate(r *http.Request, src netip.Addr) (*auth.Principal, exits.Steering, *refusal) {
	var p *auth.Principal
	var steer exits.Steering
	if h := r.Header.Get("Proxy-Authorization"); h != "" {
		login, password, ok := parseBasic(h)
		if !ok {
			return nil, steer, errAuthFailed
		}
		var err error
		if login, steer, err = exits.ParseUsername(login); err != nil {
			return nil, steer, failure(err)
		}
		p, err = s.cfg.Accounts.Authenticate(r.Context(), login, password)
		switch {
		case errors.Is(err, auth.ErrBadCredentials):
			return nil, steer, errAuthFailed
		case err != nil: // the client left while its password waited to be checked
			return nil, steer, errClientGone
		}
	} else {
		var ok bool
		if p, ok = s.cfg.Accounts.ByIP(src); !ok {
			return nil, steer, errAuthRequired
		}
	}
	switch {
	case p.Disabled:
		return nil, steer, errDisabled
	case !p.MayUse(s.cfg.Name):
		return nil, steer, errNotAuthorized
	}
	return p, steer, nil
}

// parseBasic decodes a "Basic base64(login:password)" credential.
func parseBasic(h string) (login, password string, ok bool) {
	const prefix = "basic "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(h[len(prefix):]))
	if err != nil {
		return "", "", false
	}
	login, password, ok = strings.Cut(string(raw), ":")
	return login, password, ok && login != ""
}

// isClientGone reports errors caused by the client going away, which are not worth a warning.
func isClientGone(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, net.ErrClosed)
}
