// Package node runs one exitmesh process from its config: it opens the store, provisions the
// declared plans and proxy servers, keeps the account view in step with the store, and serves the
// proxy servers and the metrics listener until it is stopped.
package node

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/bans"
	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/connlimit"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/egress"
	"github.com/exitmesh/exitmesh/internal/exits"
	"github.com/exitmesh/exitmesh/internal/hostnames"
	"github.com/exitmesh/exitmesh/internal/metrics"
	"github.com/exitmesh/exitmesh/internal/proxy"
	"github.com/exitmesh/exitmesh/internal/store"
	"github.com/exitmesh/exitmesh/internal/usage"
)

// Node is a running exitmesh process.
type Node struct {
	log      *slog.Logger
	store    domain.Store
	view     *auth.View
	verifier *auth.Verifier
	bans     *bans.Tracker
	metrics  *metrics.Metrics
	usage    *usage.Recorder
	// The per-node connection limits: every proxy server shares connsPerIP and connsPerAccount, the
	// API listeners share apiConnsPerIP. A reload keeps them (limits need a restart).
	connsPerIP      *connlimit.PerIP
	connsPerAccount *connlimit.PerAccount
	apiConnsPerIP   *connlimit.PerIP

	reloadMu sync.Mutex // serializes Reload and Close; after Start, guards the following fields
	cfg      *config.Config
	dialer   *egress.Dialer // the exits' egress policy
	closed   bool

	// self is the node's own addresses, which its egress policy refuses whatever the allow list says,
	// and whose exits' failures its bans never count; updateSelf keeps it in step with the listeners
	// and exits.
	self egress.Self

	proxiesMu sync.RWMutex   // guards proxies; Reload replaces entries, it never changes one
	proxies   []*hostedProxy // in config order

	draining      sync.WaitGroup  // removed proxy servers finishing their tunnels
	drainCtx      context.Context // ends those drains at once when Close runs out of time
	stopDraining  context.CancelFunc
	shutdownGrace time.Duration // timeouts.shutdown

	metricsSrv    *http.Server
	metricsAddr   string
	apiSrv        *http.Server
	apiHTTPSrv    *http.Server
	apiAddr       string
	apiHTTPAddr   string
	stopFollowers context.CancelFunc
	wg            sync.WaitGroup // the serving and following goroutines
	serveErr      chan error     // the first listener failure
}

// hostedProxy is one proxy server this node hosts: its config, server, listener and exit pool. Once
// published in Node.proxies it is never modified; a reload publishes a new entry instead.
type hostedProxy struct {
	cfg    config.Proxy
	server *proxy.Server
	ln     *proxyListener
	pool   *exits.Pool
	stop   func() // stops what runs for pool (see startPool)
}

// proxyListener is a proxy server's listener. A reload retires it when the server moves to another
// address or is removed: it is closed, and the Serve it ends is not a listener failure.
type proxyListener struct {
	net.Listener
	retired   atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// Close closes the listener once; later calls return the first result.
func (l *proxyListener) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.Listener.Close() })
	return l.closeErr
}

func (l *proxyListener) retire() {
	l.retired.Store(true)
	l.Close()
}

