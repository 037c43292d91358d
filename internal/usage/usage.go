// Package usage counts traffic per account, sub-account, proxy server and UTC day in memory and writes
// it to the store in batches, so the proxy never writes to the store per request. It also keeps each
// login's bandwidth in its billing period and for all time across the nodes (the ledger), which the
// proxy checks against the limits covering the login.
package usage

import (
	"context"
	"crypto/rand"
	"fmt"
	"github.com/exitmesh/exitmesh/internal/loop"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// Sink is where batches go and where the month's totals come from: the store.
type Sink interface {
	AddUsage(ctx context.Context, batch string, deltas map[domain.UsageKey]domain.UsageCounts) error
	Bandwidth(ctx context.Context, periods []string, batch string) (domain.BandwidthFigures, error)
}

// Recorder accumulates usage until Flush, and keeps the ledger of bandwidth figures (see Figures).
type Recorder struct {
	sink Sink
	now  func() time.Time

	day     atomic.Pointer[utcDay]  // today's date string, formatted once a day rather than per request
	current atomic.Pointer[periods] // today's current billing periods
	figures sync.Map                // domain.BandwidthKey → *atomic.Int64, as described in ledger.go
	logins  sync.Map                // loginKey → *loginCounters: the counters a request reads

	mu      sync.Mutex // guards pending
	pending map[domain.UsageKey]domain.UsageCounts

	flushMu sync.Mutex // one flush or refresh at a time; guards the following fields
	unsent  *batch     // a batch whose write failed: retried as it is, under the same id
	ledger  ledgerState
}

// batch is a set of deltas written to the store at most once, by id.
type batch struct {
	id     string
	deltas map[domain.UsageKey]domain.UsageCounts
}

type utcDay struct {
	n    int64 // days since the Unix epoch
	text string
}

func (r *Recorder) today(now time.Time) string {
	now = now.UTC()
	n := now.Unix() / 86400
	if d := r.day.Load(); d != nil && d.n == n {
		return d.text
	}
	d := &utcDay{n: n, text: now.Format(time.DateOnly)}
	r.day.Store(d)
	return d.text
}

// NewRecorder returns a recorder that flushes to sink.
func NewRecorder(sink Sink) *Recorder {
	return &Recorder{sink: sink, now: time.Now, pending: make(map[domain.UsageKey]domain.UsageCounts),
		ledger: ledgerState{stored: map[domain.BandwidthKey]int64{}, written: map[domain.BandwidthKey]int64{}}}
}

// Add records c for a login on a proxy server through exit (invalid: unknown) now.
func (r *Recorder) Add(l Login, proxy string, exit netip.Addr, c domain.UsageCounts) {
	now := r.now()
	k := domain.UsageKey{AccountID: l.AccountID, SubID: l.SubID, Proxy: proxy, Day: r.today(now), Exit: exit}
	if exit.IsValid() {
		k.Hour = now.Unix() - now.Unix()%3600
	}
	// The figures first: until the bytes are pending too, no flush can write them and no refresh can
	// find them in the store, so the figures never count them twice.
	r.ledger.billingDay(l.AccountID, l.BillingDay)
	r.addToLedger(l, c.BytesIn+c.BytesOut)
	r.mu.Lock()
	total := r.pending[k]
	total.Add(c)
	r.pending[k] = total
	r.mu.Unlock()
}

// Flush writes what has accumulated. A batch whose write failed is kept and retried unchanged before
// anything newer, under its id, so a retry after an unknown commit outcome cannot count it twice, and
// a store outage delays usage but loses none of it.
func (r *Recorder) Flush(ctx context.Context) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	for {
		if r.unsent == nil {
			r.mu.Lock()
			deltas := r.pending
			r.pending = make(map[domain.UsageKey]domain.UsageCounts, len(deltas))
			r.mu.Unlock()
			if len(deltas) == 0 {
				return nil
			}
			r.unsent = &batch{id: rand.Text(), deltas: deltas}
		}
		if err := r.sink.AddUsage(ctx, r.unsent.id, r.unsent.deltas); err != nil {
			return fmt.Errorf("flush usage (batch of %d counters kept for the next try): %w", len(r.unsent.deltas), err)
		}
		r.wrote(r.unsent.deltas)
		r.unsent = nil
	}
}

// Run flushes every flushEvery and refreshes the bandwidth figures every refreshEvery until ctx
// ends, then flushes once more within finalWait. A flush that fails keeps its counters for the next
// one; a refresh that fails leaves the figures counting this node's traffic meanwhile.
func (r *Recorder) Run(ctx context.Context, flushEvery, refreshEvery, finalWait time.Duration, log *slog.Logger) {
	var wg sync.WaitGroup
	wg.Go(func() {
		loop.Loop{Interval: flushEvery, Step: r.Flush, Log: log,
			Failing: "usage not flushed; the counters are kept for the next try", Recovered: "usage flushed again"}.Run(ctx)
	})
	wg.Go(func() {
		loop.Loop{Interval: refreshEvery, Timeout: 5 * time.Second, Step: r.Refresh, Log: log,
			Failing:   "bandwidth figures not refreshed; counting this node's traffic only",
			Recovered: "bandwidth figures refreshed again"}.Run(ctx)
	})
	wg.Wait()
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalWait)
	defer cancel()
	if err := r.Flush(fctx); err != nil {
		log.Error("usage lost at shutdown", "err", err)
	}
}

// ExitPruner deletes the exits' hourly records that ended before a time: the store.
type ExitPruner interface {
	PruneExitUsage(ctx context.Context, before time.Time) (int64, error)
}

// PruneExits deletes the exits' hourly records older than retention at once and then every hour,
// until ctx ends. Every node runs it; the deletes are idempotent.
func PruneExits(ctx context.Context, s ExitPruner, retention time.Duration, log *slog.Logger) {
	loop.Loop{Interval: time.Hour, Timeout: time.Minute, Now: true, Log: log,
		Step: func(ctx context.Context) error {
			n, err := s.PruneExitUsage(ctx, time.Now().Add(-retention))
			if n > 0 {
				log.Info("exit usage pruned", "rows", n, "older than", retention)
			}
			return err
		},
		Failing: "exit usage not pruned", Recovered: "exit usage pruned again"}.Run(ctx)
}
