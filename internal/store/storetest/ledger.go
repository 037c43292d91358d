package storetest

import (
	"reflect"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// testLimitsAndProfile: accounts keep their own limits and billing day, sub-accounts their profile and
// limits; bad values are refused and change nothing.
func testLimitsAndProfile(t *testing.T, s domain.Store) {
	ctx := t.Context()
	alice, _ := seed(t, s)
	if alice.BillingDay != 1 || alice.Limits != (domain.Limits{}) {
		t.Errorf("a new account: billing day %d, limits %+v; want 1 and none", alice.BillingDay, alice.Limits)
	}
	monthly, total, day := int64(5e9), int64(50e9), 15
	got, err := s.UpdateAccount(ctx, "alice", domain.AccountUpdate{MonthlyLimit: &monthly, TotalLimit: &total, BillingDay: &day})
	must(t, err)
	if got.MonthlyLimit != monthly || got.TotalLimit != total || got.BillingDay != day || !reflect.DeepEqual(mustGet(t, s, "alice"), got) {
		t.Errorf("UpdateAccount(limits, billing day) = %+v", got)
	}
	for _, u := range []domain.AccountUpdate{{BillingDay: ptr(0)}, {BillingDay: ptr(29)}, {MonthlyLimit: ptr(int64(-1))}} {
		_, err := s.UpdateAccount(ctx, "alice", u)
		wantCode(t, "a bad billing day or limit", err, domain.EINVALID)
	}
	if a := mustGet(t, s, "alice"); a.BillingDay != day || a.MonthlyLimit != monthly {
		t.Errorf("a refused update changed alice: %+v", a)
	}

	sub := mustSub(t, s, "alice", domain.NewSubAccount{Username: "alice.bot", PasswordHash: hash,
		Profile: domain.Profile{Email: "bot@example.com", FirstName: "Ro", LastName: "Bot"}, Limits: domain.Limits{MonthlyLimit: 1e9}})
	if sub.Profile != (domain.Profile{Email: "bot@example.com", FirstName: "Ro", LastName: "Bot"}) || sub.MonthlyLimit != 1e9 || sub.TotalLimit != 0 {
		t.Errorf("CreateSubAccount with profile and limits = %+v", sub)
	}
	sub, err = s.UpdateSubAccount(ctx, "alice", "alice.bot", domain.SubAccountUpdate{LastName: ptr("Botte"), TotalLimit: ptr(int64(2e9))})
	must(t, err)
	if sub.LastName != "Botte" || sub.FirstName != "Ro" || sub.TotalLimit != 2e9 || sub.MonthlyLimit != 1e9 {
		t.Errorf("UpdateSubAccount = %+v", sub)
	}
	_, err = s.UpdateSubAccount(ctx, "alice", "alice.bot", domain.SubAccountUpdate{Email: ptr("not an email")})
	wantCode(t, "a bad email", err, domain.EINVALID)
	snap, err := s.Snapshot(ctx)
	must(t, err)
	for _, sn := range snap.Subs {
		if sn.ID == sub.ID && (sn.Email != "bot@example.com" || sn.TotalLimit != 2e9) {
			t.Errorf("the snapshot's sub-account %+v", sn)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// testBandwidthLedger: Bandwidth has each login's bytes in its account's current billing period and
// for all time, equal to the sum of its usage rows, and follows a change of billing day.
func testBandwidthLedger(t *testing.T, s domain.Store) {
	ctx := t.Context()
	alice, bob := seed(t, s)
	bot := mustSub(t, s, "bob", domain.NewSubAccount{Username: "bob.bot", PasswordHash: hash})
	now := time.Now().UTC()
	today, old := now.Format(time.DateOnly), now.AddDate(0, -2, 0).Format(time.DateOnly)
	must(t, s.AddUsage(ctx, "b1", map[domain.UsageKey]domain.UsageCounts{
		{AccountID: alice.ID, Proxy: "us-ca", Day: today}:              {BytesIn: 10, BytesOut: 90},
		{AccountID: alice.ID, Proxy: "us-ca", Day: old}:                {BytesIn: 1000},
		{AccountID: bob.ID, SubID: bot.ID, Proxy: "us-ca", Day: today}: {BytesOut: 7},
		{AccountID: bob.ID, Proxy: "de", Day: today}:                   {BytesOut: 3, Requests: 1},
	}))
	periods := domain.CurrentPeriods(now)
	got, err := s.Bandwidth(ctx, periods, "b1")
	must(t, err)
	period := domain.PeriodStart(1, now).Format(time.DateOnly)
	want := map[domain.BandwidthKey]int64{
		{AccountID: alice.ID, Period: period}:              100,
		{AccountID: alice.ID}:                              1100,
		{AccountID: bob.ID, SubID: bot.ID, Period: period}: 7,
		{AccountID: bob.ID, SubID: bot.ID}:                 7,
		{AccountID: bob.ID, Period: period}:                3,
		{AccountID: bob.ID}:                                3,
	}
	if !got.Applied || !reflect.DeepEqual(got.Bytes, want) {
		t.Errorf("Bandwidth = %+v\nwant %v, applied", got, want)
	}
	if got, _ := s.Bandwidth(ctx, periods, "never"); got.Applied {
		t.Error("an unknown batch reported applied")
	}

	// A billing day from today on: the period starts today and holds today's bytes only.
	day := min(now.Day(), domain.MaxBillingDay)
	_, err = s.UpdateAccount(ctx, "alice", domain.AccountUpdate{BillingDay: &day})
	must(t, err)
	must(t, s.AddUsage(ctx, "b2", map[domain.UsageKey]domain.UsageCounts{{AccountID: alice.ID, Proxy: "us-ca", Day: today}: {BytesIn: 5}}))
	got, err = s.Bandwidth(ctx, periods, "")
	must(t, err)
	start := domain.PeriodStart(day, now).Format(time.DateOnly)
	var inPeriod int64 // alice's bytes from her new period's start
	for _, d := range []struct {
		day   string
		bytes int64
	}{{today, 105}, {old, 1000}} {
		if d.day >= start {
			inPeriod += d.bytes
		}
	}
	if b := got.Bytes[domain.BandwidthKey{AccountID: alice.ID, Period: start}]; b != inPeriod {
		t.Errorf("alice's bytes in her period from %s = %d, want %d", start, b, inPeriod)
	}
	if b := got.Bytes[domain.BandwidthKey{AccountID: alice.ID}]; b != 1105 {
		t.Errorf("alice's all-time bytes = %d, want 1105", b)
	}
	ab, err := s.AccountBandwidth(ctx, "bob", now)
	must(t, err)
	if ab.PeriodStart.Format(time.DateOnly) != period || ab.Sum() != (domain.Used{Period: 10, Total: 10}) ||
		ab.Logins[bot.ID] != (domain.Used{Period: 7, Total: 7}) || ab.Logins[0] != (domain.Used{Period: 3, Total: 3}) {
		t.Errorf("AccountBandwidth(bob) = %+v", ab)
	}
	ab, err = s.AccountBandwidth(ctx, "alice", now)
	must(t, err)
	if ab.PeriodStart.Format(time.DateOnly) != start || ab.Sum() != (domain.Used{Period: inPeriod, Total: 1105}) {
		t.Errorf("AccountBandwidth(alice) = %+v, want period from %s: %d, total 1105", ab, start, inPeriod)
	}
	if _, err := s.AccountBandwidth(ctx, "nobody", now); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("AccountBandwidth of nobody: %v", err)
	}
	if _, err := s.Bandwidth(ctx, []string{"2026-13-01"}, ""); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("a malformed period: %v, want EINVALID", err)
	}
}