// Start opens the store, binds every listener (synchronously, so port 0 works and the bound address
// is known at return), provisions plans and the proxy catalogue, loads the accounts and starts
// serving. The caller must Close the node.
func Start(ctx context.Context, cfg *config.Config, log *slog.Logger) (_ *Node, err error) {
	verifier := auth.NewVerifier()
	sharing := &banSharing{log: log, out: make(chan localBan, banQueue)}
	n := &Node{
		cfg:             cfg,
		log:             log,
		verifier:        verifier,
		view:            auth.NewView(verifier),
		metrics:         metrics.New(),
		connsPerIP:      connlimit.NewPerIP(cfg.Limits.ConnectionsPerIP),
		connsPerAccount: connlimit.NewPerAccount(cfg.Limits.ConnectionsPerAccount),
		apiConnsPerIP:   connlimit.NewPerIP(cfg.Limits.ConnectionsPerIP),
		serveErr:        make(chan error, 1),
		shutdownGrace:   cfg.Timeouts.Shutdown.D(),
	}
	n.view.SetLog(log)
	n.bans = bans.New(bans.Config{AuthFailures: cfg.Bans.AuthFailures, NotFound: cfg.Bans.NotFound,
		Window: cfg.Bans.Window.D(), Duration: cfg.Bans.Duration.D(), OnBan: sharing.publish, Exempt: n.self.IsExit})
	n.drainCtx, n.stopDraining = context.WithCancel(context.WithoutCancel(ctx))
	if n.store, err = store.Open(ctx, cfg.Store); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	n.usage = usage.NewRecorder(n.store)
	sharing.store, sharing.tracker = n.store, n.bans
	var listeners []net.Listener
	serving := false // from then on, Close undoes everything
	defer func() {
		if err != nil && !serving {
			for _, ln := range listeners {
				ln.Close()
			}
			n.store.Close()
		}
	}()
	n.dialer = newDialer(cfg.Egress, &n.self)
	for i, pc := range cfg.Proxies {
		hp, err := prepareProxy(i, pc, n.dialer)
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, hp.ln)
		hp.server = n.newProxyServer(pc.Name, hp.pool)
		n.proxies = append(n.proxies, hp)
	}
	var metricsLn net.Listener
	if cfg.Metrics.Listen != "" {
		if metricsLn, err = net.Listen("tcp", cfg.Metrics.Listen); err != nil {
			return nil, fmt.Errorf("metrics listener: %w", err)
		}
		listeners = append(listeners, metricsLn)
		n.metricsAddr = metricsLn.Addr().String()
	}
	if err := Provision(ctx, n.store, cfg, boundAddrs(n.proxies)); err != nil {
		return nil, err
	}
	if err := n.view.Refresh(ctx, n.store); err != nil {
		return nil, fmt.Errorf("load accounts: %w", err)
	}
	if err := n.usage.Refresh(ctx); err != nil {
		return nil, fmt.Errorf("load month-to-date bandwidth: %w", err)
	}

	n.updateSelf()
	serving = true
	followCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.stopFollowers = cancel
	wake := make(chan struct{}, 1)
	n.goServe(func() {
		store.Watch(followCtx, cfg.Store, func() {
			select {
			case wake <- struct{}{}:
			default: // a wake-up is pending already
			}
		}, log)
	})
	n.goServe(func() {
		n.view.Follow(followCtx, n.store, cfg.Sync.Interval.D(), wake, cfg.Sync.FeedRetention.D(), log)
	})
	n.goServe(func() {
		n.usage.Run(followCtx, cfg.Usage.FlushInterval.D(), cfg.Sync.Interval.D(), 10*time.Second, log)
	})
	n.goServe(func() { sharing.run(followCtx, cfg.Sync.Interval.D()) })
	lookup := hostnames.NewLookup(cfg.Hostnames.Resolver)
	refresher := &hostnames.Refresher{Store: n.store, Lookup: lookup, Interval: cfg.Hostnames.Interval.D(), Log: log,
		Changed: func(ctx context.Context) { n.view.Refresh(ctx, n.store) }}
	n.goServe(func() { refresher.Run(followCtx) })
	n.goServe(func() { n.publishExitStatus(followCtx, cfg.Node.Name, cfg.Health.Interval.D()) })
	for _, hp := range n.proxies {
		hp.stop = n.startPool(hp.cfg, hp.pool)
		n.serveProxy(hp, hp.ln)
	}
	if metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", n.metrics.Handler())
		n.metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: httpErrorLog(log)}
		n.goServe(func() { n.serve("metrics", func() error { return n.metricsSrv.Serve(metricsLn) }) })
		log.Info("metrics listening", "addr", n.metricsAddr)
	}
	if cfg.Node.API {
		if err := n.startAPI(ctx, lookup); err != nil {
			n.Close(ctx)
			return nil, err
		}
		n.updateSelf()
	}
	return n, nil
}

