package usage

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// Month-to-date bandwidth, which the proxy compares with a plan's monthly bandwidth before each
// request.
//
// Each account has one atomic counter per calendar month (UTC) holding
//
//	the store's total at the last Refresh + what this node recorded that the total did not include.
//
// Add increments it at once. Refresh reads the store's totals again and moves each counter by
//
//	new total − previous total − this node's bytes the store took in between,
//
// which is exactly what other nodes flushed in between, so the figure never goes down within a month
// and never counts a byte twice. "This node's bytes the store took in between" is known exactly
// because Refresh and Flush hold the same lock: every batch Flush wrote since the previous Refresh
// committed after that Refresh's read and before this one's (written). A batch whose write failed
// with an unknown outcome is looked up by id in the same snapshot as the totals; if it is there, it
// joins written and is never sent again.

// monthAccount identifies an account's bytes in one month.
type monthAccount struct {
	month   string // YYYY-MM
	account int64
}

// monthTotals is the bandwidth of every account in one calendar month.
type monthTotals struct {
	month  string   // YYYY-MM
	counts sync.Map // account id → *atomic.Int64, as described above

	// stored is each account's total in the store as the last Refresh read it. Guarded by
	// Recorder.flushMu.
	stored map[int64]int64
}

func (m *monthTotals) counter(accountID int64) *atomic.Int64 {
	if c, ok := m.counts.Load(accountID); ok {
		return c.(*atomic.Int64)
	}
	c, _ := m.counts.LoadOrStore(accountID, new(atomic.Int64))
	return c.(*atomic.Int64)
}

// totalsFor returns the totals of month, starting new ones when month is later than the current
// one. It returns nil for an earlier month: that month is over and its bytes no longer count.
func (r *Recorder) totalsFor(month string) *monthTotals {
	for {
		cur := r.month.Load()
		switch {
		case cur != nil && cur.month == month:
			return cur
		case cur != nil && cur.month > month:
			return nil
		}
		next := &monthTotals{month: month, stored: make(map[int64]int64)}
		if r.month.CompareAndSwap(cur, next) {
			return next
		}
	}
}

// addToMonth counts c's bytes in the month of day.
func (r *Recorder) addToMonth(accountID int64, day string, c domain.UsageCounts) {
	if n := c.BytesIn + c.BytesOut; n != 0 {
		if m := r.totalsFor(domain.MonthOf(day)); m != nil {
			m.counter(accountID).Add(n)
		}
	}
}

// MonthToDate returns the bytes in plus bytes out that an account and its sub-accounts used in the
// current calendar month (UTC), through every node: what the store held at the last Refresh, plus
// all this node recorded since. It takes no lock and reads no store: it is meant for every request.
// A nil Recorder records nothing and returns 0.
func (r *Recorder) MonthToDate(accountID int64) int64 {
	if r == nil {
		return 0
	}
	m := r.month.Load()
	if m == nil || m.month != domain.MonthOf(r.today()) {
		return 0 // nothing recorded or read yet this month
	}
	if c, ok := m.counts.Load(accountID); ok {
		return c.(*atomic.Int64).Load()
	}
	return 0
}

// wrote notes the bytes of a batch now in the store, for the next Refresh to take off this node's
// share of the figures. The caller holds flushMu.
func (r *Recorder) wrote(deltas map[domain.UsageKey]domain.UsageCounts) {
	for k, c := range deltas {
		if n := c.BytesIn + c.BytesOut; n != 0 {
			r.written[monthAccount{domain.MonthOf(k.Day), k.AccountID}] += n
		}
	}
}

// Refresh brings the month-to-date figures up to date with the store, so that they include what
// other nodes flushed. See the comment at the top of this file for why nothing is counted twice.
func (r *Recorder) Refresh(ctx context.Context) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	month := domain.MonthOf(r.today())
	var unsent string
	if r.unsent != nil {
		unsent = r.unsent.id
	}
	got, err := r.sink.MonthBandwidth(ctx, month, unsent)
	if err != nil {
		return fmt.Errorf("read month-to-date bandwidth: %w", err)
	}
	if got.Applied { // the failed write committed after all: it is in got and must not be sent again
		r.wrote(r.unsent.deltas)
		r.unsent = nil
	}
	for k := range r.written {
		if k.month < month {
			delete(r.written, k) // an earlier month's figures are not kept
		}
	}
	m := r.totalsFor(month)
	if m == nil {
		return nil // the month turned during the read: the next Refresh reads the new one
	}
	accounts := make(map[int64]struct{}, len(got.Bytes))
	for a := range got.Bytes {
		accounts[a] = struct{}{}
	}
	for a := range m.stored {
		accounts[a] = struct{}{}
	}
	for k := range r.written {
		if k.month == month {
			accounts[k.account] = struct{}{}
		}
	}
	for a := range accounts {
		k := monthAccount{month, a}
		if others := got.Bytes[a] - m.stored[a] - r.written[k]; others != 0 {
			m.counter(a).Add(others)
		}
		if b := got.Bytes[a]; b != 0 {
			m.stored[a] = b
		} else {
			delete(m.stored, a)
		}
		delete(r.written, k)
	}
	return nil
}
