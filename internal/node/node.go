// Package node runs one exitmesh process from its config: it opens the store, provisions the
// declared plans and proxy servers, keeps the account view in step with the store, and serves the
// proxy servers and the metrics listener until it is stopped.
package node

import (
	"cmp"
	"context"
	"crypto/tls"
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

	"github.com/exitmesh/exitmesh/internal/accesslog"
	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/bans"
	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/connlimit"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/egress"
	"github.com/exitmesh/exitmesh/internal/exits"
	"github.com/exitmesh/exitmesh/internal/hosting"
	"github.com/exitmesh/exitmesh/internal/hostnames"
	"github.com/exitmesh/exitmesh/internal/loop"
	"github.com/exitmesh/exitmesh/internal/metrics"
	"github.com/exitmesh/exitmesh/internal/proxy"
	"github.com/exitmesh/exitmesh/internal/ratelimit"
	"github.com/exitmesh/exitmesh/internal/store"
	"github.com/exitmesh/exitmesh/internal/usage"
	"github.com/exitmesh/exitmesh/internal/webhooks"
)

// Node is a running exitmesh process.
type Node struct {
	log      *slog.Logger
	store    domain.Store
	view     *auth.View
	tokens   *auth.TokenUses // API token uses, from the proxies and the API, for the store
	verifier *auth.Verifier
	bans     *bans.Tracker
	metrics  *metrics.Metrics
	usage    *usage.Recorder
	proxies  *hosting.Set
	// The per-node connection limits: every proxy server shares connsPerIP and connsPerAccount, the
	// API listeners share apiConnsPerIP. A reload keeps them (limits need a restart).
	connsPerIP      *connlimit.PerIP
	connsPerAccount *connlimit.PerAccount
	apiConnsPerIP   *connlimit.PerIP

	reloadMu sync.Mutex // serializes Reload and Close; after Start, guards the following fields
	cfg      *config.Config
	dialer   *egress.Dialer // the exits' egress policy
	closed   bool

	egress atomic.Pointer[egress.Dialer] // dialer, for readers outside reloadMu (webhooks)

	// self is the node's own addresses, which its egress policy refuses whatever the allow list says,
	// and whose exits' failures its bans never count; updateSelf keeps it in step with the listeners
	// and exits.
	self egress.Self

	accessLog     *accesslog.Log // nil when access_log.path is empty
	rates         ratelimit.Accounts
	shutdownGrace time.Duration  // timeouts.shutdown
	stop          teardown       // what Start started, stopped in reverse order by Close
	httpServers   []*http.Server // metrics and API, shut down with the proxy servers
	metricsAddr   string
	apiAddr       string
	apiHTTPAddr   string
	wg            sync.WaitGroup // the HTTP servers' goroutines
	serveErr      chan error     // the first listener failure
}

