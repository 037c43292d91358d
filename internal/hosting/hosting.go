// Package hosting runs the proxy servers one node hosts — each one's listener, exit pool, server and
// the health checks and turnover of its pool — and reloads them in place: a proxy server whose exits
// changed gets a new pool, one whose address changed a new listener, a new one is bound and served,
// and a removed one drains.
package hosting

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/egress"
	"github.com/exitmesh/exitmesh/internal/exits"
	"github.com/exitmesh/exitmesh/internal/metrics"
	"github.com/exitmesh/exitmesh/internal/proxy"
)

// Config is what every proxy server of a Set shares.
type Config struct {
	// NewServer makes the server of the proxy server called name, serving through pool, with the
	// TLS certificate cert gives (nil: no TLS).
	NewServer func(name string, pool *exits.Pool, cert func() *tls.Certificate) *proxy.Server
	Metrics   *metrics.Metrics
	Log       *slog.Logger
	// Grace is how long a removed proxy server's requests and tunnels may finish (timeouts.shutdown).
	Grace time.Duration
	// Failed is told when a listener fails while serving (not when it is closed on purpose).
	Failed func(error)
}

// Set is the proxy servers a node hosts.
type Set struct {
	cfg Config

	mu      sync.RWMutex // guards proxies and health; Prepare and Commit replace entries, never change one
	proxies []*hosted    // in config order
	health  exits.HealthConfig

	serving      sync.WaitGroup // the Serve calls
	draining     sync.WaitGroup // removed proxy servers finishing their tunnels
	drainCtx     context.Context
	stopDraining context.CancelFunc
	started      bool
	closed       bool
}

// hosted is one proxy server: its config, server, listener and exit pool. Once published in
// Set.proxies it is never modified; a reload publishes a new entry instead.
type hosted struct {
	cfg    config.Proxy
	server *proxy.Server
	ln     *listener
	pool   *exits.Pool
	stop   func()       // stops what runs for pool (see startPool)
	cert   *certificate // shared by the entries of one server across reloads
}

// listener is a proxy server's listener. A reload retires it when the server moves to another
// address or is removed: it is closed, and the Serve it ends is not a listener failure.
type listener struct {
	net.Listener
	retired   atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// Close closes the listener once; later calls return the first result.
func (l *listener) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.Listener.Close() })
	return l.closeErr
}

func (l *listener) retire() {
	l.retired.Store(true)
	l.Close()
}

// Bind builds the pool of every proxy server and binds its listener (synchronously, so port 0 works
// and Addrs is known at return); nothing serves until Serve. On error nothing stays bound.
func Bind(cfg Config, proxies []config.Proxy, dialer *egress.Dialer, health config.Health) (*Set, error) {
	s := &Set{cfg: cfg, health: healthConfig(health)}
	s.drainCtx, s.stopDraining = context.WithCancel(context.Background())
	for i, pc := range proxies {
		hp, err := prepare(i, pc, dialer)
		if err != nil {
			s.release()
			return nil, err
		}
		hp.server = cfg.NewServer(pc.Name, hp.pool, hp.cert.Get)
		s.proxies = append(s.proxies, hp)
	}
	return s, nil
}

// release undoes a Bind that never served.
func (s *Set) release() {
	for _, hp := range s.proxies {
		hp.ln.Close()
		hp.pool.CloseIdle()
	}
}

// Serve starts every proxy server: its pool's checks and turnover, then its listener.
func (s *Set) Serve() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.started = true
	for _, hp := range s.proxies {
		hp.stop = s.startPool(hp.cfg, hp.pool)
		s.serve(hp, hp.ln)
	}
}

// Shutdown stops every proxy server at once: each stops accepting, then its requests and tunnels may
// finish until ctx ends, when they are closed; removed proxy servers still draining end then too.
// The pools' loops stop last. A Set that never served only releases its listeners and pools. Later
// calls do nothing.
func (s *Set) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	proxies, started, closed := s.proxies, s.started, s.closed
	s.closed = true
	s.mu.Unlock()
	switch {
	case closed:
		return nil
	case !started:
		s.release()
		return nil
	}
	errs := make([]error, len(proxies))
	var wg sync.WaitGroup
	for i, hp := range proxies {
		wg.Go(func() {
			if err := hp.server.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				errs[i] = fmt.Errorf("proxy %s: %w", hp.cfg.Name, err)
			}
			hp.ln.Close() // the server closes only the listeners its Serve got to; a Serve that starts after Shutdown returns at once
			hp.stop()
		})
	}
	wg.Wait()
	stopDrains := context.AfterFunc(ctx, s.stopDraining)
	s.draining.Wait()
	stopDrains()
	s.serving.Wait()
	return errors.Join(errs...)
}

