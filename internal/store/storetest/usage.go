package storetest

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/exitmesh/exitmesh/internal/domain"
)

func row(user, sub, proxy, day string, in, out, reqs, tunnels int64) domain.UsageRow {
	return domain.UsageRow{Username: user, SubAccount: sub, Proxy: proxy, Day: day,
		UsageCounts: domain.UsageCounts{BytesIn: in, BytesOut: out, Requests: reqs, Tunnels: tunnels}}
}

func testUsage(t *testing.T, s domain.Store) {
	ctx := t.Context()
	alice, bob := seed(t, s)
	sub := mustSub(t, s, "alice", domain.NewSubAccount{Username: "alice-1", PasswordHash: hash})
	gone := mustSub(t, s, "bob", domain.NewSubAccount{Username: "bob-gone", PasswordHash: hash})
	rows, err := s.Usage(ctx, domain.UsageFilter{})
	must(t, err)
	if rows == nil || len(rows) != 0 {
		t.Fatalf("Usage of an empty store = %#v, want an empty, non-nil list", rows)
	}

	v := version(t, s)
	batch := map[domain.UsageKey]domain.UsageCounts{
		{AccountID: alice.ID, Proxy: "us-ca", Day: "2026-03-01"}:                {BytesIn: 10, BytesOut: 100, Requests: 1},
		{AccountID: alice.ID, SubID: sub.ID, Proxy: "us-ca", Day: "2026-03-01"}: {BytesIn: 5, Tunnels: 1},
		{AccountID: bob.ID, Proxy: "de", Day: "2026-02-28"}:                     {BytesOut: 7, Requests: 2},
		{AccountID: bob.ID, SubID: gone.ID, Proxy: "de", Day: "2026-03-02"}:     {BytesIn: 3},
		{AccountID: bob.ID, Proxy: "us-ca", Day: "2026-03-09"}:                  {}, // zero: no row
	}
	must(t, s.AddUsage(ctx, "batch-1", batch))
	must(t, s.AddUsage(ctx, "batch-2", batch)) // counters add up
	must(t, s.AddUsage(ctx, "batch-2", batch)) // a retried batch is applied once
	must(t, s.AddUsage(ctx, "batch-3", nil))
	if err := s.AddUsage(ctx, "", batch); err == nil {
		t.Error("AddUsage without a batch id succeeded")
	}
	if got := version(t, s); got != v {
		t.Errorf("version after AddUsage = %d, want %d (usage is not in Snapshot)", got, v)
	}
	must(t, s.DeleteSubAccount(ctx, "bob", "bob-gone")) // its usage stays

	deleted := fmt.Sprintf("(deleted #%d)", gone.ID)
	all := []domain.UsageRow{
		row("bob", "", "de", "2026-02-28", 0, 14, 4, 0),
		row("alice", "", "us-ca", "2026-03-01", 20, 200, 2, 0),
		row("alice", "alice-1", "us-ca", "2026-03-01", 10, 0, 0, 2),
		row("bob", deleted, "de", "2026-03-02", 6, 0, 0, 0),
	}
	tests := []struct {
		name string
		f    domain.UsageFilter
		want []domain.UsageRow
	}{
		{"all", domain.UsageFilter{}, all},
		{"one account", domain.UsageFilter{Username: "alice"}, all[1:3]},
		{"from, inclusive", domain.UsageFilter{From: "2026-03-01"}, all[1:]},
		{"to, inclusive", domain.UsageFilter{To: "2026-03-01"}, all[:3]},
		{"one day of one account", domain.UsageFilter{Username: "bob", From: "2026-03-02", To: "2026-03-02"}, all[3:]},
		{"nothing in range", domain.UsageFilter{From: "2027-01-01"}, []domain.UsageRow{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Usage(ctx, tt.f)
			must(t, err)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Usage(%+v) =\n%+v, want\n%+v", tt.f, got, tt.want)
			}
		})
	}
}

func testUsageErrors(t *testing.T, s domain.Store) {
	seed(t, s)
	usage := func(f domain.UsageFilter) func(context.Context, domain.Store) error {
		return func(ctx context.Context, s domain.Store) error {
			_, err := s.Usage(ctx, f)
			return err
		}
	}
	runErrCases(t, s, []errCase{
		{"unknown username", usage(domain.UsageFilter{Username: "nobody"}), domain.ENOTFOUND, `Account "nobody" not found.`},
		{"bad from date", usage(domain.UsageFilter{From: "2026-3-1"}), domain.EINVALID, "YYYY-MM-DD"},
		{"bad to date", usage(domain.UsageFilter{To: "yesterday"}), domain.EINVALID, "YYYY-MM-DD"},
		{"from after to", usage(domain.UsageFilter{From: "2026-03-02", To: "2026-03-01"}), domain.EINVALID, "after"},
	})
	err := s.AddUsage(t.Context(), "bad-day", map[domain.UsageKey]domain.UsageCounts{{AccountID: 1, Day: "03/01/2026"}: {Requests: 1}})
	if err == nil {
		t.Error("AddUsage with a malformed day succeeded")
	}
}
