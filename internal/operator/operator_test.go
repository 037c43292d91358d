package operator

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/bans"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/store"
)

func TestDescriptions(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	tests := []struct{ got, want string }{
		{accountStatus(domain.Account{Confirmed: true}), "active"},
		{accountStatus(domain.Account{}), "unconfirmed"},
		{accountStatus(domain.Account{Confirmed: true, Disabled: true}), "disabled"},
		{BandwidthUsed(1_200_000_000, 10_000_000_000), "1.2 GB of 10 GB"},
		{BandwidthUsed(10_000_000_000, 10_000_000_000), "10 GB of 10 GB (spent: the proxies answer 509)"},
		{BandwidthUsed(999, 0), "999 B (unlimited plan)"},
		{exitHealth(domain.ExitStatus{Healthy: true}, now), "up"},
		{exitHealth(domain.ExitStatus{Since: now.Add(-12 * time.Second)}, now), "DOWN 12s"},
		{exitLatency(domain.ExitStatus{}), "-"},
		{exitLatency(domain.ExitStatus{Latency: 1234567 * time.Nanosecond}), "1.23ms"},
		{reportAge(domain.ExitStatus{Updated: now.Add(-2500 * time.Millisecond)}, now), "3s ago"},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%d: got %q, want %q", i, tt.got, tt.want)
		}
	}
	if _, err := passwordHash("short"); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("passwordHash(short) = %v, want EINVALID", err)
	}
	if h, err := passwordHash("long-enough"); err != nil || h == "" {
		t.Errorf("passwordHash = %q, %v", h, err)
	}
}

// fixture is a service on a real SQLite store, with a clock in the middle of November 2026 and a
// count of the changes it reported.
type fixture struct {
	st      domain.Store
	ops     *Service
	now     time.Time
	changes int
	tracker *bans.Tracker
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := store.Open(t.Context(), "sqlite:"+filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st, now: time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC), tracker: bans.New(bans.Config{})}
	f.ops = New(Config{Store: st, Bans: f.tracker, Now: func() time.Time { return f.now },
		Changed: func(context.Context) { f.changes++ }})
	for _, p := range []domain.Plan{
		{Name: "starter", MaxProxies: 1, MaxSubs: 2, MaxIPs: 2, MaxHostnames: 1, MonthlyBandwidth: 10_000_000_000},
		{Name: "free"},
	} {
		f.must(t, st.CreatePlan(t.Context(), p))
	}
	for _, ps := range []domain.ProxyServer{{Name: "us-ca", Address: "127.0.0.1:8001", Country: "US"}, {Name: "world", Address: "127.0.0.1:8002"}} {
		f.must(t, st.PutProxyServer(t.Context(), ps))
	}
	return f
}

func (f *fixture) must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantChanges checks how many changes the service reported since the last check.
func (f *fixture) wantChanges(t *testing.T, want int) {
	t.Helper()
	if f.changes != want {
		t.Errorf("Changed called %d times, want %d", f.changes, want)
	}
	f.changes = 0
}

// wantCode checks err's code and, when fields is not nil, the inputs its field messages name.
func wantCode(t *testing.T, what string, err error, code string, fields ...string) {
	t.Helper()
	if got := domain.ErrorCode(err); got != code {
		t.Errorf("%s: error %v (code %q), want code %q", what, err, got, code)
	}
	got := domain.ErrorFields(err)
	for _, name := range fields {
		if len(got[name]) == 0 {
			t.Errorf("%s: field errors %v, want one for %q", what, got, name)
		}
	}
	if len(fields) == 0 && got != nil {
		t.Errorf("%s: field errors %v, want a plain refusal", what, got)
	}
}

func (f *fixture) account(t *testing.T, username string) domain.Account {
	t.Helper()
	a, err := f.st.GetAccount(t.Context(), username)
	f.must(t, err)
	return a
}

