package hosting

import (
	"context"
	"sync"

	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/exits"
)

// startPool starts what a pool runs while it serves — its health checks and turnover — and returns
// what stops them, so that a reload stops the replaced pool's when it swaps pools and a removed proxy
// server's once it has drained. The caller holds s.mu.
func (s *Set) startPool(pc config.Proxy, pool *exits.Pool) (stop func()) {
	health := s.health
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.runPoolLoops(ctx, pc, health, pool)
	}()
	return func() {
		cancel()
		<-done
	}
}

// runPoolLoops runs the health checks and the turnover of one proxy server's pool until ctx ends,
// reporting both in metrics and logs.
func (s *Set) runPoolLoops(ctx context.Context, pc config.Proxy, health exits.HealthConfig, pool *exits.Pool) {
	m := s.cfg.Metrics.Proxy(pc.Name)
	log := s.cfg.Log.With("proxy", pc.Name)
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