func httpErrorLog(log *slog.Logger) *stdlog.Logger {
	return slog.NewLogLogger(log.Handler(), slog.LevelDebug)
}

func (n *Node) goServe(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

func (n *Node) serve(what string, serve func() error) {
	if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		select {
		case n.serveErr <- fmt.Errorf("%s: %w", what, err):
		default: // a failure is already waiting; the first one is reported
		}
	}
}

// prepareProxy builds the exit pool of proxies[i] and binds its listener; the server is made and
// served later.
func prepareProxy(i int, pc config.Proxy, dialer *egress.Dialer) (*hostedProxy, error) {
	pool, err := preparePool(i, pc, dialer)
	if err != nil {
		return nil, err
	}
	ln, err := listenProxy(i, pc)
	if err != nil {
		pool.CloseIdle()
		return nil, err
	}
	return &hostedProxy{cfg: pc, pool: pool, ln: ln}, nil
}

func preparePool(i int, pc config.Proxy, dialer *egress.Dialer) (*exits.Pool, error) {
	pool, err := buildPool(pc, dialer)
	if err != nil {
		return nil, fmt.Errorf("proxies[%d] (%s): %w", i, pc.Name, err)
	}
	return pool, nil
}

func listenProxy(i int, pc config.Proxy) (*proxyListener, error) {
	ln, err := net.Listen("tcp", pc.Listen)
	if err != nil {
		return nil, fmt.Errorf("proxies[%d].listen (%s): %w", i, pc.Name, err)
	}
	return &proxyListener{Listener: ln}, nil
}

func newDialer(e config.Egress, self *egress.Self) *egress.Dialer {
	return &egress.Dialer{Policy: &egress.Policy{Allow: e.Allow, DenyPorts: e.DenyPorts, Self: self}}
}

// updateSelf tells the egress policy and the bans the node's own addresses: its bound listeners,
// the addresses its proxy servers are advertised at, and its exits. Start calls it once the
// listeners are bound, a reload once it is committed.
func (n *Node) updateSelf() {
	var a egress.SelfAddrs
	for _, hp := range n.hostedProxies() {
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
	for _, addr := range []string{n.metricsAddr, n.apiAddr, n.apiHTTPAddr} {
		if ap, err := netip.ParseAddrPort(addr); err == nil {
			a.Listeners = append(a.Listeners, ap)
		}
	}
	n.self.Set(a)
}

// newProxyServer makes the server of a proxy server; every proxy server shares the node's accounts,
// bans, usage, metrics, timeouts and connection limits.
func (n *Node) newProxyServer(name string, pool *exits.Pool) *proxy.Server {
	cfg := n.cfg
	return proxy.New(proxy.Config{
		Name:             name,
		Pool:             pool,
		Accounts:         n.view,
		Bans:             n.bans,
		Usage:            n.usage,
		Metrics:          n.metrics,
		Log:              n.log,
		OriginTimeout:    cfg.Timeouts.Origin.D(),
		MaxOriginTimeout: cfg.Timeouts.MaxOrigin.D(),
		TunnelIdle:       cfg.Timeouts.TunnelIdle.D(),
		ReadHeader:       cfg.Timeouts.ReadHeader.D(),
		Idle:             cfg.Timeouts.Idle.D(),
		MaxHeaderBytes:   int(cfg.Limits.MaxHeaderBytes),
		MaxHeaderFields:  cfg.Limits.MaxHeaderFields,
		WriteTimeout:     cfg.Timeouts.Write.D(),
		ConnsPerIP:       n.connsPerIP,
		ConnsPerAccount:  n.connsPerAccount,
		SessionTTL:       cfg.Sessions.TTL.D(),
		MaxSessions:      cfg.Sessions.Max,
	})
}

// serveProxy serves hp's server on ln until the server shuts down or a reload retires ln.
func (n *Node) serveProxy(hp *hostedProxy, ln *proxyListener) {
	n.goServe(func() {
		n.serve(hp.cfg.Name, func() error {
			err := hp.server.Serve(ln)
			if ln.retired.Load() {
				return nil
			}
			return err
		})
	})
	n.log.Info("proxy server listening", "proxy", hp.cfg.Name, "addr", ln.Addr().String(), "exits", len(hp.cfg.Exits))
}

// startPool starts what a pool runs while it serves — its health checks and turnover — and returns
// what stops them, so that a reload stops the replaced pool's when it swaps pools and a removed proxy
// server's once it has drained.
func (n *Node) startPool(pc config.Proxy, pool *exits.Pool) (stop func()) {
	health := healthConfig(n.cfg.Health) // read here: a reload replaces n.cfg under its lock, which the caller holds
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.runPoolLoops(ctx, pc, health, pool)
	}()
	return func() {
		cancel()
		<-done
	}
}

