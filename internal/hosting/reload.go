package hosting

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"syscall"

	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/egress"
	"github.com/exitmesh/exitmesh/internal/exits"
)

// Changes is what a reload changed, by proxy server name in config order.
type Changes struct {
	Added, Removed, Changed []string
}

// Reload is a prepared reload: whatever could fail is done, and nothing of it is in use yet. Commit
// puts it in service, Abort undoes it; one of them must be called.
type Reload struct {
	set     *Set
	proxies []*hosted // the new set, in config order
	added   []*hosted // without a server yet
	updates []update
	removed []*hosted
	health  exits.HealthConfig
	changes Changes
}

// update is a running proxy server and what it becomes: next shares its server, and has a new pool
// or listener where those changed. cert is its certificate, read again (nil: no TLS any more).
type update struct {
	cur, next *hosted
	cert      *tls.Certificate
}

func (u update) newPool() bool     { return u.next.pool != u.cur.pool }
func (u update) newListener() bool { return u.next.ln != u.cur.ln }

// Prepare builds the pools and binds the listeners proxies needs beyond what runs. A proxy server
// whose exits, active count or turnover changed gets a new pool, and so does every one when rebuild
// is set (a new egress policy in dialer, new health settings). The caller serializes Prepare and
// Commit.
func (s *Set) Prepare(proxies []config.Proxy, dialer *egress.Dialer, health config.Health, rebuild bool) (_ *Reload, err error) {
	r := &Reload{set: s, health: healthConfig(health)}
	defer func() {
		if err != nil {
			r.Abort()
		}
	}()
	running := s.current()
	current := make(map[string]*hosted, len(running))
	for _, hp := range running {
		current[hp.cfg.Name] = hp
	}
	for i, pc := range proxies {
		cur, ok := current[pc.Name]
		if !ok {
			hp, err := prepare(i, pc, dialer)
			if err != nil {
				return nil, explainBind(err, pc, running)
			}
			r.added = append(r.added, hp)
			r.proxies = append(r.proxies, hp)
			r.changes.Added = append(r.changes.Added, pc.Name)
			continue
		}
		delete(current, pc.Name)
		next := *cur
		next.cfg = pc
		cert, err := loadCertificate(i, pc) // read again at every reload: a renewed certificate is taken
		if err != nil {
			return nil, err
		}
		u := update{cur: cur, next: &next, cert: cert}
		r.updates = append(r.updates, u) // before the steps that may fail, so Abort finds their parts
		r.proxies = append(r.proxies, u.next)
		if rebuild || !slices.Equal(pc.Exits, cur.cfg.Exits) || pc.Active != cur.cfg.Active || pc.Turnover != cur.cfg.Turnover {
			if next.pool, err = preparePool(i, pc, dialer); err != nil {
				next.pool = cur.pool
				return nil, err
			}
		}
		if pc.Listen != cur.cfg.Listen {
			if next.ln, err = listen(i, pc); err != nil {
				next.ln = cur.ln
				return nil, explainBind(err, pc, running)
			}
		}
		if u.newPool() || u.newListener() || pc.Address != cur.cfg.Address || pc.Country != cur.cfg.Country || !sameTLS(pc.TLS, cur.cfg.TLS) {
			r.changes.Changed = append(r.changes.Changed, pc.Name)
		}
	}
	for _, hp := range running {
		if _, gone := current[hp.cfg.Name]; gone {
			r.removed = append(r.removed, hp)
			r.changes.Removed = append(r.changes.Removed, hp.cfg.Name)
		}
	}
	return r, nil
}

// explainBind adds a hint to an address-in-use error when a running proxy server holds the port, as
// when one reload moves a listen address from one proxy server to another.
func explainBind(err error, pc config.Proxy, running []*hosted) error {
	if !errors.Is(err, syscall.EADDRINUSE) {
		return err
	}
	_, port, _ := net.SplitHostPort(pc.Listen)
	for _, hp := range running {
		if _, held, _ := net.SplitHostPort(hp.ln.Addr().String()); held == port {
			return fmt.Errorf("%w (proxy server %s holds that port until this reload completes: free it in one reload, take it in the next)", err, hp.cfg.Name)
		}
	}
	return err
}

