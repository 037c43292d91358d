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

	"github.com/exitmesh/exitmesh/internal/accesslog"
	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/bans"
	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/connlimit"
	"github.com/exitmesh/exitmesh/internal/egress"
	"github.com/exitmesh/exitmesh/internal/exits"
	"github.com/exitmesh/exitmesh/internal/httphead"
	"github.com/exitmesh/exitmesh/internal/metrics"
	"github.com/exitmesh/exitmesh/internal/ratelimit"
	"github.com/exitmesh/exitmesh/internal/usage"
)

// Config is what a proxy server needs. Zero values take config.Default()'s, noted here.
type Config struct {
	Name     string // the proxy server's name, as accounts authorize it
	NodeName string // the node's name, in Proxy-Status (RFC 9209); default "exitmesh"
	Pool     *exits.Pool
	// Certificate, when it gives one, makes the port also accept TLS (a client's first byte 22, a
	// ClientHello) and serve HTTP proxy requests inside it; it is asked at each handshake, so a new
	// certificate applies at once. nil, or nil returned: no TLS.
	Certificate func() *tls.Certificate
	Accounts    *auth.View
	Usage       *usage.Recorder // nil: usage is not recorded
	AccessLog   *accesslog.Log  // nil: no access log
	Bans        *bans.Tracker   // shared with the node's other servers; nil: nobody is banned
	Sessions    *exits.Sessions // sticky sessions; nil: a table with SessionTTL and MaxSessions
	Metrics     *metrics.Metrics
	Log         *slog.Logger

	OriginTimeout    time.Duration // default 30s: connect + first byte, unless the client sends X-ProxyMesh-Timeout
	MaxOriginTimeout time.Duration // default 120s: cap on X-ProxyMesh-Timeout
	TunnelIdle       time.Duration // default 10m
	MeterInterval    time.Duration // default 1s: open tunnels and long answers are counted and checked this often
	ReadHeader       time.Duration // default 10s
	Idle             time.Duration // default 90s: keep-alive idle on client connections
	MaxHeaderBytes   int           // default 64 KiB: a request head, request line included
	MaxHeaderFields  int           // default 100 header field lines in a request head
	WriteTimeout     time.Duration // default 60s: a client that takes no byte of an answer for this long is dropped
	// ConnsPerIP and ConnsPerAccount are shared by the node's proxy servers, so their limits hold
	// per node; nil: a limit of 1024 for this server alone.
	ConnsPerIP      *connlimit.PerIP
	ConnsPerAccount *connlimit.PerAccount
	Rates           *ratelimit.Accounts // the plans' rate and speed limits, shared like the above; nil: this server's own
	SessionTTL      time.Duration       // default 10m: a sticky session's life after its last request
	// Retries is how many other exits a request tries when its exit fails to connect; 0 takes
	// config's default, a negative number turns retrying off.
	Retries     int
	MaxSessions int // default 100,000 sessions remembered
}