// boundAddrs maps each proxy server's name to its bound address.
func boundAddrs(proxies []*hostedProxy) map[string]string {
	addrs := make(map[string]string, len(proxies))
	for _, hp := range proxies {
		addrs[hp.cfg.Name] = hp.ln.Addr().String()
	}
	return addrs
}

// buildPool turns a proxy server's configured exits into a pool: local source addresses and
// upstream proxies (url:) side by side, all under dialer's egress policy. It is the one place that
// does so: whatever makes a pool from the config (start, a reload) calls it.
func buildPool(pc config.Proxy, dialer *egress.Dialer) (*exits.Pool, error) {
	var ex []*exits.Exit
	for j, ec := range pc.Exits {
		if ec.URL == "" {
			ex = append(ex, exits.NewLocal(ec.IP, ec.Country, dialer))
			continue
		}
		e, err := exits.NewUpstream(ec.IP, ec.Country, ec.URL, dialer)
		if err != nil {
			return nil, fmt.Errorf("exits[%d]: %w", j, err)
		}
		ex = append(ex, e)
	}
	return exits.NewPool(ex), nil
}

// Provision creates or updates the plans the config declares and registers its proxy servers in
// the catalogue. addrs overrides a proxy's advertised address when the config left it at the listen
// address (the bound address is then the true one, e.g. with port 0).
func Provision(ctx context.Context, s domain.Store, cfg *config.Config, addrs map[string]string) error {
	for _, p := range cfg.Plans {
		err := s.PutPlan(ctx, domain.Plan{Name: p.Name, MaxProxies: p.Proxies, MaxSubs: p.Subs, MaxIPs: p.IPs,
			MaxHostnames: p.Hostnames, MonthlyBandwidth: int64(p.Bandwidth)})
		if err != nil {
			return fmt.Errorf("provision plan %s: %w", p.Name, err)
		}
	}
	for _, p := range cfg.Proxies {
		addr := p.Address
		if bound, ok := addrs[p.Name]; ok && (addr == "" || addr == p.Listen) {
			addr = bound
		}
		if err := s.PutProxyServer(ctx, domain.ProxyServer{Name: p.Name, Address: addr, Country: p.Country}); err != nil {
			return fmt.Errorf("provision proxy server %s: %w", p.Name, err)
		}
	}
	return nil
}

// Refresh brings the node's account view up to date with the store now, instead of at the next
// sync tick.
func (n *Node) Refresh(ctx context.Context) error { return n.view.Refresh(ctx, n.store) }

