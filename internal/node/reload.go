package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"syscall"

	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/egress"
	"github.com/exitmesh/exitmesh/internal/exits"
)

// Changes is what a Reload changed.
type Changes struct {
	Added, Removed, Changed []string // proxy server names, in config order
	// Restart lists the keys whose new value waits for a restart; the running value stays.
	Restart []string
}

// reloadable are the top-level config keys a Reload applies; every other key needs a restart.
var reloadable = []string{"proxies", "egress", "plans", "health"}

// Reload applies newCfg's proxy servers, exits, egress policy and plans to the running node:
//   - a proxy server whose exits changed gets a new pool; requests and tunnels in flight keep their
//     exit;
//   - a new proxy server is bound and served;
//   - a removed one stops accepting at once and its tunnels may finish, in the background, for up to
//     timeouts.shutdown;
//   - a proxy server whose listen address changed serves on the new one; connections accepted on the
//     old one go on;
//   - plans and the proxy catalogue are provisioned again.
//
// Every other key needs a restart: Reload logs a warning naming each one that changed and keeps
// its running value.
//
// Reload is all or nothing: it validates, builds every pool and binds every new listener before it
// changes anything, and on any error it undoes that preparation and returns the error, leaving the
// node as it was. Reloads are serialized; after Close, Reload fails.
func (n *Node) Reload(ctx context.Context, newCfg *config.Config) (Changes, error) {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	if n.closed {
		return Changes{}, errors.New("reload: the node is shutting down")
	}
	if err := newCfg.Validate(); err != nil {
		return Changes{}, fmt.Errorf("invalid config: %w", err)
	}
	running, restart := mergeReloadable(n.cfg, newCfg)
	p, err := n.prepareReload(running)
	if err != nil {
		return Changes{}, err
	}
	if err := Provision(ctx, n.store, running, boundAddrs(p.proxies)); err != nil {
		p.abort()
		return Changes{}, err
	}
	n.cfg = running
	n.commitReload(p)
	for _, key := range restart {
		n.log.Warn("config key changed but needs a restart; keeping the running value", "key", key)
	}
	p.changes.Restart = restart
	return p.changes, nil
}

// mergeReloadable returns the config a reload runs, newCfg's reloadable keys and old's others, with
// the keys whose change waits for a restart.
func mergeReloadable(old, newCfg *config.Config) (*config.Config, []string) {
	running := *old
	running.Proxies, running.Egress, running.Plans, running.Health = newCfg.Proxies, newCfg.Egress, newCfg.Plans, newCfg.Health
	var restart []string
	for _, key := range config.ChangedKeys(old, newCfg) {
		top, _, _ := strings.Cut(key, ".")
		if !slices.Contains(reloadable, top) {
			restart = append(restart, key)
		}
	}
	return &running, restart
}

// reloadPlan is a prepared reload: whatever could fail is done, and nothing of it is in use yet.
type reloadPlan struct {
	proxies []*hostedProxy // the new set, in config order
	added   []*hostedProxy // without a server yet
	updates []proxyUpdate
	removed []*hostedProxy
	dialer  *egress.Dialer
	changes Changes
}

// proxyUpdate is a running proxy server and what it becomes: next shares its server, and has a new
// pool or listener where those changed.
type proxyUpdate struct {
	cur, next *hostedProxy
}

func (u proxyUpdate) newPool() bool     { return u.next.pool != u.cur.pool }
func (u proxyUpdate) newListener() bool { return u.next.ln != u.cur.ln }

// prepareReload builds the pools and binds the listeners cfg needs beyond what runs.
func (n *Node) prepareReload(cfg *config.Config) (_ *reloadPlan, err error) {
	p := &reloadPlan{dialer: n.dialer}
	defer func() {
		if err != nil {
			p.abort()
		}
	}()
	changed := config.ChangedKeys(n.cfg, cfg)
	egressChanged := slices.ContainsFunc(changed, func(k string) bool { return strings.HasPrefix(k, "egress.") })
	if egressChanged {
		p.dialer = newDialer(cfg.Egress, &n.self) // every pool is rebuilt with the new policy
	}
	// New health settings rebuild every pool too: its checks start afresh with them.
	rebuild := egressChanged || slices.ContainsFunc(changed, func(k string) bool { return strings.HasPrefix(k, "health.") })
	current := make(map[string]*hostedProxy, len(n.proxies))
	for _, hp := range n.proxies {
		current[hp.cfg.Name] = hp
	}
	for i, pc := range cfg.Proxies {
		cur, ok := current[pc.Name]
		if !ok {
			hp, err := prepareProxy(i, pc, p.dialer)
			if err != nil {
				return nil, n.explainBind(err, pc)
			}
			p.added = append(p.added, hp)
			p.proxies = append(p.proxies, hp)
			p.changes.Added = append(p.changes.Added, pc.Name)
			continue
		}
		delete(current, pc.Name)
		next := *cur
		next.cfg = pc
		u := proxyUpdate{cur: cur, next: &next}
		p.updates = append(p.updates, u) // before the steps that may fail, so abort finds their parts
		p.proxies = append(p.proxies, u.next)
		if rebuild || !slices.Equal(pc.Exits, cur.cfg.Exits) || pc.Active != cur.cfg.Active || pc.Turnover != cur.cfg.Turnover {
			if next.pool, err = preparePool(i, pc, p.dialer); err != nil {
				next.pool = cur.pool
				return nil, err
			}
		}
		if pc.Listen != cur.cfg.Listen {
			if next.ln, err = listenProxy(i, pc); err != nil {
				next.ln = cur.ln
				return nil, n.explainBind(err, pc)
			}
		}
		if u.newPool() || u.newListener() || pc.Address != cur.cfg.Address || pc.Country != cur.cfg.Country {
			p.changes.Changed = append(p.changes.Changed, pc.Name)
		}
	}
	for _, hp := range n.proxies {
		if _, gone := current[hp.cfg.Name]; gone {
			p.removed = append(p.removed, hp)
			p.changes.Removed = append(p.changes.Removed, hp.cfg.Name)
		}
	}
	return p, nil
}