// Start opens the store, binds every listener (synchronously, so port 0 works and the bound address
// is known at return), provisions plans and the proxy catalogue, loads the accounts and starts
// serving. Each part, once started, registers how it stops, and Close (or a failure of Start) stops
// them in reverse order: the listeners, then the loops that follow the store (the usage recorder
// flushes as it stops), then the store. The caller must Close the node.
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
	n.tokens = &auth.TokenUses{}
	n.view.Uses = n.tokens
	n.bans = bans.New(bans.Config{AuthFailures: cfg.Bans.AuthFailures, NotFound: cfg.Bans.NotFound,
		Window: cfg.Bans.Window.D(), Duration: cfg.Bans.Duration.D(), OnBan: sharing.publish, Exempt: n.self.IsExit})
	defer func() {
		if err != nil { // undo what started, giving what it served timeouts.shutdown to finish
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.shutdownGrace)
			defer cancel()
			n.stop.run(sctx)
		}
	}()

	if n.store, err = store.Open(ctx, cfg.Store); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	n.stop.push("store", func(context.Context) error { return n.store.Close() })
	n.usage = usage.NewRecorder(n.store)
	sharing.store, sharing.tracker = n.store, n.bans

	if cfg.AccessLog.Path != "" {
		n.accessLog, err = accesslog.Open(accesslog.Config{Path: cfg.AccessLog.Path, Paths: cfg.AccessLog.Paths,
			Node: cfg.Node.Name, Dropped: n.metrics.AccessLogDropped, Log: log})
		if err != nil {
			return nil, err
		}
		n.stop.push("access log", n.accessLog.Close) // after the proxies, which write to it
	}

	n.dialer = newDialer(cfg.Egress, &n.self)
	n.egress.Store(n.dialer)
	n.proxies, err = hosting.Bind(hosting.Config{NewServer: n.newProxyServer, Metrics: n.metrics, Log: log,
		Grace: n.shutdownGrace, Failed: n.failed}, cfg.Proxies, n.dialer, cfg.Health)
	if err != nil {
		return nil, err
	}
	n.stop.push("proxy servers", n.proxies.Shutdown) // releases the listeners when they never served
	var metricsLn net.Listener
	if cfg.Metrics.Listen != "" {
		if metricsLn, err = net.Listen("tcp", cfg.Metrics.Listen); err != nil {
			return nil, fmt.Errorf("metrics listener: %w", err)
		}
		n.stop.push("metrics listener", func(context.Context) error { metricsLn.Close(); return nil })
		n.metricsAddr = metricsLn.Addr().String()
	}

	if err := Provision(ctx, n.store, cfg, n.proxies.Addrs()); err != nil {
		return nil, err
	}
	if err := n.view.Refresh(ctx, n.store); err != nil {
		return nil, fmt.Errorf("load accounts: %w", err)
	}
	if err := n.usage.Refresh(ctx); err != nil {
		return nil, fmt.Errorf("load month-to-date bandwidth: %w", err)
	}
	n.updateSelf()

	lookup := hostnames.NewLookup(cfg.Hostnames.Resolver)
	n.follow(ctx, sharing, lookup)
	n.stop.push("listeners", n.shutdownServers)
	n.proxies.Serve()
	if metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", n.metrics.Handler())
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: httpErrorLog(log)}
		n.serveHTTP("metrics", srv, metricsLn)
		log.Info("metrics listening", "addr", n.metricsAddr)
	}
	if cfg.Node.API {
		if err := n.startAPI(ctx, lookup); err != nil {
			return nil, err
		}
		n.updateSelf()
	}
	return n, nil
}

// follow starts the loops that keep the node in step with the store — the account view, usage,
// bans, hostnames and exit status — and registers how they stop.
func (n *Node) follow(ctx context.Context, sharing *banSharing, lookup hostnames.LookupFunc) {
	cfg, log := n.cfg, n.log
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	n.stop.push("followers", func(context.Context) error {
		cancel() // the usage recorder flushes once more as it stops
		wg.Wait()
		return nil
	})
	wake := make(chan struct{}, 1)
	wg.Go(func() {
		store.Watch(ctx, cfg.Store, func() {
			select {
			case wake <- struct{}{}:
			default: // a wake-up is pending already
			}
		}, log)
	})
	wg.Go(func() {
		n.view.Follow(ctx, n.store, cfg.Sync.Interval.D(), wake, cfg.Sync.FeedRetention.D(), log)
	})
	wg.Go(func() {
		n.usage.Run(ctx, cfg.Usage.FlushInterval.D(), cfg.Sync.Interval.D(), 10*time.Second, log)
	})
	wg.Go(func() { usage.PruneExits(ctx, n.store, cfg.Usage.ExitRetention.D(), log) })
	wg.Go(func() { sharing.run(ctx, cfg.Sync.Interval.D()) })
	wg.Go(func() { n.flushTokenUses(ctx, cfg.Usage.FlushInterval.D()) })
	sender := &webhooks.Sender{Store: n.store, Routes: webhookRoutes(cfg.Webhooks), Dialer: n.egress.Load,
		Interval: config.WebhookInterval, Log: log, Delivered: n.metrics.WebhookAttempt}
	wg.Go(func() { sender.Run(ctx) })
	refresher := &hostnames.Refresher{Store: n.store, Lookup: lookup, Interval: cfg.Hostnames.Interval.D(), Log: log,
		Changed: func(ctx context.Context) error { return n.view.Refresh(ctx, n.store) }}
	wg.Go(func() { refresher.Run(ctx) })
	wg.Go(func() { n.publishExitStatus(ctx, cfg.Node.Name, cfg.Health.Interval.D()) })
}