func TestPlans(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	gold := domain.Plan{Name: "gold", MaxProxies: 1, MaxSubs: 2, MaxIPs: 3, MaxHostnames: 4, MonthlyBandwidth: 5_000_000_000}
	f.must(t, f.ops.CreatePlan(ctx, gold))
	wantCode(t, "create gold again", f.ops.CreatePlan(ctx, domain.Plan{Name: "gold"}), domain.ECONFLICT)
	wantCode(t, "create Gold!", f.ops.CreatePlan(ctx, domain.Plan{Name: "Gold!"}), domain.EINVALID)
	f.wantChanges(t, 1)

	ips := 7
	got, err := f.ops.EditPlan(ctx, "gold", PlanChange{MaxIPs: &ips})
	want := gold
	want.MaxIPs = 7
	if err != nil || got != want {
		t.Errorf("EditPlan(gold, ips 7) = %+v, %v; want %+v, only the IPs changed", got, err, want)
	}
	if stored, err := f.st.GetPlan(ctx, "gold"); err != nil || stored != want {
		t.Errorf("stored gold = %+v, %v; want %+v", stored, err, want)
	}
	_, err = f.ops.EditPlan(ctx, "platinum", PlanChange{MaxIPs: &ips})
	wantCode(t, "edit platinum", err, domain.ENOTFOUND)
	negative := -1
	_, err = f.ops.EditPlan(ctx, "gold", PlanChange{MaxSubs: &negative})
	wantCode(t, "edit gold, subs -1", err, domain.EINVALID)
	f.wantChanges(t, 1)

	every := domain.Plan{Name: "gold", MaxProxies: 9, MaxSubs: 8, MaxIPs: 7, MaxHostnames: 6}
	if got, err := f.ops.EditPlan(ctx, "gold", LimitsOf(every)); err != nil || got != every {
		t.Errorf("EditPlan(gold, every limit) = %+v, %v; want %+v (unlimited bandwidth)", got, err, every)
	}

	_, err = f.ops.CreateAccount(ctx, NewAccount{Username: "alice", Password: "alice-password", Plan: "gold", Confirmed: true})
	f.must(t, err)
	plans, err := f.ops.Plans(ctx)
	f.must(t, err)
	var names []string
	for _, p := range plans {
		names = append(names, p.Name)
		if want := map[string]int{"gold": 1}[p.Name]; p.Accounts != want {
			t.Errorf("plan %s has %d accounts, want %d", p.Name, p.Accounts, want)
		}
	}
	if want := []string{"free", "gold", "starter"}; !slices.Equal(names, want) {
		t.Errorf("Plans = %v, want %v", names, want)
	}
}

func TestCreateAccount(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	refused := []struct {
		name   string
		a      NewAccount
		code   string
		fields []string
	}{
		{"IP that is not one", NewAccount{Password: "s3cret-password", Plan: "starter", IPs: []string{"203.0.113.5", "999.1.1.1"}},
			domain.EINVALID, []string{"ips"}},
		{"no plan, bad IP", NewAccount{Password: "s3cret-password", IPs: []string{"nope"}}, domain.EINVALID, []string{"ips", "plan"}},
		{"short password", NewAccount{Password: "short", Plan: "starter"}, domain.EINVALID, nil},
		{"unknown plan", NewAccount{Password: "s3cret-password", Plan: "gold"}, domain.EINVALID, nil},
		{"unknown proxy", NewAccount{Password: "s3cret-password", Plan: "starter", Proxies: []string{"mars"}}, domain.EINVALID, nil},
		{"too many IPs", NewAccount{Password: "s3cret-password", Plan: "starter", IPs: []string{"203.0.113.1", "203.0.113.2", "203.0.113.3"}},
			domain.ELIMIT, nil},
		{"steering word in the username", NewAccount{Username: "alice-session-1", Password: "s3cret-password", Plan: "starter"},
			domain.EINVALID, nil},
	}
	for _, tt := range refused {
		if tt.a.Username == "" {
			tt.a.Username = "alice"
		}
		_, err := f.ops.CreateAccount(ctx, tt.a)
		wantCode(t, tt.name, err, tt.code, tt.fields...)
	}
	if page, err := f.st.ListAccounts(ctx, domain.AccountQuery{}); err != nil || len(page.Accounts) != 0 {
		t.Fatalf("accounts after refused creates: %+v, %v; want none", page.Accounts, err)
	}
	f.wantChanges(t, 0)

	acct, err := f.ops.CreateAccount(ctx, NewAccount{Username: "alice", Password: "s3cret-password", Plan: "starter",
		Proxies: []string{"us-ca"}, IPs: []string{" 203.0.113.9", "", "2001:db8::1 "}})
	f.must(t, err)
	f.wantChanges(t, 1)
	wantIPs := []netip.Addr{netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("2001:db8::1")}
	if acct.Confirmed || !slices.Equal(acct.Proxies, []string{"us-ca"}) || !slices.Equal(acct.IPs, wantIPs) {
		t.Errorf("created %+v; want unconfirmed, us-ca, %v", acct, wantIPs)
	}
	if ok, err := auth.CheckPassword(f.account(t, "alice").PasswordHash, "s3cret-password"); !ok || err != nil {
		t.Errorf("the stored hash does not verify the password: %v, %v", ok, err)
	}
	_, err = f.ops.CreateAccount(ctx, NewAccount{Username: "alice", Password: "other-password", Plan: "free"})
	wantCode(t, "alice again", err, domain.ECONFLICT)
}

