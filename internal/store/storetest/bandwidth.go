package storetest

import (
	"fmt"
	"maps"
	"sync"
	"testing"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// monthTotals sums the usage rows' bytes per month and account, the definition MonthBandwidth must
// agree with.
func monthTotals(t *testing.T, s domain.Store) map[string]map[string]int64 {
	t.Helper()
	rows, err := s.Usage(t.Context(), domain.UsageFilter{})
	must(t, err)
	sums := map[string]map[string]int64{}
	for _, r := range rows {
		m := domain.MonthOf(r.Day)
		if sums[m] == nil {
			sums[m] = map[string]int64{}
		}
		sums[m][r.Username] += r.BytesIn + r.BytesOut
	}
	return sums
}

func testMonthBandwidth(t *testing.T, s domain.Store) {
	ctx := t.Context()
	alice, bob := seed(t, s)
	sub := mustSub(t, s, "alice", domain.NewSubAccount{Username: "alice-1", PasswordHash: hash})
	gone := mustSub(t, s, "bob", domain.NewSubAccount{Username: "bob-gone", PasswordHash: hash})

	got, err := s.MonthBandwidth(ctx, "2026-03", "batch-1")
	must(t, err)
	if got.Month != "2026-03" || got.Bytes == nil || len(got.Bytes) != 0 || got.Applied {
		t.Fatalf("MonthBandwidth of an empty store = %+v, want month 2026-03, an empty non-nil map, not applied", got)
	}

	v := version(t, s)
	must(t, s.AddUsage(ctx, "batch-1", map[domain.UsageKey]domain.UsageCounts{
		{AccountID: alice.ID, Proxy: "us-ca", Day: "2026-03-01"}:                {BytesIn: 10, BytesOut: 100, Requests: 1},
		{AccountID: alice.ID, SubID: sub.ID, Proxy: "us-ca", Day: "2026-03-31"}: {BytesIn: 5, BytesOut: 1, Tunnels: 1},
		{AccountID: alice.ID, Proxy: "de", Day: "2026-04-01"}:                   {BytesOut: 1000, Requests: 1},
		{AccountID: bob.ID, Proxy: "de", Day: "2026-02-28"}:                     {BytesOut: 7, Requests: 2},
		{AccountID: bob.ID, SubID: gone.ID, Proxy: "de", Day: "2026-03-02"}:     {BytesIn: 3},
		{AccountID: bob.ID, Proxy: "fr", Day: "2026-03-09"}:                     {Requests: 4}, // no bytes
	}))
	must(t, s.AddUsage(ctx, "batch-2", map[domain.UsageKey]domain.UsageCounts{
		{AccountID: alice.ID, Proxy: "us-ca", Day: "2026-03-01"}: {BytesIn: 1, BytesOut: 2, Requests: 1},
	}))
	must(t, s.AddUsage(ctx, "batch-2", map[domain.UsageKey]domain.UsageCounts{ // a retry: applied once
		{AccountID: alice.ID, Proxy: "us-ca", Day: "2026-03-01"}: {BytesIn: 1, BytesOut: 2, Requests: 1},
	}))
	must(t, s.DeleteSubAccount(ctx, "bob", "bob-gone")) // its bytes stay the account's
	if got := version(t, s); got != v+1 {
		t.Errorf("version = %d, want %d (only the sub-account deletion changes it)", got, v+1)
	}

	rows := monthTotals(t, s)
	tests := []struct {
		month, batch string
		want         map[int64]int64
		applied      bool
	}{
		{"2026-03", "batch-1", map[int64]int64{alice.ID: 10 + 100 + 5 + 1 + 1 + 2, bob.ID: 3}, true},
		{"2026-03", "batch-2", map[int64]int64{alice.ID: 119, bob.ID: 3}, true},
		{"2026-03", "batch-9", map[int64]int64{alice.ID: 119, bob.ID: 3}, false},
		{"2026-03", "", map[int64]int64{alice.ID: 119, bob.ID: 3}, false},
		{"2026-02", "", map[int64]int64{bob.ID: 7}, false},
		{"2026-04", "", map[int64]int64{alice.ID: 1000}, false},
		{"2026-05", "", map[int64]int64{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.month+" "+tt.batch, func(t *testing.T) {
			got, err := s.MonthBandwidth(ctx, tt.month, tt.batch)
			must(t, err)
			if !maps.Equal(got.Bytes, tt.want) || got.Applied != tt.applied || got.Month != tt.month {
				t.Errorf("MonthBandwidth(%s, %q) = %+v, want bytes %v, applied %t", tt.month, tt.batch, got, tt.want, tt.applied)
			}
			fromRows := map[int64]int64{}
			for name, b := range rows[tt.month] {
				fromRows[map[string]int64{"alice": alice.ID, "bob": bob.ID}[name]] = b
			}
			if !maps.Equal(got.Bytes, fromRows) {
				t.Errorf("MonthBandwidth(%s) = %v, but the usage rows add up to %v", tt.month, got.Bytes, fromRows)
			}
		})
	}

	for _, month := range []string{"2026-3", "2026-13", "March", "2026-03-01", ""} {
		_, err := s.MonthBandwidth(ctx, month, "")
		wantError(t, err, domain.EINVALID, "YYYY-MM")
	}
}

// testConcurrentUsage has many writers add usage for the same accounts at once, across two months,
// as the nodes of a network do: no deadlock, no lost update.
func testConcurrentUsage(t *testing.T, s domain.Store) {
	ctx := t.Context()
	alice, bob := seed(t, s)
	const writers, batches = 8, 10
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				// The keys of one batch in both orders of the accounts, from writer to writer.
				first, second := alice.ID, bob.ID
				if w%2 == 1 {
					first, second = second, first
				}
				err := s.AddUsage(ctx, fmt.Sprintf("w%d-b%d", w, b), map[domain.UsageKey]domain.UsageCounts{
					{AccountID: first, Proxy: "us-ca", Day: "2026-05-31"}:  {BytesIn: 1, BytesOut: 2},
					{AccountID: second, Proxy: "us-ca", Day: "2026-06-01"}: {BytesOut: 10},
					{AccountID: first, Proxy: "de", Day: "2026-06-01"}:     {BytesIn: 100},
				})
				if err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		must(t, err)
	}
	half := int64(writers / 2 * batches)
	for _, tt := range []struct {
		month string
		want  map[int64]int64
	}{
		{"2026-05", map[int64]int64{alice.ID: 3 * half, bob.ID: 3 * half}},
		{"2026-06", map[int64]int64{alice.ID: 110 * half, bob.ID: 110 * half}},
	} {
		got, err := s.MonthBandwidth(ctx, tt.month, "")
		must(t, err)
		if !maps.Equal(got.Bytes, tt.want) {
			t.Errorf("MonthBandwidth(%s) after concurrent writers = %v, want %v", tt.month, got.Bytes, tt.want)
		}
	}
}
