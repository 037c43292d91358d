package usage

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/store"
)

// flakySink passes batches to the real store, but its first write fails in the worst way: the
// store commits it and the caller sees an error, as when a connection breaks during COMMIT.
type flakySink struct {
	store  domain.Store
	failed bool
}

func (f *flakySink) AddUsage(ctx context.Context, batch string, d map[domain.UsageKey]domain.UsageCounts) error {
	err := f.store.AddUsage(ctx, batch, d)
	if !f.failed && err == nil {
		f.failed = true
		return errors.New("connection reset during COMMIT")
	}
	return err
}

func (f *flakySink) Bandwidth(ctx context.Context, periods []string, batch string) (domain.BandwidthFigures, error) {
	return f.store.Bandwidth(ctx, periods, batch)
}

func TestFailedFlushLosesNothingAndCountsOnce(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "u.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.PutPlan(ctx, domain.Plan{Name: "p", MaxProxies: 1}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutProxyServer(ctx, domain.ProxyServer{Name: "us-ca", Address: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	a, err := st.CreateAccount(ctx, domain.NewAccount{Username: "alice", PasswordHash: "x", Plan: "p"})
	if err != nil {
		t.Fatal(err)
	}
	r := NewRecorder(&flakySink{store: st})
	day := time.Date(2026, 11, 24, 23, 59, 0, 0, time.UTC)
	r.now = func() time.Time { return day }

	r.Add(Login{AccountID: a.ID, BillingDay: 1}, "us-ca", netip.Addr{}, domain.UsageCounts{BytesIn: 10, BytesOut: 100, Requests: 1})
	if err := r.Flush(ctx); err == nil {
		t.Fatal("first flush succeeded against a failing sink")
	}
	r.Add(Login{AccountID: a.ID, BillingDay: 1}, "us-ca", netip.Addr{}, domain.UsageCounts{BytesIn: 5, BytesOut: 50, Tunnels: 1})
	day = day.Add(2 * time.Minute) // the next UTC day
	r.Add(Login{AccountID: a.ID, BillingDay: 1}, "us-ca", netip.Addr{}, domain.UsageCounts{Requests: 3})
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil { // nothing pending: nothing written twice
		t.Fatal(err)
	}
	rows, err := st.Usage(ctx, domain.UsageFilter{Username: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	want := []domain.UsageRow{
		{Username: "alice", Proxy: "us-ca", Day: "2026-11-24", UsageCounts: domain.UsageCounts{BytesIn: 15, BytesOut: 150, Requests: 1, Tunnels: 1}},
		{Username: "alice", Proxy: "us-ca", Day: "2026-11-25", UsageCounts: domain.UsageCounts{Requests: 3}},
	}
	if len(rows) != len(want) || rows[0] != want[0] || rows[1] != want[1] {
		t.Errorf("usage rows = %+v, want %+v", rows, want)
	}
}