// serve serves hp's server on ln until the server shuts down or a reload retires ln.
func (s *Set) serve(hp *hosted, ln *listener) {
	s.serving.Go(func() {
		err := hp.server.Serve(ln)
		if err != nil && !ln.retired.Load() && !errors.Is(err, http.ErrServerClosed) {
			s.cfg.Failed(fmt.Errorf("%s: %w", hp.cfg.Name, err))
		}
	})
	s.cfg.Log.Info("proxy server listening", "proxy", hp.cfg.Name, "addr", ln.Addr().String(), "exits", len(hp.cfg.Exits))
}

// Addrs maps each proxy server's name to its bound address.
func (s *Set) Addrs() map[string]string { return boundAddrs(s.current()) }

// Addr returns the bound address of the proxy server called name, or "" when the Set has none.
func (s *Set) Addr(name string) string {
	for _, hp := range s.current() {
		if hp.cfg.Name == name {
			return hp.ln.Addr().String()
		}
	}
	return ""
}

// AddSelf adds the proxy servers' own addresses to a: bound listeners, advertised addresses, exits.
func (s *Set) AddSelf(a *egress.SelfAddrs) {
	for _, hp := range s.current() {
		if ap, err := netip.ParseAddrPort(hp.ln.Addr().String()); err == nil {
			a.Listeners = append(a.Listeners, ap)
		}
		if hp.cfg.Address != "" {
			a.Advertised = append(a.Advertised, hp.cfg.Address)
		}
		for _, e := range hp.cfg.Exits {
			a.Exits = append(a.Exits, e.IP)
		}
	}
}

// ExitStatuses returns the health of every exit of every proxy server now, as node reports it.
func (s *Set) ExitStatuses(node string) []domain.ExitStatus {
	now := time.Now().UTC()
	var out []domain.ExitStatus
	for _, hp := range s.current() {
		for _, e := range hp.server.Pool().Exits() {
			st := e.Status()
			out = append(out, domain.ExitStatus{Node: node, Proxy: hp.cfg.Name, IP: e.IP, Via: e.Via(),
				Healthy: st.Healthy, Active: st.Active, Latency: st.Latency, Checks: int64(st.Checks),
				Failures: int64(st.Failures), LastError: st.LastError, Since: st.Since, Updated: now})
		}
	}
	return out
}

func (s *Set) current() []*hosted {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.proxies
}

// boundAddrs maps each proxy server's name to its bound address.
func boundAddrs(proxies []*hosted) map[string]string {
	addrs := make(map[string]string, len(proxies))
	for _, hp := range proxies {
		addrs[hp.cfg.Name] = hp.ln.Addr().String()
	}
	return addrs
}

// prepare builds the exit pool of proxies[i] and binds its listener; the server is made and served
// later.
func prepare(i int, pc config.Proxy, dialer *egress.Dialer) (*hosted, error) {
	cert, err := loadCertificate(i, pc)
	if err != nil {
		return nil, err
	}
	pool, err := preparePool(i, pc, dialer)
	if err != nil {
		return nil, err
	}
	ln, err := listen(i, pc)
	if err != nil {
		pool.CloseIdle()
		return nil, err
	}
	hp := &hosted{cfg: pc, pool: pool, ln: ln, cert: &certificate{}}
	hp.cert.cert.Store(cert)
	return hp, nil
}

func preparePool(i int, pc config.Proxy, dialer *egress.Dialer) (*exits.Pool, error) {
	pool, err := buildPool(pc, dialer)
	if err != nil {
		return nil, fmt.Errorf("proxies[%d] (%s): %w", i, pc.Name, err)
	}
	return pool, nil
}

func listen(i int, pc config.Proxy) (*listener, error) {
	ln, err := net.Listen("tcp", pc.Listen)
	if err != nil {
		return nil, fmt.Errorf("proxies[%d].listen (%s): %w", i, pc.Name, err)
	}
	return &listener{Listener: ln}, nil
}

// buildPool turns a proxy server's configured exits into a pool: local source addresses and
// upstream proxies (url:) side by side, all under dialer's egress policy. It is the one place that
// does so: whatever makes a pool from the config (start, a reload) calls it.
func buildPool(pc config.Proxy, dialer *egress.Dialer) (*exits.Pool, error) {
	var ex []*exits.Exit
	for j, ec := range pc.Exits {
		var e *exits.Exit
		if ec.URL == "" {
			e = exits.NewLocal(ec.IP, ec.Country, dialer)
		} else {
			var err error
			if e, err = exits.NewUpstream(ec.IP, ec.Country, ec.URL, dialer); err != nil {
				return nil, fmt.Errorf("exits[%d]: %w", j, err)
			}
		}
		e.Region, e.City, e.ASN = ec.Region, ec.City, ec.ASN // the config keeps them in the case steering compares
		ex = append(ex, e)
	}
	return exits.NewPool(ex), nil
}