// applyDefaults fills what the caller left zero with config's defaults, the one place they live.
func (c *Config) applyDefaults() {
	d := config.Default()
	def := func(v *time.Duration, dv config.Duration) {
		if *v <= 0 {
			*v = dv.D()
		}
	}
	defInt := func(v *int, dv int) {
		if *v <= 0 {
			*v = dv
		}
	}
	def(&c.OriginTimeout, d.Timeouts.Origin)
	def(&c.MaxOriginTimeout, d.Timeouts.MaxOrigin)
	def(&c.TunnelIdle, d.Timeouts.TunnelIdle)
	if c.NodeName == "" {
		c.NodeName = "exitmesh"
	}
	def(&c.MeterInterval, d.Usage.MeterInterval)
	def(&c.ReadHeader, d.Timeouts.ReadHeader)
	def(&c.Idle, d.Timeouts.Idle)
	def(&c.WriteTimeout, d.Timeouts.Write)
	def(&c.SessionTTL, d.Sessions.TTL)
	defInt(&c.MaxHeaderBytes, int(d.Limits.MaxHeaderBytes))
	defInt(&c.MaxHeaderFields, d.Limits.MaxHeaderFields)
	defInt(&c.MaxSessions, d.Sessions.Max)
	switch {
	case c.Retries == 0:
		c.Retries = d.Retries
	case c.Retries < 0:
		c.Retries = 0
	}
	if c.ConnsPerIP == nil {
		c.ConnsPerIP = connlimit.NewPerIP(d.Limits.ConnectionsPerIP)
	}
	if c.Rates == nil {
		c.Rates = &ratelimit.Accounts{}
	}
	if c.ConnsPerAccount == nil {
		c.ConnsPerAccount = connlimit.NewPerAccount(d.Limits.ConnectionsPerAccount)
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

// Server serves one proxy server's listener. It speaks HTTP/1.1 itself — request heads parsed by
// net/http's ReadRequest, answers written straight to the connection — so that a request costs one
// goroutine, no per-request goroutine or channel, and a CONNECT tunnel needs no hijacking.
type Server struct {
	cfg     Config
	headCfg httphead.Config // each connection adds the port it came to
	log     *slog.Logger
	metrics *metrics.Proxy
	pool    atomic.Pointer[exits.Pool]
	closing atomic.Bool // Shutdown has begun

	meter meter       // counts what open tunnels and long answers move while they run
	tls   *tls.Config // TLS to the proxy, when Certificate is set

	mu        sync.Mutex // guards the following fields
	listeners []net.Listener
	conns     map[*clientConn]struct{}
	drained   chan struct{} // closed when the last connection ends during Shutdown
}

// New returns a proxy server; call Serve to start it.
func New(cfg Config) *Server {
	cfg.applyDefaults()
	s := &Server{
		cfg:     cfg,
		headCfg: httphead.Config{MaxBytes: cfg.MaxHeaderBytes, MaxFields: cfg.MaxHeaderFields},
		log:     cfg.Log.With("proxy", cfg.Name),
		metrics: cfg.Metrics.Proxy(cfg.Name),
		conns:   make(map[*clientConn]struct{}),
	}
	s.pool.Store(cfg.Pool)
	if cfg.Certificate != nil {
		s.tls = &tls.Config{
			MinVersion: tls.VersionTLS12,
			NextProtos: []string{"http/1.1"}, // the proxy speaks HTTP/1.1: no HTTP/2 inside
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				if c := cfg.Certificate(); c != nil {
					return c, nil
				}
				return nil, errNoTLS
			},
		}
	}
	return s
}

// errNoTLS ends a TLS handshake on a proxy server whose certificate was removed.
var errNoTLS = errors.New("this proxy server does not take TLS")

// takesTLS reports whether the server accepts TLS now.
func (s *Server) takesTLS() bool { return s.tls != nil && s.cfg.Certificate() != nil }

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

// Serve accepts clients on ln until Shutdown, which makes it return http.ErrServerClosed, or until
// ln fails for good (closed by its owner: net.ErrClosed). Temporary accept errors (too many open
// files) are retried after a pause growing from 5 ms to 1 s.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	var pause time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", "err", err, "in", pause)
			time.Sleep(pause)
			continue
		}
		pause = 0
		if cc := s.admit(c); cc != nil {
			go s.serveConn(cc)
		}
	}
}

// Shutdown stops accepting, closes idle client connections, waits for requests and tunnels in flight
// to finish until ctx ends, then closes those still open (and their origin connections) and returns
// ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	lns := s.listeners
	s.listeners = nil
	var drained chan struct{}
	if len(s.conns) > 0 {
		drained = make(chan struct{})
		s.drained = drained
	}
	idle := make([]*clientConn, 0, len(s.conns))
	for cc := range s.conns {
		idle = append(idle, cc)
	}
	s.mu.Unlock()
	for _, ln := range lns {
		ln.Close()
	}
	for _, cc := range idle {
		if cc.state.CompareAndSwap(stateIdle, stateClosed) {
			cc.closeAll()
		}
	}
	var err error
	if drained != nil {
		select {
		case <-drained:
		case <-ctx.Done():
			err = ctx.Err()
			s.mu.Lock()
			for cc := range s.conns {
				cc.state.Store(stateClosed)
				cc.closeAll()
			}
			s.mu.Unlock()
			select { // closed connections end their goroutines at once; this bounds the wait all the same
			case <-drained:
			case <-time.After(5 * time.Second):
				s.log.Warn("connections still open after shutdown closed them")
			}
		}
	}
	s.pool.Load().CloseIdle()
	return err
}