// ProvisionMissing creates the config's plans and proxy servers that the store does not have yet and
// leaves existing ones alone, so an operator command neither undoes an edit nor replaces the address
// a running node registered.
func ProvisionMissing(ctx context.Context, s domain.Store, cfg *config.Config) error {
	plans, err := s.ListPlans(ctx)
	if err != nil {
		return err
	}
	proxies, err := s.ListProxyServers(ctx)
	if err != nil {
		return err
	}
	missing := *cfg
	missing.Plans = slices.DeleteFunc(slices.Clone(cfg.Plans), func(p config.Plan) bool {
		return slices.ContainsFunc(plans, func(q domain.Plan) bool { return q.Name == p.Name })
	})
	missing.Proxies = slices.DeleteFunc(slices.Clone(cfg.Proxies), func(p config.Proxy) bool {
		return slices.ContainsFunc(proxies, func(q domain.ProxyServer) bool { return q.Name == p.Name })
	})
	return Provision(ctx, s, &missing, nil)
}

// ProxyAddr returns the bound address of the proxy server called name, or "" when this node does not
// host it.
func (n *Node) ProxyAddr(name string) string {
	for _, hp := range n.hostedProxies() {
		if hp.cfg.Name == name {
			return hp.ln.Addr().String()
		}
	}
	return ""
}

func (n *Node) hostedProxies() []*hostedProxy {
	n.proxiesMu.RLock()
	defer n.proxiesMu.RUnlock()
	return n.proxies
}

// APIAddr returns the bound HTTPS address of the account API, or "" when this node serves none.
func (n *Node) APIAddr() string { return n.apiAddr }

// APIHTTPAddr returns the bound plain-HTTP address of the account API, or "".
func (n *Node) APIHTTPAddr() string { return n.apiHTTPAddr }

// MetricsAddr returns the bound metrics address, or "" when metrics are off.
func (n *Node) MetricsAddr() string { return n.metricsAddr }

// Store returns the node's store.
func (n *Node) Store() domain.Store { return n.store }

// Err delivers the first failure of a listener.
func (n *Node) Err() <-chan error { return n.serveErr }

// Close stops accepting, lets requests and tunnels finish until ctx ends (then closes them),
// flushes usage and closes the store.
func (n *Node) Close(ctx context.Context) error {
	n.reloadMu.Lock() // a reload under way finishes first; none starts after
	n.closed = true
	n.reloadMu.Unlock()
	// Every server shuts down at once, so every listener closes now, not after the others drained.
	proxies := n.hostedProxies()
	errs := make([]error, len(proxies), len(proxies)+1)
	var wg sync.WaitGroup
	for i, hp := range proxies {
		wg.Go(func() {
			if err := hp.server.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				errs[i] = fmt.Errorf("proxy %s: %w", hp.cfg.Name, err)
			}
			hp.stop()
		})
	}
	for _, srv := range []*http.Server{n.metricsSrv, n.apiSrv, n.apiHTTPSrv} {
		if srv != nil {
			wg.Go(func() { srv.Shutdown(ctx) })
		}
	}
	wg.Wait()
	stopDrains := context.AfterFunc(ctx, n.stopDraining)
	n.draining.Wait()
	stopDrains()
	n.stopFollowers() // the usage recorder flushes once more as it stops
	n.wg.Wait()
	if err := n.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close store: %w", err))
	}
	return errors.Join(errs...)
}

// Run starts a node and serves until ctx ends or a listener fails, then shuts down within the
// configured shutdown timeout.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	n, err := Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	return n.Wait(ctx)
}

// Wait serves until ctx ends or a listener fails, then closes the node within timeouts.shutdown.
func (n *Node) Wait(ctx context.Context) error {
	var serveErr error
	select {
	case <-ctx.Done():
		n.log.Info("shutting down", "grace", n.shutdownGrace)
	case serveErr = <-n.Err():
		n.log.Error("listener failed; shutting down", "err", serveErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), n.shutdownGrace)
	defer cancel()
	return errors.Join(serveErr, n.Close(sctx))
}
