package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/hosting"
)

// Changes is what a Reload changed: the proxy servers added, removed and changed, by name in config
// order, and the keys whose new value waits for a restart (the running value stays).
type Changes struct {
	hosting.Changes
	Restart []string
}

// reloadable are the top-level config keys a Reload applies; every other key needs a restart.
var reloadable = []string{"proxies", "egress", "plans", "health"}

// Reload applies newCfg's proxy servers, exits, egress policy and plans to the running node: the
// proxy servers as hosting.Reload.Commit says (new pools and listeners where they changed, new ones
// served, removed ones drained for up to timeouts.shutdown), then plans and the proxy catalogue are
// provisioned again.
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
	changed := config.ChangedKeys(n.cfg, running)
	dialer := n.dialer
	egressChanged := slices.ContainsFunc(changed, func(k string) bool { return strings.HasPrefix(k, "egress.") })
	if egressChanged {
		dialer = newDialer(running.Egress, &n.self) // every pool is rebuilt with the new policy
	}
	// New health settings rebuild every pool too: its checks start afresh with them.
	rebuild := egressChanged || slices.ContainsFunc(changed, func(k string) bool { return strings.HasPrefix(k, "health.") })
	p, err := n.proxies.Prepare(running.Proxies, dialer, running.Health, rebuild)
	if err != nil {
		return Changes{}, err
	}
	if err := Provision(ctx, n.store, running, p.Addrs()); err != nil {
		p.Abort()
		return Changes{}, err
	}
	n.cfg, n.dialer = running, dialer
	n.egress.Store(dialer)
	c := Changes{Changes: p.Commit(n.updateSelf), Restart: restart} // updateSelf before the new listeners serve
	for _, key := range restart {
		n.log.Warn("config key changed but needs a restart; keeping the running value", "key", key)
	}
	return c, nil
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
