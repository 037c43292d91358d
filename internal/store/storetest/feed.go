package storetest

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// testChangeFeed: each write that changes the accounts view records what it changed under the
// version it set, and ChangesSince returns those entries in order with the current state of what
// they name.
func testChangeFeed(t *testing.T, s domain.Store) {
	ctx := t.Context()
	alice, _ := seed(t, s)
	from := version(t, s)
	carol := mustAccount(t, s, domain.NewAccount{Username: "carol", PasswordHash: hash, Plan: "small", Proxies: []string{"de"}})
	must(t, s.AddIP(ctx, "carol", ip("203.0.113.9")))
	mustSub(t, s, "alice", domain.NewSubAccount{Username: "alice-1", PasswordHash: hash, IPs: []netip.Addr{ip("192.0.2.1")}})
	must(t, s.UpdatePlan(ctx, domain.Plan{Name: "big", MaxProxies: 10, MaxSubs: 10, MaxIPs: 10, MaxHostnames: 10, MonthlyBandwidth: 5 << 30}))
	must(t, s.PutProxyServer(ctx, domain.ProxyServer{Name: "nl", Address: "nl.example.net:31280"}))
	head := version(t, s)

	d, err := s.ChangesSince(ctx, from, 1000)
	must(t, err)
	if d.Gap || d.From != from || d.To != head || d.Head != head {
		t.Fatalf("delta %d→%d head %d gap %v, want %d→%d head %d", d.From, d.To, d.Head, d.Gap, from, head, head)
	}
	want := []domain.Change{
		{Seq: from + 1, Kind: domain.ChangeAccount, Ref: carol.ID},
		{Seq: from + 2, Kind: domain.ChangeAccount, Ref: carol.ID},
		{Seq: from + 3, Kind: domain.ChangeAccount, Ref: alice.ID},
		{Seq: from + 4, Kind: domain.ChangePlans},
	}
	if !slices.Equal(d.Changes, want) {
		t.Errorf("changes = %+v, want %+v (the catalogue's change records nothing)", d.Changes, want)
	}
	if len(d.Accounts) != 2 || d.Accounts[0].Username != "alice" || d.Accounts[1].Username != "carol" ||
		!slices.Equal(d.Accounts[1].IPs, []netip.Addr{ip("203.0.113.9")}) {
		t.Errorf("accounts = %+v, want alice and carol as they are now", d.Accounts)
	}
	if len(d.Subs) != 1 || d.Subs[0].Username != "alice-1" || d.Subs[0].AccountID != alice.ID {
		t.Errorf("subs = %+v, want alice's alice-1", d.Subs)
	}
	if i := slices.IndexFunc(d.Plans, func(p domain.Plan) bool { return p.Name == "big" }); i < 0 || d.Plans[i].MonthlyBandwidth != 5<<30 {
		t.Errorf("plans = %+v, want every plan as it is now", d.Plans)
	}

	// A limit covers that many versions; the rest follows.
	d, err = s.ChangesSince(ctx, from, 2)
	must(t, err)
	if d.To != from+2 || d.Head != head || len(d.Changes) != 2 || len(d.Accounts) != 1 || d.Accounts[0].ID != carol.ID || d.Plans != nil {
		t.Errorf("limited delta: %d→%d head %d, %d changes, accounts %+v, plans %v", d.From, d.To, d.Head, len(d.Changes), d.Accounts, d.Plans)
	}
	// Up to date: nothing.
	d, err = s.ChangesSince(ctx, head, 1000)
	must(t, err)
	if d.Gap || d.To != head || len(d.Changes) != 0 || len(d.Accounts) != 0 {
		t.Errorf("delta from the head: %+v, want empty", d)
	}
	// Ahead of the store (another database, or one restored from a backup): a gap.
	if d, err = s.ChangesSince(ctx, head+5, 1000); err != nil || !d.Gap {
		t.Errorf("delta from beyond the head: gap %v, %v; want a gap", d.Gap, err)
	}
	// A deleted sub-account is a change of its account, which then lists no sub-account.
	must(t, s.DeleteSubAccount(ctx, "alice", "alice-1"))
	d, err = s.ChangesSince(ctx, head, 1000)
	must(t, err)
	if len(d.Changes) != 1 || d.Changes[0].Ref != alice.ID || len(d.Subs) != 0 || len(d.Accounts) != 1 {
		t.Errorf("after deleting alice-1: %+v", d)
	}
}

// testPruneChanges: entries older than the cut are forgotten, and a reader from before them is told
// to load in full.
func testPruneChanges(t *testing.T, s domain.Store) {
	ctx := t.Context()
	seed(t, s)
	from := version(t, s)
	must(t, s.AddIP(ctx, "alice", ip("192.0.2.2")))
	n, err := s.PruneChanges(ctx, time.Now().Add(-time.Hour))
	must(t, err)
	if n != 0 {
		t.Errorf("pruned %d entries younger than the cut", n)
	}
	n, err = s.PruneChanges(ctx, time.Now().Add(time.Hour))
	must(t, err)
	if n == 0 {
		t.Error("nothing pruned before a cut in the future")
	}
	if d, err := s.ChangesSince(ctx, from, 1000); err != nil || !d.Gap {
		t.Errorf("reading from before the pruned entries: gap %v, %v; want a gap", d.Gap, err)
	}
	head := version(t, s)
	if d, err := s.ChangesSince(ctx, head, 1000); err != nil || d.Gap {
		t.Errorf("reading from the head after pruning: gap %v, %v; want none", d.Gap, err)
	}
	must(t, s.AddIP(ctx, "bob", ip("198.51.100.2")))
	if d, err := s.ChangesSince(ctx, head, 1000); err != nil || d.Gap || len(d.Changes) != 1 {
		t.Errorf("the next change after pruning: %+v, %v", d, err)
	}
}