func TestAccountChanges(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	_, err := f.ops.CreateAccount(ctx, NewAccount{Username: "alice", Password: "old-password", Plan: "starter"})
	f.must(t, err)
	f.wantChanges(t, 1)

	type state struct {
		plan                string
		confirmed, disabled bool
	}
	steps := []struct {
		name   string
		change func() (domain.Account, error)
		want   state
	}{
		{"confirm", func() (domain.Account, error) { return f.ops.Confirm(ctx, "alice") }, state{"starter", true, false}},
		{"disable", func() (domain.Account, error) { return f.ops.Disable(ctx, "alice") }, state{"starter", true, true}},
		{"enable", func() (domain.Account, error) { return f.ops.Enable(ctx, "alice") }, state{"starter", true, false}},
		{"set plan", func() (domain.Account, error) { return f.ops.SetPlan(ctx, "alice", "free") }, state{"free", true, false}},
	}
	for _, s := range steps {
		a, err := s.change()
		if got := (state{a.Plan, a.Confirmed, a.Disabled}); err != nil || got != s.want {
			t.Errorf("%s: %+v, %v; want %+v", s.name, got, err, s.want)
		}
		f.wantChanges(t, 1)
	}

	_, err = f.ops.ResetPassword(ctx, "alice", "short")
	wantCode(t, "a short password", err, domain.EINVALID)
	_, err = f.ops.SetPlan(ctx, "alice", "platinum")
	wantCode(t, "an unknown plan", err, domain.EINVALID)
	for name, change := range map[string]func() (domain.Account, error){
		"confirm":        func() (domain.Account, error) { return f.ops.Confirm(ctx, "nobody") },
		"disable":        func() (domain.Account, error) { return f.ops.Disable(ctx, "nobody") },
		"enable":         func() (domain.Account, error) { return f.ops.Enable(ctx, "nobody") },
		"set plan":       func() (domain.Account, error) { return f.ops.SetPlan(ctx, "nobody", "free") },
		"reset password": func() (domain.Account, error) { return f.ops.ResetPassword(ctx, "nobody", "new-password") },
	} {
		_, err := change()
		wantCode(t, name+" nobody", err, domain.ENOTFOUND)
	}
	f.wantChanges(t, 0)

	_, err = f.ops.ResetPassword(ctx, "alice", "new-password")
	f.must(t, err)
	f.wantChanges(t, 1)
	for pw, want := range map[string]bool{"new-password": true, "old-password": false} {
		if ok, err := auth.CheckPassword(f.account(t, "alice").PasswordHash, pw); ok != want || err != nil {
			t.Errorf("CheckPassword(%q) = %v, %v; want %v", pw, ok, err, want)
		}
	}
}

