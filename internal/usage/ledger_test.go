package usage

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/store"
)

// openStores returns n handles on one fresh SQLite file, as n nodes sharing a store have.
func openStores(t *testing.T, n int) []domain.Store {
	t.Helper()
	path := "sqlite:" + filepath.Join(t.TempDir(), "usage.db")
	var stores []domain.Store
	for range n {
		st, err := store.Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		stores = append(stores, st)
	}
	return stores
}

// at returns a recorder on sink whose clock reads *now.
func at(sink Sink, now *time.Time) *Recorder {
	r := NewRecorder(sink)
	r.now = func() time.Time { return *now }
	return r
}

func bytes(in, out int64) domain.UsageCounts {
	return domain.UsageCounts{BytesIn: in, BytesOut: out, Requests: 1}
}

// wantMonth checks the account's figure for its current billing period (billing day 1: the month).
func wantMonth(t *testing.T, step string, r *Recorder, account, want int64) {
	t.Helper()
	if got := r.Figures(Login{AccountID: account, BillingDay: 1}).AccountPeriod; got != want {
		t.Fatalf("%s: the account %d's period figure = %d, want %d", step, account, got, want)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestFiguresCountEachByteOnce follows two nodes' recorders on one store through flushes and
// refreshes in every order: each node counts its own bytes at once and the other's once flushed and
// refreshed, and no flush makes a byte count twice.
func TestFiguresCountEachByteOnce(t *testing.T) {
	ctx := t.Context()
	st := openStores(t, 2)
	now := time.Date(2026, 11, 14, 12, 0, 0, 0, time.UTC)
	a, b := at(st[0], &now), at(st[1], &now)
	const alice, bob, aliceSub = 1, 2, 7

	a.Add(Login{AccountID: alice, SubID: 0, BillingDay: 1}, "us-ca", netip.Addr{}, bytes(10, 100))
	wantMonth(t, "a recorded 110", a, alice, 110)
	wantMonth(t, "b has not seen it", b, alice, 0)
	must(t, a.Flush(ctx))
	wantMonth(t, "a flushed", a, alice, 110)
	must(t, a.Refresh(ctx))
	wantMonth(t, "a refreshed after its flush", a, alice, 110)
	must(t, a.Refresh(ctx))
	wantMonth(t, "a refreshed twice", a, alice, 110)
	must(t, b.Refresh(ctx))
	wantMonth(t, "b refreshed", b, alice, 110)

	b.Add(Login{AccountID: alice, SubID: aliceSub, BillingDay: 1}, "world", netip.Addr{}, bytes(1000, 0)) // a sub-account's bytes are its account's
	wantMonth(t, "b recorded the sub-account's 1000", b, alice, 1110)
	must(t, a.Refresh(ctx))
	wantMonth(t, "a refreshed before b flushed", a, alice, 110)
	must(t, b.Flush(ctx))
	must(t, a.Refresh(ctx))
	wantMonth(t, "a refreshed after b flushed", a, alice, 1110)
	must(t, b.Refresh(ctx))
	wantMonth(t, "b refreshed after its flush", b, alice, 1110)

	a.Add(Login{AccountID: alice, SubID: 0, BillingDay: 1}, "us-ca", netip.Addr{}, bytes(2, 3))
	must(t, a.Refresh(ctx))
	wantMonth(t, "a refreshed with 5 pending", a, alice, 1115)
	must(t, a.Flush(ctx))
	a.Add(Login{AccountID: alice, SubID: 0, BillingDay: 1}, "us-ca", netip.Addr{}, bytes(0, 4)) // pending while the next refresh reads the flushed 5
	b.Add(Login{AccountID: alice, SubID: 0, BillingDay: 1}, "world", netip.Addr{}, bytes(1, 0))
	must(t, b.Flush(ctx))
	must(t, a.Refresh(ctx))
	wantMonth(t, "a: its flush, its pending 4, b's 1", a, alice, 1120)
	must(t, b.Refresh(ctx))
	wantMonth(t, "b: a's 5 flushed, its own 1", b, alice, 1116)
	must(t, a.Flush(ctx))
	must(t, b.Refresh(ctx))
	wantMonth(t, "b after a's last flush", b, alice, 1120)
	wantMonth(t, "bob is unaffected on a", a, bob, 0)
	wantMonth(t, "bob is unaffected on b", b, bob, 0)

	got, err := st[0].MonthBandwidth(ctx, "2026-11", "")
	must(t, err)
	if got.Bytes[alice] != 1120 {
		t.Errorf("the store holds %d bytes for alice, want 1120", got.Bytes[alice])
	}
}

// faultySink fails the first AddUsage. With commit, the batch is written anyway, as when the
// connection breaks during COMMIT; without, nothing is written.
type faultySink struct {
	domain.Store
	commit bool
	failed bool
}

func (f *faultySink) AddUsage(ctx context.Context, batch string, d map[domain.UsageKey]domain.UsageCounts) error {
	if f.failed {
		return f.Store.AddUsage(ctx, batch, d)
	}
	f.failed = true
	if f.commit {
		if err := f.Store.AddUsage(ctx, batch, d); err != nil {
			return err
		}
	}
	return errors.New("connection reset during COMMIT")
}

// TestFiguresAfterAnUncertainFlush: a flush that failed may or may not have been written; the
// figure is exact whichever it was, and whichever of the retry and the next refresh comes first.
func TestFiguresAfterAnUncertainFlush(t *testing.T) {
	for _, tt := range []struct {
		name         string
		commit       bool
		refreshFirst bool
	}{
		{"written, refresh finds it", true, true},
		{"written, retry skipped by id", true, false},
		{"not written, refresh does not find it", false, true},
		{"not written, retried", false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			st := openStores(t, 1)[0]
			now := time.Date(2026, 11, 14, 12, 0, 0, 0, time.UTC)
			r := at(&faultySink{Store: st, commit: tt.commit}, &now)
			r.Add(Login{AccountID: 1, SubID: 0, BillingDay: 1}, "us-ca", netip.Addr{}, bytes(10, 100))
			if err := r.Flush(ctx); err == nil {
				t.Fatal("the first flush succeeded against a failing sink")
			}
			wantMonth(t, "after the failed flush", r, 1, 110)
			if tt.refreshFirst {
				must(t, r.Refresh(ctx))
				wantMonth(t, "refreshed", r, 1, 110)
			}
			r.Add(Login{AccountID: 1, SubID: 0, BillingDay: 1}, "us-ca", netip.Addr{}, bytes(1, 0))
			must(t, r.Flush(ctx))
			must(t, r.Refresh(ctx))
			wantMonth(t, "flushed and refreshed", r, 1, 111)
			must(t, r.Flush(ctx))
			must(t, r.Refresh(ctx))
			wantMonth(t, "once more", r, 1, 111)
			got, err := st.MonthBandwidth(ctx, "2026-11", "")
			must(t, err)
			if got.Bytes[1] != 111 {
				t.Errorf("the store holds %d bytes, want 111: the batch was written twice or lost", got.Bytes[1])
			}
		})
	}
}

// TestMonthRollover moves an injected clock over the end of a month: the figure starts from zero at
// 00:00 UTC on the 1st, before anything is recorded or read, and the previous month's bytes — even
// those flushed after the turn — never count in the new one.
func TestMonthRollover(t *testing.T) {
	ctx := t.Context()
	st := openStores(t, 2)
	now := time.Date(2026, 11, 30, 23, 59, 0, 0, time.UTC)
	r, other := at(st[0], &now), at(st[1], &now)

	r.Add(Login{AccountID: 1, SubID: 0, BillingDay: 1}, "us-ca", netip.Addr{}, bytes(0, 500))
	other.Add(Login{AccountID: 1, SubID: 0, BillingDay: 1}, "world", netip.Addr{}, bytes(0, 20))
	must(t, other.Flush(ctx))
	must(t, r.Flush(ctx))
	must(t, r.Refresh(ctx))
	wantMonth(t, "November", r, 1, 520)
	r.Add(Login{AccountID: 1, SubID: 0, BillingDay: 1}, "us-ca", netip.Addr{}, bytes(0, 7)) // pending over the turn: November's

	now = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	wantMonth(t, "00:00 on December 1st", r, 1, 0)
	r.Add(Login{AccountID: 1, SubID: 0, BillingDay: 1}, "us-ca", netip.Addr{}, bytes(3, 0))
	wantMonth(t, "December's first bytes", r, 1, 3)
	must(t, r.Flush(ctx)) // one batch: 7 bytes on November 30th, 3 on December 1st
	must(t, r.Refresh(ctx))
	wantMonth(t, "December, refreshed", r, 1, 3)
	must(t, other.Refresh(ctx))
	wantMonth(t, "December on the other node", other, 1, 3)

	nov, err := st[0].MonthBandwidth(ctx, "2026-11", "")
	must(t, err)
	if nov.Bytes[1] != 527 {
		t.Errorf("November in the store = %d, want 527", nov.Bytes[1])
	}
	now = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	wantMonth(t, "January", r, 1, 0)
}

// TestFiguresUnderLoad records from many goroutines on two nodes while each flushes and
// refreshes continuously: a figure watched meanwhile never goes down (a byte counted twice and then
// corrected would make it) and, once everything is flushed and refreshed, equals what was recorded.
func TestFiguresUnderLoad(t *testing.T) {
	ctx := t.Context()
	st := openStores(t, 2)
	now := time.Date(2026, 11, 14, 12, 0, 0, 0, time.UTC)
	nodes := []*Recorder{at(st[0], &now), at(st[1], &now)}
	const account = 1
	var recorded atomic.Int64
	stop := make(chan struct{})
	var background, traffic sync.WaitGroup
	for _, r := range nodes {
		background.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := errors.Join(r.Flush(ctx), r.Refresh(ctx)); err != nil {
					t.Error(err)
					return
				}
			}
		})
		background.Go(func() {
			last := int64(0)
			for {
				select {
				case <-stop:
					return
				default:
				}
				got := r.Figures(Login{AccountID: account, BillingDay: 1}).AccountPeriod
				if got < last {
					t.Errorf("the figure went down from %d to %d", last, got)
					return
				}
				last = got
			}
		})
		for g := range 4 {
			traffic.Go(func() {
				for range 300 {
					n := rand.Int64N(10_000)
					r.Add(Login{AccountID: account, SubID: int64(g), BillingDay: 1}, "us-ca", netip.Addr{}, bytes(n/3, n-n/3))
					recorded.Add(n)
				}
			})
		}
	}
	traffic.Wait()
	close(stop)
	background.Wait()
	for _, r := range nodes {
		must(t, r.Flush(ctx))
	}
	for i, r := range nodes {
		must(t, r.Refresh(ctx))
		wantMonth(t, "after the load", r, account, recorded.Load())
		t.Logf("node %d: %d bytes", i, r.Figures(Login{AccountID: account, BillingDay: 1}).AccountPeriod)
	}
}