// explainBind adds a hint to an address-in-use error when this node itself holds the port, as when
// one reload moves a listen address from one proxy server to another.
func (n *Node) explainBind(err error, pc config.Proxy) error {
	if !errors.Is(err, syscall.EADDRINUSE) {
		return err
	}
	_, port, _ := net.SplitHostPort(pc.Listen)
	for _, hp := range n.proxies {
		if _, held, _ := net.SplitHostPort(hp.ln.Addr().String()); held == port {
			return fmt.Errorf("%w (proxy server %s holds that port until this reload completes: free it in one reload, take it in the next)", err, hp.cfg.Name)
		}
	}
	return err
}

// abort releases what prepareReload made.
func (p *reloadPlan) abort() {
	for _, hp := range p.added {
		hp.ln.Close()
		hp.pool.CloseIdle()
	}
	for _, u := range p.updates {
		if u.newListener() {
			u.next.ln.Close()
		}
		if u.newPool() {
			u.next.pool.CloseIdle()
		}
	}
}

// commitReload puts a prepared reload in service; nothing in it can fail.
func (n *Node) commitReload(p *reloadPlan) {
	for _, hp := range p.added {
		hp.server = n.newProxyServer(hp.cfg.Name, hp.pool)
		hp.stop = n.startPool(hp.cfg, hp.pool)
	}
	for _, u := range p.updates {
		if u.newPool() {
			u.next.stop = n.startPool(u.next.cfg, u.next.pool) // before the swap, so the pool is ready when it serves
		}
	}
	n.proxiesMu.Lock()
	n.proxies = p.proxies
	n.proxiesMu.Unlock()
	n.dialer = p.dialer
	n.updateSelf() // before the new listeners serve

	for _, u := range p.updates {
		name := u.next.cfg.Name
		if u.newPool() {
			u.next.server.SetPool(u.next.pool) // in-flight requests and tunnels keep their exit
			releasePool(u.cur.pool, u.cur.stop)
			n.log.Info("proxy server exits replaced", "proxy", name, "exits", len(u.next.cfg.Exits))
		}
		if u.newListener() {
			n.serveProxy(u.next, u.next.ln)
			u.cur.ln.retire() // connections it accepted go on, on the same server
			n.log.Info("proxy server moved", "proxy", name, "from", u.cur.ln.Addr().String(), "to", u.next.ln.Addr().String())
		}
	}
	for _, hp := range p.added {
		n.serveProxy(hp, hp.ln)
	}
	for _, hp := range p.removed {
		n.drain(hp)
	}
}

// releasePool stops what ran for a pool that no longer serves new requests and closes its idle
// connections. Tunnels it opened keep their connections.
func releasePool(pool *exits.Pool, stop func()) {
	stop()
	pool.CloseIdle()
}

// drain stops a removed proxy server: it refuses new connections at once, and in the background its
// requests and tunnels may finish for up to timeouts.shutdown before they are closed.
func (n *Node) drain(hp *hostedProxy) {
	hp.ln.retire()
	n.log.Info("proxy server removed; draining", "proxy", hp.cfg.Name, "grace", n.shutdownGrace)
	n.draining.Go(func() {
		ctx, cancel := context.WithTimeout(n.drainCtx, n.shutdownGrace)
		defer cancel()
		hp.server.Shutdown(ctx) // its only errors: the retired listener, the grace running out
		releasePool(hp.pool, hp.stop)
		n.log.Info("removed proxy server drained", "proxy", hp.cfg.Name, "tunnels_closed", ctx.Err() != nil)
	})
}
