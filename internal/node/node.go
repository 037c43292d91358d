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
	"slices"
	"sync"
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/bans"
	"github.com/exitmesh/exitmesh/internal/config"
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
	cfg      *config.Config
	log      *slog.Logger
	store    domain.Store
	view     *auth.View
	verifier *auth.Verifier
	bans     *bans.Tracker
	metrics  *metrics.Metrics
	usage    *usage.Recorder

	proxies       []*proxy.Server
	proxyAddrs    map[string]string
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

// Start opens the store, binds every listener (synchronously, so port 0 works and the bound address
// is known at return), provisions plans and the proxy catalogue, loads the accounts and starts
// serving. The caller must Close the node.
func Start(ctx context.Context, cfg *config.Config, log *slog.Logger) (_ *Node, err error) {
	verifier := auth.NewVerifier()
	sharing := &banSharing{log: log, out: make(chan bans.Ban, banQueue)}
	n := &Node{
		cfg:      cfg,
		log:      log,
		verifier: verifier,
		view:     auth.NewView(verifier),
		bans: bans.New(bans.Config{AuthFailures: cfg.Bans.AuthFailures, NotFound: cfg.Bans.NotFound,
			Window: cfg.Bans.Window.D(), Duration: cfg.Bans.Duration.D(), OnBan: sharing.publish}),
		metrics:    metrics.New(),
		proxyAddrs: make(map[string]string),
		serveErr:   make(chan error, len(cfg.Proxies)+1),
	}
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
	dialer := &egress.Dialer{Policy: &egress.Policy{Allow: cfg.Egress.Allow, DenyPorts: cfg.Egress.DenyPorts}}
	for i, pc := range cfg.Proxies {
		pool, err := buildPool(pc, dialer)
		if err != nil {
			return nil, fmt.Errorf("proxies[%d] (%s): %w", i, pc.Name, err)
		}
		ln, err := net.Listen("tcp", pc.Listen)
		if err != nil {
			return nil, fmt.Errorf("proxy server %s: %w", pc.Name, err)
		}
		listeners = append(listeners, ln)
		n.proxyAddrs[pc.Name] = ln.Addr().String()
		n.proxies = append(n.proxies, proxy.New(proxy.Config{
			Name:             pc.Name,
			Pool:             pool,
			Accounts:         n.view,
			Bans:             n.bans,
			Usage:            n.usage,
			Metrics:          n.metrics,
			Log:              log,
			OriginTimeout:    cfg.Timeouts.Origin.D(),
			MaxOriginTimeout: cfg.Timeouts.MaxOrigin.D(),
			TunnelIdle:       cfg.Timeouts.TunnelIdle.D(),
			ReadHeader:       cfg.Timeouts.ReadHeader.D(),
			Idle:             cfg.Timeouts.Idle.D(),
			MaxHeaderBytes:   int(cfg.Limits.MaxHeaderBytes),
		}))
	}
	var metricsLn net.Listener
	if cfg.Metrics.Listen != "" {
		if metricsLn, err = net.Listen("tcp", cfg.Metrics.Listen); err != nil {
			return nil, fmt.Errorf("metrics listener: %w", err)
		}
		listeners = append(listeners, metricsLn)
		n.metricsAddr = metricsLn.Addr().String()
	}
	if err := Provision(ctx, n.store, cfg, n.proxyAddrs); err != nil {
		return nil, err
	}
	if err := n.view.Refresh(ctx, n.store); err != nil {
		return nil, fmt.Errorf("load accounts: %w", err)
	}
	if err := n.usage.Refresh(ctx); err != nil {
		return nil, fmt.Errorf("load month-to-date bandwidth: %w", err)
	}

	serving = true
	followCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.stopFollowers = cancel
	n.goServe(func() { n.view.Follow(followCtx, n.store, cfg.Sync.Interval.D(), log) })
	n.goServe(func() {
		n.usage.Run(followCtx, cfg.Usage.FlushInterval.D(), cfg.Sync.Interval.D(), 10*time.Second, log)
	})
	n.goServe(func() { sharing.run(followCtx, cfg.Sync.Interval.D()) })
	lookup := hostnames.NewLookup(cfg.Hostnames.Resolver)
	refresher := &hostnames.Refresher{Store: n.store, Lookup: lookup, Interval: cfg.Hostnames.Interval.D(), Log: log,
		Changed: func(ctx context.Context) { n.view.Refresh(ctx, n.store) }}
	n.goServe(func() { refresher.Run(followCtx) })
	for i, p := range n.proxies {
		ln := listeners[i]
		n.goServe(func() { n.serve(p.Name(), func() error { return p.Serve(ln) }) })
		log.Info("proxy server listening", "proxy", p.Name(), "addr", ln.Addr().String(), "exits", len(cfg.Proxies[i].Exits))
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
		n.serveErr <- fmt.Errorf("%s: %w", what, err)
	}
}

func buildPool(pc config.Proxy, dialer *egress.Dialer) (*exits.Pool, error) {
	var ex []*exits.Exit
	for j, ec := range pc.Exits {
		if ec.URL != "" {
			return nil, fmt.Errorf("exits[%d]: upstream proxy exits (url) are not supported by this version; use a local source address (ip)", j)
		}
		ex = append(ex, exits.NewLocal(ec.IP, ec.Country, dialer))
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

// ProxyAddr returns the bound address of the proxy server called name.
func (n *Node) ProxyAddr(name string) string { return n.proxyAddrs[name] }

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
	errs := make([]error, len(n.proxies), len(n.proxies)+1)
	var wg sync.WaitGroup
	for i, p := range n.proxies {
		wg.Go(func() {
			if err := p.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				errs[i] = fmt.Errorf("proxy %s: %w", p.Name(), err)
			}
		})
	}
	wg.Wait()
	for _, srv := range []*http.Server{n.metricsSrv, n.apiSrv, n.apiHTTPSrv} {
		if srv != nil {
			srv.Shutdown(ctx)
		}
	}
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
	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "grace", cfg.Timeouts.Shutdown.D())
	case serveErr = <-n.Err():
		log.Error("listener failed; shutting down", "err", serveErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Timeouts.Shutdown.D())
	defer cancel()
	return errors.Join(serveErr, n.Close(sctx))
}
