package usage

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// The bandwidth ledger: every login's bytes in its account's current billing period and for all
// time, which the proxy compares with the limits covering the login before each request and while a
// tunnel runs.
//
// Each figure (a login, or an account with all its sub-accounts; a period, or all time) is one
// atomic counter holding
//
//	the store's figure at the last Refresh + what this node recorded that the figure did not include.
//
// Add increments the counters at once. Refresh reads the store's figures again and moves each counter by
//
//	new figure − previous figure − this node's bytes the store took in between,
//
// which is exactly what other nodes flushed in between, so a figure never goes down within a period
// and never counts a byte twice. "This node's bytes the store took in between" is known exactly
// because Refresh and Flush hold the same lock: every batch Flush wrote since the previous Refresh
// committed after that Refresh's read and before this one's (written). A batch whose write failed
// with an unknown outcome is looked up by id in the same snapshot as the figures; if it is there, it
// joins written and is never sent again.

// Login is whose bytes are counted: an account's own traffic (SubID 0) or one of its sub-accounts',
// and the day its account's billing periods start.
type Login struct {
	AccountID, SubID int64
	BillingDay       int
}

// allSubs in a figure's SubID stands for the account with every sub-account.
const allSubs = -1

// Figures are the bytes (in + out) that limit a login: its own and its account's (every sub-account
// included), in the current billing period and for all time, through every node.
type Figures struct {
	Period, Total               int64 // the login's own
	AccountPeriod, AccountTotal int64 // its account's, sub-accounts included
}

// periods is the first day of the current billing period for each billing day, worked out once a day.
type periods struct {
	day    string // the UTC day they are for
	starts []string
}

func (r *Recorder) periods() *periods {
	day := r.today(r.now())
	if p := r.current.Load(); p != nil && p.day == day {
		return p
	}
	t, _ := time.Parse(time.DateOnly, day)
	p := &periods{day: day, starts: domain.CurrentPeriods(t)}
	r.current.Store(p)
	return p
}

// period is the first day of the current billing period for billingDay.
func (p *periods) period(billingDay int) string {
	if billingDay < 1 || billingDay > len(p.starts) {
		billingDay = 1
	}
	return p.starts[billingDay-1]
}

// keys are the four figures a login's bytes count in.
func keys(l Login, period string) [4]domain.BandwidthKey {
	return [4]domain.BandwidthKey{
		{AccountID: l.AccountID, SubID: l.SubID, Period: period},
		{AccountID: l.AccountID, SubID: allSubs, Period: period},
		{AccountID: l.AccountID, SubID: l.SubID},
		{AccountID: l.AccountID, SubID: allSubs},
	}
}

// loginKey names a login for the per-request cache of its counters.
type loginKey struct{ account, sub int64 }

// loginCounters are a login's four counters in one period, found with one lookup per request instead
// of four hashed ones.
type loginCounters struct {
	period string
	c      [4]*atomic.Int64 // in the order of keys
}

// countersOf returns the login's counters for period, from the cache when it holds that period.
// The counters of a current period are never deleted (Refresh drops ended periods only), so a cached
// pointer stays the one Refresh moves.
func (r *Recorder) countersOf(l Login, period string) *loginCounters {
	k := loginKey{l.AccountID, l.SubID}
	if v, ok := r.logins.Load(k); ok {
		if lc := v.(*loginCounters); lc.period == period {
			return lc
		}
	}
	lc := &loginCounters{period: period}
	for i, bk := range keys(l, period) {
		lc.c[i] = r.counter(bk)
	}
	r.logins.Store(k, lc)
	return lc
}

func (r *Recorder) counter(k domain.BandwidthKey) *atomic.Int64 {
	if c, ok := r.figures.Load(k); ok {
		return c.(*atomic.Int64)
	}
	c, _ := r.figures.LoadOrStore(k, new(atomic.Int64))
	return c.(*atomic.Int64)
}