// TestBandwidthThisMonth: the accounts page, an account and the usage report describe this
// month's bandwidth (the clock's month, sub-accounts included) against each account's plan.
func TestBandwidthThisMonth(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	for user, plan := range map[string]string{"alice": "starter", "bob": "starter", "dave": "free"} {
		_, err := f.ops.CreateAccount(ctx, NewAccount{Username: user, Password: user + "-password", Plan: plan, Confirmed: user != "bob"})
		f.must(t, err)
	}
	alice, dave := f.account(t, "alice"), f.account(t, "dave")
	sub, err := f.st.CreateSubAccount(ctx, "alice", domain.NewSubAccount{Username: "alice-bot", PasswordHash: alice.PasswordHash})
	f.must(t, err)
	f.must(t, f.st.AddUsage(ctx, "b1", map[domain.UsageKey]domain.UsageCounts{
		{AccountID: alice.ID, Proxy: "us-ca", Day: "2026-11-14"}:                {BytesIn: 200_000_000, BytesOut: 700_000_000, Requests: 4},
		{AccountID: alice.ID, SubID: sub.ID, Proxy: "us-ca", Day: "2026-11-15"}: {BytesOut: 350_000_000, Tunnels: 1},
		{AccountID: alice.ID, Proxy: "us-ca", Day: "2026-10-31"}:                {BytesOut: 5_000_000_000}, // last month
		{AccountID: dave.ID, Proxy: "world", Day: "2026-11-01"}:                 {BytesOut: 123_456_789},
	}))
	want := map[string]AccountRow{
		"alice": {Status: "active", Bandwidth: "1.2 GB of 10 GB"},
		"bob":   {Status: "unconfirmed", Bandwidth: "0 B of 10 GB"},
		"dave":  {Status: "active", Bandwidth: "123.4 MB (unlimited plan)"},
	}
	check := func(what string, rows []AccountRow, wantNames ...string) {
		t.Helper()
		var names []string
		for _, r := range rows {
			names = append(names, r.Username)
			if w := want[r.Username]; r.Status != w.Status || r.Bandwidth != w.Bandwidth {
				t.Errorf("%s: %s is %q, %q; want %q, %q", what, r.Username, r.Status, r.Bandwidth, w.Status, w.Bandwidth)
			}
		}
		if !slices.Equal(names, wantNames) {
			t.Errorf("%s lists %v, want %v", what, names, wantNames)
		}
	}

	page, err := f.ops.AccountsPage(ctx, domain.AccountQuery{Limit: 2})
	f.must(t, err)
	check("the first page", page.Accounts, "alice", "bob")
	if page.Next != "bob" || page.Month != "2026-11" || len(page.Plans) != 2 {
		t.Errorf("page: next %q, month %q, %d plans; want bob, 2026-11, 2", page.Next, page.Month, len(page.Plans))
	}

	detail, err := f.ops.Account(ctx, "alice")
	f.must(t, err)
	check("account alice", []AccountRow{detail.AccountRow}, "alice")
	if len(detail.Subs) != 1 || detail.Subs[0].Username != "alice-bot" || detail.Month != "2026-11" {
		t.Errorf("alice's subs %+v, month %q; want alice-bot, 2026-11", detail.Subs, detail.Month)
	}
	_, err = f.ops.Account(ctx, "nobody")
	wantCode(t, "account nobody", err, domain.ENOTFOUND)

	report, err := f.ops.UsageReport(ctx, domain.UsageFilter{From: "2026-11-01"})
	f.must(t, err)
	check("the report of everyone", report.Accounts, "alice", "bob", "dave")
	if len(report.Rows) != 3 || report.Month != "2026-11" {
		t.Errorf("report: %d rows, month %q; want 3 (November's), 2026-11", len(report.Rows), report.Month)
	}
	report, err = f.ops.UsageReport(ctx, domain.UsageFilter{Username: "dave"})
	f.must(t, err)
	check("the report of dave", report.Accounts, "dave")
	_, err = f.ops.UsageReport(ctx, domain.UsageFilter{Username: "nobody"})
	wantCode(t, "usage of nobody", err, domain.ENOTFOUND)
	_, err = f.ops.UsageReport(ctx, domain.UsageFilter{From: "notadate"})
	wantCode(t, "usage from notadate", err, domain.EINVALID)
	f.wantChanges(t, 3) // the creates only: reading changes nothing

	board, err := f.ops.ProxyBoard(ctx)
	f.must(t, err)
	if board.Today != "2026-11-15" || board.Month != "2026-11" || len(board.Proxies) != 2 {
		t.Fatalf("board %s / %s with %d proxies; want 2026-11-15 / 2026-11 with 2", board.Today, board.Month, len(board.Proxies))
	}
	usCA := board.Proxies[0]
	if want := (Traffic{Bytes: 350_000_000, Requests: 1}); usCA.Name != "us-ca" || usCA.Today != want {
		t.Errorf("us-ca today: %+v, want %+v", usCA.Today, want)
	}
	if want := (Traffic{Bytes: 1_250_000_000, Requests: 5}); usCA.Month != want {
		t.Errorf("us-ca this month: %+v, want %+v (October's left out)", usCA.Month, want)
	}
}