// serveRequest handles one proxy request, CONNECT or an absolute-URI HTTP request, and reports
// whether the connection may carry another.
func (s *Server) serveRequest(cc *clientConn, r *http.Request) bool {
	if !s.cfg.AccessLog.Enabled() {
		keep, _ := s.handle(cc, r)
		return keep
	}
	cc.beginEntry(r)
	keep, tunnel := s.handle(cc, r)
	if !tunnel { // a tunnel's entry ends with it
		cc.endEntry(cc.entry.BytesIn, cc.entry.BytesOut)
	}
	return keep
}

// handle serves one request. keep reports whether the connection may carry another; tunnel, that
// it became a tunnel.
func (s *Server) handle(cc *clientConn, r *http.Request) (keep, tunnel bool) {
	src := cc.src
	if left, banned := s.cfg.Bans.Banned(src); banned {
		return cc.refuse(r, errBanned(left), nil, netip.Addr{}), false
	}
	connect := r.Method == http.MethodConnect
	if rf := checkTarget(r, connect); rf != nil {
		return cc.refuse(r, rf, nil, netip.Addr{}), false
	}
	p, userSteer, rf := s.authenticate(cc.ctx, r, src)
	if rf != nil {
		if rf == errAuthFailed {
			s.countAuthFailure(src)
		}
		return cc.refuse(r, rf, nil, netip.Addr{}), false
	}
	cc.entryLogin(p)
	if rf := s.checkBandwidth(p); rf != nil {
		return cc.refuse(r, rf, nil, netip.Addr{}), false
	}
	if rf := s.acquireAccount(p); rf != nil {
		return cc.refuse(r, rf, nil, netip.Addr{}), false
	}
	cc.pace(p)
	keep, tunnel = s.dispatch(cc, r, p, userSteer, connect)
	if !tunnel { // a tunnel releases its account's count, and its pacing, when it ends
		s.releaseAccount(p)
		cc.unpace()
	}
	return keep, tunnel
}

// dispatch steers r to an exit and forwards it or opens its tunnel. keep reports whether the
// connection may carry another request; tunnel, that a tunnel is open and goes on.
func (s *Server) dispatch(cc *clientConn, r *http.Request, p *auth.Principal, userSteer exits.Steering, connect bool) (keep, tunnel bool) {
	steer, err := exits.ParseSteering(r.Header, s.cfg.MaxOriginTimeout)
	if err != nil {
		return cc.refuse(r, failure(err), nil, netip.Addr{}), false
	}
	steer.Merge(userSteer)
	if steer.Timeout == 0 {
		steer.Timeout = s.cfg.OriginTimeout
	}
	a, err := s.newAttempts(p, steer)
	if err != nil {
		return cc.refuse(r, failure(err), nil, netip.Addr{}), false
	}
	if connect {
		return s.serveConnect(cc, r, p, &a)
	}
	return s.forward(cc, r, p, &a), false
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

// clientIP returns a connection's source address, unmapped; invalid if it is not TCP.
func clientIP(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// countAuthFailure counts wrong credentials from src toward a ban, and logs the ban they cause.
func (s *Server) countAuthFailure(src netip.Addr) {
	if s.cfg.Bans.Fail(src, bans.AuthFailure) {
		s.log.Warn("client banned after too many failed authentications", "ip", src)
	}
}

// authenticate identifies the client by Proxy-Authorization, else by its source IP src, and checks
// that it may use this proxy server. It returns the steering parameters of the username, if any.
func (s *Server) authenticate(ctx context.Context, r *http.Request, src netip.Addr) (*auth.Principal, exits.Steering, *refusal) {
	var p *auth.Principal
	var steer exits.Steering
	if token, ok := parseBearer(r.Header.Get("Proxy-Authorization")); ok {
		var err error
		if p, err = s.cfg.Accounts.AuthenticateToken(token); err != nil {
			return nil, steer, errAuthFailed
		}
	} else if h := r.Header.Get("Proxy-Authorization"); h != "" {
		login, password, ok := parseBasic(h)
		if !ok {
			return nil, steer, errAuthFailed
		}
		var err error
		if login, steer, err = exits.ParseUsername(login); err != nil {
			return nil, steer, failure(err)
		}
		p, err = s.cfg.Accounts.Authenticate(ctx, login, password)
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

// parseBearer reads a "Bearer <token>" credential (RFC 6750).
func parseBearer(h string) (token string, ok bool) {
	const prefix = "bearer "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(h[len(prefix):]), true
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