// flushTokenUses writes when API tokens were last used, every interval and once more as it stops.
func (n *Node) flushTokenUses(ctx context.Context, interval time.Duration) {
	loop.Loop{Interval: interval, Timeout: 10 * time.Second, Log: n.log,
		Step:    func(ctx context.Context) error { return n.tokens.Flush(ctx, n.store) },
		Failing: "API token uses not recorded; keeping them for the next try", Recovered: "API token uses recorded again"}.Run(ctx)
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := n.tokens.Flush(fctx, n.store); err != nil {
		n.log.Warn("API token uses not recorded at stop", "err", err)
	}
}

// serveHTTP serves srv on ln until Close; the listeners step of the teardown shuts it down.
func (n *Node) serveHTTP(what string, srv *http.Server, ln net.Listener) {
	n.httpServers = append(n.httpServers, srv)
	n.wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.failed(fmt.Errorf("%s: %w", what, err))
		}
	})
}

// shutdownServers stops every listener at once — proxy servers, metrics, API — so that none keeps
// accepting while another drains, then lets requests and tunnels finish until ctx ends.
func (n *Node) shutdownServers(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, srv := range n.httpServers {
		wg.Go(func() { srv.Shutdown(ctx) })
	}
	err := n.proxies.Shutdown(ctx)
	wg.Wait()
	n.wg.Wait()
	return err
}

// failed reports the first failure of a listener (Err).
func (n *Node) failed(err error) {
	select {
	case n.serveErr <- err:
	default: // a failure is already waiting; the first one is reported
	}
}

func httpErrorLog(log *slog.Logger) *stdlog.Logger {
	return slog.NewLogLogger(log.Handler(), slog.LevelDebug)
}

func newDialer(e config.Egress, self *egress.Self) *egress.Dialer {
	return &egress.Dialer{Policy: &egress.Policy{Allow: e.Allow, DenyPorts: e.DenyPorts, Self: self}}
}

// updateSelf tells the egress policy and the bans the node's own addresses: its bound listeners,
// the addresses its proxy servers are advertised at, and its exits. Start calls it once the
// listeners are bound, a reload once it is committed.
func (n *Node) updateSelf() {
	var a egress.SelfAddrs
	n.proxies.AddSelf(&a)
	for _, addr := range []string{n.metricsAddr, n.apiAddr, n.apiHTTPAddr} {
		if ap, err := netip.ParseAddrPort(addr); err == nil {
			a.Listeners = append(a.Listeners, ap)
		}
	}
	n.self.Set(a)
}