func TestExits(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	f.must(t, f.st.PutExitStatuses(ctx, "node-a", []domain.ExitStatus{
		{Proxy: "us-ca", IP: netip.MustParseAddr("127.0.0.2"), Healthy: true, Latency: 1200 * time.Microsecond, Updated: f.now.Add(-2 * time.Second)},
		{Proxy: "us-ca", IP: netip.MustParseAddr("127.0.0.3"), Since: f.now.Add(-90 * time.Second), Updated: f.now},
	}))
	f.must(t, f.st.PutExitStatuses(ctx, "node-b", []domain.ExitStatus{
		{Proxy: "gone", IP: netip.MustParseAddr("127.0.0.9"), Healthy: true, Updated: f.now.Add(-time.Hour)},
	}))
	exits, err := f.ops.Exits(ctx, "us-ca")
	f.must(t, err)
	var got [][3]string
	for _, e := range exits {
		got = append(got, [3]string{e.Health, e.Latency, e.Reported})
	}
	if want := [][3]string{{"up", "1.2ms", "2s ago"}, {"DOWN 1m30s", "-", "0s ago"}}; !slices.Equal(got, want) {
		t.Errorf("us-ca's exits %v, want %v", got, want)
	}
	if all, err := f.ops.Exits(ctx, ""); err != nil || len(all) != 3 {
		t.Errorf("every exit: %d, %v; want 3", len(all), err)
	}

	board, err := f.ops.ProxyBoard(ctx)
	f.must(t, err)
	var summary []string
	for _, p := range board.Proxies {
		summary = append(summary, fmt.Sprintf("%s listed=%v %d/%d", p.Name, p.Listed, p.Up, len(p.Exits)))
	}
	if want := []string{"gone listed=false 1/1", "us-ca listed=true 1/2", "world listed=true 0/0"}; !slices.Equal(summary, want) {
		t.Errorf("board %v, want %v", summary, want)
	}
}

func TestBans(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	f.now = time.Now() // the store keeps the bans in force by its own clock
	for _, ip := range []string{"203.0.113.1", "203.0.113.2", "198.51.100.7"} {
		f.must(t, f.st.PutBan(ctx, domain.Ban{IP: netip.MustParseAddr(ip), Until: f.now.Add(10 * time.Minute), Reason: "auth-failure"}))
	}
	banned := netip.MustParseAddr("203.0.113.1")
	f.tracker.Import(bans.Ban{IP: banned, Until: f.now.Add(10 * time.Minute), Reason: bans.AuthFailure})

	page, err := f.ops.BansPage(ctx, domain.BanQuery{Prefix: "203.0.113."})
	f.must(t, err)
	if len(page.Bans) != 2 || page.Bans[0].IP != banned || page.Bans[0].Left != "10 more minutes" {
		t.Errorf("bans of 203.0.113.: %+v; want .1 and .2, 10 more minutes each", page.Bans)
	}
	_, err = f.ops.BansPage(ctx, domain.BanQuery{Prefix: "203.0.113.%"})
	wantCode(t, "a prefix of no IP", err, domain.EINVALID)

	_, err = f.ops.LiftBan(ctx, "203.0.113.x")
	wantCode(t, "lift 203.0.113.x", err, domain.EINVALID, "ip")
	_, err = f.ops.LiftBan(ctx, "192.0.2.1")
	wantCode(t, "lift a ban not in force", err, domain.ENOTFOUND)
	f.wantChanges(t, 0)

	ip, err := f.ops.LiftBan(ctx, " ::ffff:203.0.113.1 ")
	if err != nil || ip != banned {
		t.Fatalf("LiftBan = %v, %v; want %v", ip, err, banned)
	}
	f.wantChanges(t, 1)
	if _, still := f.tracker.Banned(banned); still {
		t.Error("the node's tracker still bans the lifted IP")
	}
	if page, err := f.ops.BansPage(ctx, domain.BanQuery{}); err != nil || len(page.Bans) != 2 {
		t.Errorf("bans after the lift: %+v, %v; want 2", page.Bans, err)
	}
}