// BenchmarkFigures is the proxy's per-request check.
func BenchmarkFigures(b *testing.B) {
	r := NewRecorder(nil)
	l := Login{AccountID: 123456, SubID: 7, BillingDay: 12}
	r.Add(l, "us-ca", netip.Addr{}, bytes(1, 1))
	b.ReportAllocs()
	for b.Loop() {
		r.Figures(l)
	}
}

// TestFiguresOfLoginsAndPeriods: a sub-account's bytes count for it and its account; an account's
// period starts on its billing day; totals run across periods, and other nodes' flushed bytes join
// every figure.
func TestFiguresOfLoginsAndPeriods(t *testing.T) {
	ctx := t.Context()
	st := openStores(t, 2)
	now := time.Date(2026, 11, 14, 12, 0, 0, 0, time.UTC)
	a, b := at(st[0], &now), at(st[1], &now)
	// The store attributes bytes to periods by the account's billing day: the account must exist.
	must(t, st[0].CreatePlan(ctx, domain.Plan{Name: "p", MaxSubs: 1}))
	created, err := st[0].CreateAccount(ctx, domain.NewAccount{Username: "alice", PasswordHash: "x", Plan: "p"})
	must(t, err)
	day := 15
	_, err = st[0].UpdateAccount(ctx, "alice", domain.AccountUpdate{BillingDay: &day})
	must(t, err)
	sub, err := st[0].CreateSubAccount(ctx, "alice", domain.NewSubAccount{Username: "alice-bot", PasswordHash: "x"})
	must(t, err)
	acct := Login{AccountID: created.ID, BillingDay: day}
	bot := Login{AccountID: created.ID, SubID: sub.ID, BillingDay: day}
	a.Add(acct, "us-ca", netip.Addr{}, bytes(0, 100))
	a.Add(bot, "us-ca", netip.Addr{}, bytes(0, 10))
	b.Add(bot, "world", netip.Addr{}, bytes(0, 1))
	must(t, errors.Join(a.Flush(ctx), b.Flush(ctx), a.Refresh(ctx), b.Refresh(ctx)))
	want := Figures{Period: 11, Total: 11, AccountPeriod: 111, AccountTotal: 111}
	for i, r := range []*Recorder{a, b} {
		if got := r.Figures(bot); got != want {
			t.Errorf("node %d: the sub-account's figures %+v, want %+v", i, got, want)
		}
	}
	// The 15th: a new period for billing day 15; all-time figures go on.
	now = time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC)
	if got := a.Figures(bot); got != (Figures{Total: 11, AccountTotal: 111}) {
		t.Errorf("on the 15th: %+v, want the periods back to zero and the totals kept", got)
	}
	a.Add(bot, "us-ca", netip.Addr{}, bytes(5, 0))
	must(t, errors.Join(a.Flush(ctx), a.Refresh(ctx), b.Refresh(ctx)))
	want = Figures{Period: 5, Total: 16, AccountPeriod: 5, AccountTotal: 116}
	for i, r := range []*Recorder{a, b} {
		if got := r.Figures(bot); got != want {
			t.Errorf("node %d after the turn: %+v, want %+v", i, got, want)
		}
	}

}
