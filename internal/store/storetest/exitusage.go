package storetest

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// testExitUsage: which login used which exit in which hour, for abuse complaints. The day's counters
// sum the exits; each exit's hours are kept apart, found by exit and time, and pruned by age.
func testExitUsage(t *testing.T, s domain.Store) {
	ctx := t.Context()
	alice, bob := seed(t, s)
	sub := mustSub(t, s, "alice", domain.NewSubAccount{Username: "alice-1", PasswordHash: hash})
	e2, e3 := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")
	h14 := time.Date(2026, 3, 1, 14, 0, 0, 0, time.UTC)
	h15 := h14.Add(time.Hour)
	key := func(account, subID int64, exit netip.Addr, hour time.Time) domain.UsageKey {
		return domain.UsageKey{AccountID: account, SubID: subID, Proxy: "us-ca", Day: "2026-03-01", Exit: exit, Hour: hour.Unix()}
	}
	batch := map[domain.UsageKey]domain.UsageCounts{
		key(alice.ID, 0, e2, h14):      {BytesIn: 10, BytesOut: 100, Requests: 1},
		key(alice.ID, sub.ID, e2, h15): {BytesIn: 5, Tunnels: 1},
		key(bob.ID, 0, e3, h14):        {BytesOut: 7, Requests: 2},
		key(alice.ID, 0, e3, h15):      {Requests: 4},
	}
	must(t, s.AddUsage(ctx, "exits-1", batch))
	must(t, s.AddUsage(ctx, "exits-1", batch)) // a retried batch is applied once

	rows, err := s.Usage(ctx, domain.UsageFilter{Username: "alice"})
	must(t, err)
	want := []domain.UsageRow{row("alice", "", "us-ca", "2026-03-01", 10, 100, 5, 0), row("alice", "alice-1", "us-ca", "2026-03-01", 5, 0, 0, 1)}
	if !slices.Equal(rows, want) {
		t.Errorf("the day's usage = %+v, want the exits summed: %+v", rows, want)
	}

	use := func(hour time.Time, exit netip.Addr, user, sub string, c domain.UsageCounts) domain.ExitUse {
		return domain.ExitUse{Hour: hour, Exit: exit, Proxy: "us-ca", Username: user, SubAccount: sub, UsageCounts: c}
	}
	for _, c := range []struct {
		name     string
		exit     netip.Addr
		from, to time.Time
		want     []domain.ExitUse
	}{
		{"one hour of 127.0.0.2", e2, h14.Add(30 * time.Minute), h14.Add(40 * time.Minute),
			[]domain.ExitUse{use(h14, e2, "alice", "", domain.UsageCounts{BytesIn: 10, BytesOut: 100, Requests: 1})}},
		{"two hours of 127.0.0.2", e2, h14.Add(30 * time.Minute), h15.Add(30 * time.Minute), []domain.ExitUse{
			use(h14, e2, "alice", "", domain.UsageCounts{BytesIn: 10, BytesOut: 100, Requests: 1}),
			use(h15, e2, "alice", "alice-1", domain.UsageCounts{BytesIn: 5, Tunnels: 1})}},
		{"127.0.0.3 at 14:00 is bob's", e3, h14, h14.Add(time.Minute),
			[]domain.ExitUse{use(h14, e3, "bob", "", domain.UsageCounts{BytesOut: 7, Requests: 2})}},
		{"an hour nobody used", e3, h15.Add(time.Hour), h15.Add(2 * time.Hour), nil},
		{"an exit nobody used", netip.MustParseAddr("127.0.0.9"), h14, h15, nil},
	} {
		got, err := s.WhoUsedExit(ctx, c.exit, c.from, c.to)
		must(t, err)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: WhoUsedExit = %+v, want %+v", c.name, got, c.want)
		}
	}
	if _, err := s.WhoUsedExit(ctx, e2, h15, h14); err == nil {
		t.Error("WhoUsedExit with an empty window succeeded")
	}

	n, err := s.PruneExitUsage(ctx, h15) // the 14:00 hour has ended by 15:00; 15:00 has not
	must(t, err)
	if n != 2 {
		t.Errorf("PruneExitUsage removed %d rows, want the 2 of 14:00", n)
	}
	if got, _ := s.WhoUsedExit(ctx, e3, h14, h15.Add(time.Hour)); len(got) != 1 || got[0].Hour != h15 {
		t.Errorf("after pruning, 127.0.0.3 shows %+v, want only 15:00", got)
	}
	if rows, _ := s.Usage(ctx, domain.UsageFilter{Username: "alice"}); !slices.Equal(rows, want) {
		t.Errorf("pruning the exits' hours changed the day's usage: %+v", rows)
	}
}