// testConcurrentFeed: concurrent writers each get a version of their own and every version's entry
// is in the feed, in order, so a reader that read up to a version has missed nothing before it.
func testConcurrentFeed(t *testing.T, s domain.Store) {
	ctx := t.Context()
	seed(t, s)
	const accounts, each = 8, 5
	for i := range accounts {
		mustAccount(t, s, domain.NewAccount{Username: fmt.Sprintf("w%d", i), PasswordHash: hash, Plan: "big"})
	}
	from := version(t, s)
	var wg sync.WaitGroup
	errs := make(chan error, accounts*each)
	for i := range accounts {
		wg.Go(func() {
			for j := range each {
				errs <- s.AddIP(ctx, fmt.Sprintf("w%d", i), netip.AddrFrom4([4]byte{203, 0, byte(113 + i), byte(j + 1)}))
			}
		})
	}
	// A reader following the feed meanwhile never sees a version twice nor goes back.
	seen, last := 0, from
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		d, err := s.ChangesSince(ctx, last, 7)
		must(t, err)
		for _, c := range d.Changes {
			if c.Seq <= last {
				t.Fatalf("entry %d after having read up to %d", c.Seq, last)
			}
			last, seen = c.Seq, seen+1
		}
		last = max(last, d.To)
	}
	close(errs)
	for err := range errs {
		must(t, err)
	}
	for {
		d, err := s.ChangesSince(ctx, last, 7)
		must(t, err)
		seen += len(d.Changes)
		if d.To == last {
			break
		}
		last = d.To
	}
	if seen != accounts*each || last != from+accounts*each {
		t.Errorf("the reader saw %d entries up to version %d, want %d up to %d", seen, last, accounts*each, from+accounts*each)
	}
}

// testImportAccounts: the bulk path creates accounts and their sub-accounts in batches, each account
// one feed entry, within the plans' limits; a failing batch is rolled back whole and ends the import.
// A delta never reads more than ten thousand entries, but always a whole version.
func testImportAccounts(t *testing.T, s domain.Store) {
	ctx := t.Context()
	seed(t, s)
	from := version(t, s)
	const n = 10_500
	bulk := make([]domain.BulkAccount, n)
	for i := range bulk {
		b := &bulk[i]
		b.Account = domain.NewAccount{Username: fmt.Sprintf("bulk%05d", i), PasswordHash: hash, Plan: "big", Confirmed: true,
			Proxies: []string{"de"}, IPs: []netip.Addr{netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)})}}
		if i%4 == 0 {
			b.Subs = []domain.NewSubAccount{{Username: fmt.Sprintf("bulk%05d-sub", i), PasswordHash: hash, Proxies: []string{"de"}}}
		}
	}
	must(t, s.ImportAccounts(ctx, bulk))
	if got := version(t, s) - from; got != (n+999)/1000 {
		t.Errorf("the import took %d versions, want one per thousand accounts (%d)", got, (n+999)/1000)
	}
	got := mustGet(t, s, "bulk10499")
	if got.Plan != "big" || len(got.IPs) != 1 || got.IPs[0] != netip.AddrFrom4([4]byte{100, 64, 41, 3}) {
		t.Errorf("imported account: %+v", got)
	}
	subs, err := s.ListSubAccounts(ctx, "bulk10496")
	must(t, err)
	if len(subs) != 1 || subs[0].Username != "bulk10496-sub" {
		t.Errorf("imported sub-accounts: %+v", subs)
	}
	d, err := s.ChangesSince(ctx, from, 1000)
	must(t, err)
	if d.To != from+10 || len(d.Changes) != 10_000 || len(d.Accounts) != 10_000 || len(d.Subs) != 2_500 {
		t.Errorf("delta over the import: %d→%d, %d changes, %d accounts, %d subs; want the first 10 versions (10,000 accounts)",
			d.From, d.To, len(d.Changes), len(d.Accounts), len(d.Subs))
	}
	// A batch breaking a plan limit (a third IP on the small plan) leaves the batches before it.
	bad := []domain.BulkAccount{
		{Account: domain.NewAccount{Username: "fine", PasswordHash: hash, Plan: "small"}},
		{Account: domain.NewAccount{Username: "greedy", PasswordHash: hash, Plan: "small",
			IPs: []netip.Addr{ip("203.0.113.1"), ip("203.0.113.2"), ip("203.0.113.3")}}},
	}
	before := version(t, s)
	wantError(t, s.ImportAccounts(ctx, bad), domain.ELIMIT, "allows 2 IP addresses")
	// A sub-account outside its account's IPs, and a username already taken.
	wantError(t, s.ImportAccounts(ctx, []domain.BulkAccount{{
		Account: domain.NewAccount{Username: "fine", PasswordHash: hash, Plan: "big", IPs: []netip.Addr{ip("203.0.113.1")}},
		Subs:    []domain.NewSubAccount{{Username: "fine-sub", PasswordHash: hash, IPs: []netip.Addr{ip("203.0.113.2")}}},
	}}), domain.EINVALID, "203.0.113.2 is not authorized")
	wantError(t, s.ImportAccounts(ctx, []domain.BulkAccount{bad[0], {Account: domain.NewAccount{Username: "bulk00001", PasswordHash: hash, Plan: "big"}}}),
		domain.ECONFLICT, "already taken")
	if _, err := s.GetAccount(ctx, "fine"); domain.ErrorCode(err) != domain.ENOTFOUND || version(t, s) != before {
		t.Errorf("the failed batches left %v, version %d → %d", err, before, version(t, s))
	}
}