// newProxyServer makes the server of a proxy server; every proxy server shares the node's accounts,
// bans, usage, metrics, timeouts and connection limits.
func (n *Node) newProxyServer(name string, pool *exits.Pool, cert func() *tls.Certificate) *proxy.Server {
	cfg := n.cfg
	return proxy.New(proxy.Config{
		Name:             name,
		NodeName:         cfg.Node.Name,
		Pool:             pool,
		Certificate:      cert,
		Accounts:         n.view,
		Bans:             n.bans,
		Usage:            n.usage,
		AccessLog:        n.accessLog,
		Metrics:          n.metrics,
		Log:              n.log,
		OriginTimeout:    cfg.Timeouts.Origin.D(),
		MaxOriginTimeout: cfg.Timeouts.MaxOrigin.D(),
		TunnelIdle:       cfg.Timeouts.TunnelIdle.D(),
		MeterInterval:    cfg.Usage.MeterInterval.D(),
		ReadHeader:       cfg.Timeouts.ReadHeader.D(),
		Idle:             cfg.Timeouts.Idle.D(),
		MaxHeaderBytes:   int(cfg.Limits.MaxHeaderBytes),
		MaxHeaderFields:  cfg.Limits.MaxHeaderFields,
		WriteTimeout:     cfg.Timeouts.Write.D(),
		ConnsPerIP:       n.connsPerIP,
		ConnsPerAccount:  n.connsPerAccount,
		Rates:            &n.rates,
		SessionTTL:       cfg.Sessions.TTL.D(),
		MaxSessions:      cfg.Sessions.Max,
		Retries:          cmp.Or(cfg.Retries, -1), // 0 in the file is none; 0 here would be the default
	})
}

// Provision creates or updates the plans the config declares and registers its proxy servers in
// the catalogue. addrs overrides a proxy's advertised address when the config left it at the listen
// address (the bound address is then the true one, e.g. with port 0).
func Provision(ctx context.Context, s domain.Store, cfg *config.Config, addrs map[string]string) error {
	for _, p := range cfg.Plans {
		err := s.PutPlan(ctx, domain.Plan{Name: p.Name, MaxProxies: p.Proxies, MaxSubs: p.Subs, MaxIPs: p.IPs,
			MaxHostnames: p.Hostnames, MonthlyBandwidth: int64(p.Bandwidth), MaxTokens: p.Tokens,
			Rate: p.Rate, Speed: int64(p.Speed), Connections: p.Connections})
		if err != nil {
			return fmt.Errorf("provision plan %s: %w", p.Name, err)
		}
	}
	for _, p := range cfg.Proxies {
		addr := p.Address
		if bound, ok := addrs[p.Name]; ok && (addr == "" || addr == p.Listen) {
			addr = bound
		}
		ps := domain.ProxyServer{Name: p.Name, Address: addr, Country: p.Country, TLS: p.TLS != nil, Places: places(p.Exits)}
		if err := s.PutProxyServer(ctx, ps); err != nil {
			return fmt.Errorf("provision proxy server %s: %w", p.Name, err)
		}
	}
	return nil
}

// places lists where exits are, for the catalogue; the store sorts the lists and drops repeats.
func places(exits []config.Exit) domain.Places {
	var pl domain.Places
	for _, e := range exits {
		if e.Country != "" {
			pl.Countries = append(pl.Countries, e.Country)
		}
		if e.Region != "" {
			pl.Regions = append(pl.Regions, e.Region)
		}
		if e.City != "" {
			pl.Cities = append(pl.Cities, e.City)
		}
		if e.ASN != 0 {
			pl.ASNs = append(pl.ASNs, e.ASN)
		}
	}
	return pl
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
func (n *Node) ProxyAddr(name string) string { return n.proxies.Addr(name) }

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
// flushes usage and closes the store: what Start started, in reverse order.
func (n *Node) Close(ctx context.Context) error {
	n.reloadMu.Lock() // a reload under way finishes first; none starts after
	n.closed = true
	n.reloadMu.Unlock()
	return n.stop.run(ctx)
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

// ReopenAccessLog makes the access log open its file again (SIGUSR1, after logrotate renamed it).
func (n *Node) ReopenAccessLog() { n.accessLog.Reopen() }

// webhookRoutes are the operator's webhooks from the config.
func webhookRoutes(ws []config.Webhook) []webhooks.Route {
	out := make([]webhooks.Route, len(ws))
	for i, w := range ws {
		out[i] = webhooks.Route{WebhookRoute: domain.WebhookRoute{URL: w.URL, Events: w.Events}, Secret: w.Secret}
	}
	return out
}