// addToLedger counts n bytes of l in its current period and for all time.
func (r *Recorder) addToLedger(l Login, n int64) {
	if n == 0 {
		return
	}
	for _, c := range r.countersOf(l, r.periods().period(l.BillingDay)).c {
		c.Add(n)
	}
}

// Figures returns the login's figures. It takes no lock and reads no store: it is meant for every
// request. A nil Recorder records nothing and returns zeros.
func (r *Recorder) Figures(l Login) Figures {
	if r == nil {
		return Figures{}
	}
	c := r.countersOf(l, r.periods().period(l.BillingDay)).c
	return Figures{Period: c[0].Load(), AccountPeriod: c[1].Load(), Total: c[2].Load(), AccountTotal: c[3].Load()}
}

// ledgerState is what Refresh keeps between two reads. Guarded by Recorder.flushMu.
type ledgerState struct {
	stored  map[domain.BandwidthKey]int64 // the store's figures at the last Refresh
	written map[domain.BandwidthKey]int64 // this node's bytes written since
	days    sync.Map                      // account id → its billing day as Add last saw it (Add writes it outside flushMu)
}

// billingDay notes the billing day of an account whose bytes were recorded, for wrote.
func (s *ledgerState) billingDay(account int64, day int) {
	if v, ok := s.days.Load(account); !ok || v.(int) != day {
		s.days.Store(account, day)
	}
}

// dayOf is the billing day Add last saw for account (1 if none).
func (s *ledgerState) dayOf(account int64) int {
	if v, ok := s.days.Load(account); ok {
		return v.(int)
	}
	return 1
}

// wrote notes the bytes of a batch now in the store, for the next Refresh to take off this node's
// share of the figures. The caller holds flushMu.
func (r *Recorder) wrote(deltas map[domain.UsageKey]domain.UsageCounts) {
	s := &r.ledger
	for k, c := range deltas {
		n := c.BytesIn + c.BytesOut
		if n == 0 {
			continue
		}
		l := Login{AccountID: k.AccountID, SubID: k.SubID, BillingDay: s.dayOf(k.AccountID)}
		for _, bk := range keys(l, domain.PeriodOf(l.BillingDay, k.Day)) {
			s.written[bk] += n
		}
	}
}

// Refresh brings the figures up to date with the store, so that they include what other nodes
// flushed. See the comment at the top of this file for why nothing is counted twice.
func (r *Recorder) Refresh(ctx context.Context) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	current := r.periods().starts
	var unsent string
	if r.unsent != nil {
		unsent = r.unsent.id
	}
	got, err := r.sink.Bandwidth(ctx, current, unsent)
	if err != nil {
		return fmt.Errorf("read bandwidth figures: %w", err)
	}
	if got.Applied { // the failed write committed after all: it is in got and must not be sent again
		r.wrote(r.unsent.deltas)
		r.unsent = nil
	}
	figures := make(map[domain.BandwidthKey]int64, 2*len(got.Bytes))
	for k, n := range got.Bytes {
		figures[k] += n
		figures[domain.BandwidthKey{AccountID: k.AccountID, SubID: allSubs, Period: k.Period}] += n
	}
	s := &r.ledger
	live := func(k domain.BandwidthKey) bool { return k.Period == "" || slices.Contains(current, k.Period) }
	all := make(map[domain.BandwidthKey]struct{}, len(figures)+len(s.stored)+len(s.written))
	for _, m := range []map[domain.BandwidthKey]int64{figures, s.stored, s.written} {
		for k := range m {
			all[k] = struct{}{}
		}
	}
	for k := range all {
		if !live(k) { // a period that ended: its figures no longer limit anyone
			delete(s.stored, k)
			delete(s.written, k)
			r.figures.Delete(k) // a cached loginCounters of that period is replaced at its next use
			continue
		}
		if others := figures[k] - s.stored[k] - s.written[k]; others != 0 {
			r.counter(k).Add(others)
		}
		if n := figures[k]; n != 0 {
			s.stored[k] = n
		} else {
			delete(s.stored, k)
		}
		delete(s.written, k)
	}
	return nil
}
