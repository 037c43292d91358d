package node

import (
	"context"
	"github.com/exitmesh/exitmesh/internal/loop"
	"sync"
	"time"

	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/exits"
)

// runPoolLoops runs the health checks and the turnover of one proxy server's pool until ctx ends,
// reporting both in metrics and logs.
func (n *Node) runPoolLoops(ctx context.Context, pc config.Proxy, health exits.HealthConfig, pool *exits.Pool) {
	m := n.metrics.Proxy(pc.Name)
	log := n.log.With("proxy", pc.Name)
	var wg sync.WaitGroup
	wg.Go(func() {
		pool.RunHealthChecks(ctx, health, func(r exits.CheckResult) {
			m.ExitChecked(r.Exit.IP, r.Exit.Healthy(), r.Exit.Active(), r.Latency, r.Err)
			switch {
			case r.Changed && r.Exit.Healthy():
				log.Info("exit back in rotation", "exit", r.Exit.IP, "good_checks", r.InARow, "latency", r.Latency)
			case r.Changed:
				log.Warn("exit out of rotation", "exit", r.Exit.IP, "failed_checks", r.InARow, "err", r.Err)
			}
		})
	})
	wg.Go(func() {
		pool.RunTurnover(ctx, exits.Turnover{Active: pc.Active, Every: pc.Turnover.D()}, func(active []*exits.Exit) {
			for _, e := range pool.Exits() {
				m.ExitActive(e.IP, e.Active())
			}
			ips := make([]string, len(active))
			for i, e := range active {
				ips[i] = e.IP.String()
			}
			log.Info("exit pool turned over", "active", ips)
		})
	})
	wg.Wait()
}

func healthConfig(h config.Health) exits.HealthConfig {
	return exits.HealthConfig{Target: h.Target, Interval: h.Interval.D(), Timeout: h.Timeout.D(), Fall: h.Fall, Rise: h.Rise}
}

// publishExitStatus reports the health of this node's exits to the store every interval until ctx
// ends, so operators see every node's exits in one place.
func (n *Node) publishExitStatus(ctx context.Context, node string, interval time.Duration) {
	loop.Loop{Interval: interval, Now: true, Log: n.log,
		Failing: "cannot report exit health to the store", Recovered: "exit health reported to the store again",
		Step: func(ctx context.Context) error { return n.store.PutExitStatuses(ctx, node, n.exitStatuses(node)) },
	}.Run(ctx)
}

// exitStatuses returns the health of every exit of this node's proxy servers now.
func (n *Node) exitStatuses(node string) []domain.ExitStatus {
	now := time.Now().UTC()
	var out []domain.ExitStatus
	for _, hp := range n.hostedProxies() {
		for _, e := range hp.server.Pool().Exits() {
			st := e.Status()
			out = append(out, domain.ExitStatus{Node: node, Proxy: hp.cfg.Name, IP: e.IP, Via: e.Via(),
				Healthy: st.Healthy, Active: st.Active, Latency: st.Latency, Checks: int64(st.Checks),
				Failures: int64(st.Failures), LastError: st.LastError, Since: st.Since, Updated: now})
		}
	}
	return out
}
