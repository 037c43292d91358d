package exits

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// HealthConfig says how a pool checks its exits. Each check reaches Target through the exit — a TCP
// connection for host:port, a GET answered below 500 for an http:// or https:// URL — within
// Timeout. Fall consecutive failures take an exit out of rotation; Rise consecutive successes bring
// it back. An empty Target disables checking: every exit counts as healthy.
type HealthConfig struct {
	Target   string
	Interval time.Duration
	Timeout  time.Duration
	Fall     int
	Rise     int
}

// Enabled reports whether exits are checked at all.
func (c HealthConfig) Enabled() bool { return c.Target != "" }

// health is an exit's state as the checks see it. The hot path reads only the atomics.
type health struct {
	down    atomic.Bool  // out of rotation; the zero value is healthy, so an unchecked exit is used
	retired atomic.Bool  // left out of the active set by pool turnover
	latency atomic.Int64 // of the last successful check, in nanoseconds
	checks  atomic.Uint64
	fails   atomic.Uint64

	mu      sync.Mutex // guards the following fields; held only by the pool's checker and readers of Status
	streak  int        // consecutive results of the same kind: >0 successes, <0 failures
	lastErr string
	since   time.Time // when the exit last entered or left rotation
}

// Healthy reports whether the exit is in rotation as far as health checks go.
func (e *Exit) Healthy() bool { return !e.health.down.Load() }

// Active reports whether pool turnover currently has the exit in its active set.
func (e *Exit) Active() bool { return !e.health.retired.Load() }

// HealthStatus is a snapshot of an exit's health for operators.
type HealthStatus struct {
	Healthy   bool
	Active    bool
	Latency   time.Duration // of the last successful check
	Checks    uint64
	Failures  uint64
	LastError string // of the last failed check, "" after a success
	Since     time.Time
}

// Status returns the exit's health now.
func (e *Exit) Status() HealthStatus {
	h := &e.health
	h.mu.Lock()
	defer h.mu.Unlock()
	return HealthStatus{Healthy: !h.down.Load(), Active: !h.retired.Load(), Latency: time.Duration(h.latency.Load()),
		Checks: h.checks.Load(), Failures: h.fails.Load(), LastError: h.lastErr, Since: h.since}
}

// record applies one check's result and reports whether the exit entered or left rotation, and how
// many checks in a row have had this result.
func (e *Exit) record(cfg HealthConfig, latency time.Duration, err error, now time.Time) (changed bool, streak int) {
	h := &e.health
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks.Add(1)
	if err == nil {
		h.latency.Store(int64(latency))
		h.lastErr = ""
		h.streak = max(h.streak, 0) + 1
		if h.down.Load() && h.streak >= cfg.Rise {
			h.down.Store(false)
			h.since = now
			return true, h.streak
		}
		return false, h.streak
	}
	h.fails.Add(1)
	h.lastErr = err.Error()
	h.streak = min(h.streak, 0) - 1
	if !h.down.Load() && -h.streak >= cfg.Fall {
		h.down.Store(true)
		h.since = now
		return true, -h.streak
	}
	return false, -h.streak
}

// CheckResult is one health check of one exit, for metrics and logs.
type CheckResult struct {
	Exit    *Exit
	Latency time.Duration
	Err     error
	Changed bool // the exit entered (Healthy) or left rotation with this check
	InARow  int  // checks in a row with this result, this one included
}

// RunHealthChecks checks every exit of the pool each cfg.Interval until ctx ends, calling observe
// (if not nil) with each result. Exits are checked concurrently, each within cfg.Timeout, so one
// slow exit does not delay the others' verdicts.
func (p *Pool) RunHealthChecks(ctx context.Context, cfg HealthConfig, observe func(CheckResult)) {
	if !cfg.Enabled() {
		return
	}
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		p.checkAll(ctx, cfg, observe)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *Pool) checkAll(ctx context.Context, cfg HealthConfig, observe func(CheckResult)) {
	var wg sync.WaitGroup
	for _, e := range p.exits {
		wg.Go(func() {
			start := time.Now()
			err := e.check(ctx, cfg)
			if ctx.Err() != nil {
				return // stopping: a check cut short says nothing about the exit
			}
			r := CheckResult{Exit: e, Latency: time.Since(start), Err: err}
			r.Changed, r.InARow = e.record(cfg, r.Latency, err, time.Now())
			if observe != nil {
				observe(r)
			}
		})
	}
	wg.Wait()
}

// check reaches cfg.Target through the exit once.
func (e *Exit) check(ctx context.Context, cfg HealthConfig) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if !strings.HasPrefix(cfg.Target, "http://") && !strings.HasPrefix(cfg.Target, "https://") {
		c, err := e.Dial(ctx, cfg.Target)
		if err != nil {
			return err
		}
		return c.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.Target, nil)
	if err != nil {
		return fmt.Errorf("health target: %w", err)
	}
	req.Header.Set("User-Agent", "exitmesh-health-check")
	resp, err := e.RoundTrip(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return errors.New("health target answered " + resp.Status)
	}
	return nil
}