// Addrs maps each proxy server of the reload to its bound address.
func (r *Reload) Addrs() map[string]string { return boundAddrs(r.proxies) }

// Abort releases what Prepare made.
func (r *Reload) Abort() {
	for _, hp := range r.added {
		hp.ln.Close()
		hp.pool.CloseIdle()
	}
	for _, u := range r.updates {
		if u.newListener() {
			u.next.ln.Close()
		}
		if u.newPool() {
			u.next.pool.CloseIdle()
		}
	}
}

// Commit puts a prepared reload in service and returns what it changed; nothing in it can fail.
// before runs once the new set is published and before any new listener serves (the node updates
// the addresses its egress refuses there).
//   - a proxy server with a new pool swaps to it; requests and tunnels in flight keep their exit;
//   - a new proxy server is served;
//   - a removed one stops accepting at once and its tunnels may finish, in the background, for up to
//     Config.Grace;
//   - a proxy server whose listen address changed serves on the new one; connections accepted on the
//     old one go on.
func (r *Reload) Commit(before func()) Changes {
	s := r.set
	for _, hp := range r.added {
		hp.server = s.cfg.NewServer(hp.cfg.Name, hp.pool, hp.cert.Get)
	}
	for _, u := range r.updates {
		u.next.cert.cert.Store(u.cert)
	}
	s.mu.Lock()
	s.health = r.health
	for _, hp := range r.added {
		hp.stop = s.startPool(hp.cfg, hp.pool)
	}
	for _, u := range r.updates {
		if u.newPool() {
			u.next.stop = s.startPool(u.next.cfg, u.next.pool) // before the swap, so the pool is ready when it serves
		}
	}
	s.proxies = r.proxies
	s.mu.Unlock()
	before()

	for _, u := range r.updates {
		name := u.next.cfg.Name
		if u.newPool() {
			u.next.server.SetPool(u.next.pool) // in-flight requests and tunnels keep their exit
			releasePool(u.cur.pool, u.cur.stop)
			s.cfg.Log.Info("proxy server exits replaced", "proxy", name, "exits", len(u.next.cfg.Exits))
		}
		if u.newListener() {
			s.serve(u.next, u.next.ln)
			u.cur.ln.retire() // connections it accepted go on, on the same server
			s.cfg.Log.Info("proxy server moved", "proxy", name, "from", u.cur.ln.Addr().String(), "to", u.next.ln.Addr().String())
		}
	}
	for _, hp := range r.added {
		s.serve(hp, hp.ln)
	}
	for _, hp := range r.removed {
		s.drain(hp)
	}
	return r.changes
}

// releasePool stops what ran for a pool that no longer serves new requests and closes its idle
// connections. Tunnels it opened keep their connections.
// sameTLS reports whether two proxy servers' tls settings name the same files.
func sameTLS(a, b *config.ProxyTLS) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

func releasePool(pool *exits.Pool, stop func()) {
	stop()
	pool.CloseIdle()
}

// drain stops a removed proxy server: it refuses new connections at once, and in the background its
// requests and tunnels may finish for up to Config.Grace before they are closed.
func (s *Set) drain(hp *hosted) {
	hp.ln.retire()
	s.cfg.Log.Info("proxy server removed; draining", "proxy", hp.cfg.Name, "grace", s.cfg.Grace)
	s.draining.Go(func() {
		ctx, cancel := context.WithTimeout(s.drainCtx, s.cfg.Grace)
		defer cancel()
		hp.server.Shutdown(ctx) // its only errors: the retired listener, the grace running out
		releasePool(hp.pool, hp.stop)
		s.cfg.Log.Info("removed proxy server drained", "proxy", hp.cfg.Name, "tunnels_closed", ctx.Err() != nil)
	})
}
