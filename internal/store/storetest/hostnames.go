package storetest

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// hostnames returns the account's hostnames, failing the test if it cannot.
func hostnames(t *testing.T, s domain.Store, username string) []domain.Hostname {
	t.Helper()
	return mustGet(t, s, username).Hostnames
}

// wantVersion checks that the version moved by exactly delta since before.
func wantVersion(t *testing.T, s domain.Store, what string, before, delta int64) {
	t.Helper()
	if got := version(t, s); got != before+delta {
		t.Errorf("version after %s = %d, want %d", what, got, before+delta)
	}
}

func testAddRemoveHostname(t *testing.T, s domain.Store) {
	ctx := t.Context()
	seed(t, s)
	v := version(t, s)
	// Stored lower-cased without the trailing dot; the address unmapped and timestamped.
	must(t, s.AddHostname(ctx, "alice", "Home.Alice.Example.", ip("::ffff:203.0.113.9")))
	wantVersion(t, s, "AddHostname", v, 1)
	got := hostnames(t, s, "alice")
	if len(got) != 1 || got[0].Name != "home.alice.example" || got[0].IP != ip("203.0.113.9") || got[0].ResolvedAt.IsZero() {
		t.Fatalf("alice's hostnames = %+v, want home.alice.example at 203.0.113.9, resolved", got)
	}
	// Another account may authorize the same hostname. One that did not resolve is kept without an
	// address or a resolution time.
	must(t, s.AddHostname(ctx, "bob", "home.alice.example", ip("203.0.113.9")))
	must(t, s.AddHostname(ctx, "bob", "later.bob.example", netip.Addr{}))
	want := []domain.Hostname{{Name: "home.alice.example", IP: ip("203.0.113.9")}, {Name: "later.bob.example"}}
	got = hostnames(t, s, "bob")
	if len(got) != 2 || got[0].ResolvedAt.IsZero() {
		t.Fatalf("bob's hostnames = %+v, want %+v, the first resolved", got, want)
	}
	got[0].ResolvedAt = time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("bob's hostnames = %+v, want %+v", got, want)
	}

	runErrCases(t, s, []errCase{
		{"add twice, in another case", func(ctx context.Context, s domain.Store) error {
			return s.AddHostname(ctx, "alice", "HOME.alice.example.", ip("203.0.113.9"))
		}, domain.ECONFLICT, "Hostname is already authorized."},
		{"add over the limit of 1", func(ctx context.Context, s domain.Store) error {
			return s.AddHostname(ctx, "alice", "second.alice.example", ip("203.0.113.10"))
		}, domain.ELIMIT, `Your plan "small" allows 1 hostname; upgrade your plan to add more.`},
		{"add unresolved over the limit", func(ctx context.Context, s domain.Store) error {
			return s.AddHostname(ctx, "alice", "second.alice.example", netip.Addr{})
		}, domain.ELIMIT, `Your plan "small" allows 1 hostname; upgrade your plan to add more.`},
		{"add invalid name", func(ctx context.Context, s domain.Store) error {
			return s.AddHostname(ctx, "bob", "not a.name!", ip("203.0.113.10"))
		}, domain.EINVALID, "not a valid host name"},
		{"add single label", func(ctx context.Context, s domain.Store) error {
			return s.AddHostname(ctx, "bob", "localhost", ip("127.0.0.1"))
		}, domain.EINVALID, "fully qualified"},
		{"add empty", func(ctx context.Context, s domain.Store) error {
			return s.AddHostname(ctx, "bob", "", ip("203.0.113.10"))
		}, domain.EINVALID, "Hostname must be 1 to 253 characters long."},
		{"add an IP address", func(ctx context.Context, s domain.Store) error {
			return s.AddHostname(ctx, "bob", "203.0.113.10", ip("203.0.113.10"))
		}, domain.EINVALID, "authorize it as an IP"},
		{"add for missing account", func(ctx context.Context, s domain.Store) error {
			return s.AddHostname(ctx, "nobody", "x.example.org", ip("203.0.113.10"))
		}, domain.ENOTFOUND, `Account "nobody" not found.`},
		{"remove one not authorized", func(ctx context.Context, s domain.Store) error {
			return s.RemoveHostname(ctx, "alice", "other.example.org")
		}, domain.EINVALID, "Hostname is not authorized."},
		{"remove another account's", func(ctx context.Context, s domain.Store) error {
			return s.RemoveHostname(ctx, "alice", "later.bob.example")
		}, domain.EINVALID, "Hostname is not authorized."},
		{"remove invalid name", func(ctx context.Context, s domain.Store) error {
			return s.RemoveHostname(ctx, "alice", "not a name")
		}, domain.EINVALID, "Hostname is not authorized."},
		{"remove for missing account", func(ctx context.Context, s domain.Store) error {
			return s.RemoveHostname(ctx, "nobody", "home.alice.example")
		}, domain.ENOTFOUND, `Account "nobody" not found.`},
	})

	// Removal is case-insensitive, touches only this account's entry and frees the slot.
	v = version(t, s)
	must(t, s.RemoveHostname(ctx, "alice", "HOME.alice.example."))
	wantVersion(t, s, "RemoveHostname", v, 1)
	if got := hostnames(t, s, "alice"); len(got) != 0 {
		t.Errorf("alice's hostnames after RemoveHostname = %+v, want none", got)
	}
	if got := hostnames(t, s, "bob"); len(got) != 2 || got[0].Name != "home.alice.example" {
		t.Errorf("removing alice's hostname changed bob's: %+v", got)
	}
	must(t, s.AddHostname(ctx, "alice", "Host.Example.ORG", ip("203.0.113.11")))
	if got := hostnames(t, s, "alice"); len(got) != 1 || got[0].Name != "host.example.org" {
		t.Errorf("alice's hostnames = %+v, want host.example.org", got)
	}
	must(t, s.RemoveHostname(ctx, "alice", "host.example.org"))
	if got := hostnames(t, s, "alice"); len(got) != 0 {
		t.Errorf("alice's hostnames after removing host.example.org = %+v, want none", got)
	}

	// The limit is exact: bob's plan allows 10, he has 2.
	for i := range big.MaxHostnames - 2 {
		must(t, s.AddHostname(ctx, "bob", fmt.Sprintf("h%d.bob.example", i), ip("203.0.113.20")))
	}
	runErrCases(t, s, []errCase{
		{"add over the limit of 10", func(ctx context.Context, s domain.Store) error {
			return s.AddHostname(ctx, "bob", "h10.bob.example", ip("203.0.113.20"))
		}, domain.ELIMIT, `Your plan "big" allows 10 hostnames; upgrade your plan to add more.`},
	})
	if got := len(hostnames(t, s, "bob")); got != big.MaxHostnames {
		t.Errorf("bob has %d hostnames, want the limit %d", got, big.MaxHostnames)
	}
}

func testSetHostnameIP(t *testing.T, s domain.Store) {
	ctx := t.Context()
	seed(t, s)
	must(t, s.AddHostname(ctx, "alice", "home.alice.example", netip.Addr{}))
	must(t, s.AddHostname(ctx, "bob", "home.bob.example", ip("198.51.100.7")))

	// Still not resolving: nothing the proxy sees changed, but the attempt is recorded.
	v := version(t, s)
	must(t, s.SetHostnameIP(ctx, "alice", "home.alice.example", netip.Addr{}))
	wantVersion(t, s, "SetHostnameIP with no address again", v, 0)
	if got := hostnames(t, s, "alice"); len(got) != 1 || got[0].IP.IsValid() || got[0].ResolvedAt.IsZero() {
		t.Errorf("after an unchanged SetHostnameIP: %+v, want no address and a resolution time", got)
	}

	// A new address moves the version; the same one again (in any form) does not.
	must(t, s.SetHostnameIP(ctx, "alice", "home.alice.example", ip("203.0.113.9")))
	wantVersion(t, s, "SetHostnameIP with a new address", v, 1)
	must(t, s.SetHostnameIP(ctx, "alice", "HOME.alice.example.", ip("::ffff:203.0.113.9")))
	wantVersion(t, s, "SetHostnameIP with the same address", v, 1)
	got := hostnames(t, s, "alice")
	if len(got) != 1 || got[0].IP != ip("203.0.113.9") || got[0].ResolvedAt.IsZero() {
		t.Errorf("alice's hostnames = %+v, want home.alice.example at 203.0.113.9, resolved", got)
	}
	snap, err := s.Snapshot(ctx)
	must(t, err)
	i := slices.IndexFunc(snap.Accounts, func(a domain.Account) bool { return a.Username == "alice" })
	if i < 0 || !reflect.DeepEqual(snap.Accounts[i].Hostnames, got) {
		t.Errorf("Snapshot's hostnames of alice = %+v, want %+v", snap.Accounts, got)
	}

	// No longer resolving takes the address away, which the proxy must learn.
	must(t, s.SetHostnameIP(ctx, "alice", "home.alice.example", netip.Addr{}))
	wantVersion(t, s, "SetHostnameIP losing the address", v, 2)
	if got := hostnames(t, s, "alice"); len(got) != 1 || got[0].IP.IsValid() {
		t.Errorf("alice's hostnames = %+v, want home.alice.example without an address", got)
	}
	if got := hostnames(t, s, "bob"); len(got) != 1 || got[0].IP != ip("198.51.100.7") {
		t.Errorf("bob's hostnames = %+v, want home.bob.example at 198.51.100.7 untouched", got)
	}

	runErrCases(t, s, []errCase{
		{"unknown hostname", func(ctx context.Context, s domain.Store) error {
			return s.SetHostnameIP(ctx, "alice", "other.example.org", ip("203.0.113.10"))
		}, domain.ENOTFOUND, "Hostname not found."},
		{"another account's hostname", func(ctx context.Context, s domain.Store) error {
			return s.SetHostnameIP(ctx, "alice", "home.bob.example", ip("203.0.113.10"))
		}, domain.ENOTFOUND, "Hostname not found."},
		{"missing account", func(ctx context.Context, s domain.Store) error {
			return s.SetHostnameIP(ctx, "nobody", "home.alice.example", ip("203.0.113.10"))
		}, domain.ENOTFOUND, `Account "nobody" not found.`},
	})
}

func testListAllHostnames(t *testing.T, s domain.Store) {
	ctx := t.Context()
	all, err := s.ListAllHostnames(ctx)
	must(t, err)
	if all == nil || len(all) != 0 {
		t.Errorf("ListAllHostnames of an empty store = %#v, want an empty, non-nil list", all)
	}
	seed(t, s)
	// Added out of order, to see the sort.
	must(t, s.AddHostname(ctx, "bob", "b.example.org", ip("2001:db8::2")))
	must(t, s.AddHostname(ctx, "bob", "a.example.org", netip.Addr{}))
	must(t, s.AddHostname(ctx, "alice", "z.example.org", ip("192.0.2.26")))

	all, err = s.ListAllHostnames(ctx)
	must(t, err)
	var want []domain.AccountHostname
	for _, a := range []string{"alice", "bob"} {
		for _, h := range hostnames(t, s, a) {
			want = append(want, domain.AccountHostname{Account: a, Hostname: h})
		}
	}
	if !reflect.DeepEqual(all, want) {
		t.Errorf("ListAllHostnames =\n%+v, want\n%+v", all, want)
	}
	names := make([]string, len(all))
	for i, h := range all {
		names[i] = h.Account + " " + h.Name
	}
	if wantNames := []string{"alice z.example.org", "bob a.example.org", "bob b.example.org"}; !reflect.DeepEqual(names, wantNames) {
		t.Errorf("ListAllHostnames order = %q, want %q", names, wantNames)
	}
	if all[0].IP != ip("192.0.2.26") || all[0].ResolvedAt.IsZero() || all[1].IP.IsValid() || !all[1].ResolvedAt.IsZero() {
		t.Errorf("ListAllHostnames addresses = %+v, want alice's resolved and bob's a.example.org not", all)
	}
}

func testGetLogin(t *testing.T, s domain.Store) {
	ctx := t.Context()
	alice, bob := seed(t, s)
	sub := mustSub(t, s, "alice", domain.NewSubAccount{Username: "alice-bot", PasswordHash: hash + "x"})

	cases := []struct {
		username string
		want     domain.Login
	}{
		{"alice", domain.Login{Username: "alice", PasswordHash: hash, AccountID: alice.ID, Account: "alice"}},
		{"bob", domain.Login{Username: "bob", PasswordHash: hash, AccountID: bob.ID, Account: "bob"}},
		{"alice-bot", domain.Login{Username: "alice-bot", PasswordHash: hash + "x", AccountID: alice.ID, Account: "alice", SubID: sub.ID}},
	}
	for _, c := range cases {
		got, err := s.GetLogin(ctx, c.username)
		if err != nil || got != c.want {
			t.Errorf("GetLogin(%q) = %+v, %v; want %+v", c.username, got, err, c.want)
		}
		if got.IsSub() != (c.want.SubID != 0) {
			t.Errorf("GetLogin(%q).IsSub() = %v", c.username, got.IsSub())
		}
	}

	must(t, s.DeleteSubAccount(ctx, "alice", "alice-bot"))
	runErrCases(t, s, []errCase{
		{"unknown", func(ctx context.Context, s domain.Store) error {
			_, err := s.GetLogin(ctx, "nobody")
			return err
		}, domain.ENOTFOUND, `Login "nobody" not found.`},
		{"usernames are case-sensitive", func(ctx context.Context, s domain.Store) error {
			_, err := s.GetLogin(ctx, "ALICE")
			return err
		}, domain.ENOTFOUND, `Login "ALICE" not found.`},
		{"deleted sub-account", func(ctx context.Context, s domain.Store) error {
			_, err := s.GetLogin(ctx, "alice-bot")
			return err
		}, domain.ENOTFOUND, `Login "alice-bot" not found.`},
	})
}

// testConcurrentHostnames: re-resolutions racing with removals and additions of the same hostname
// fail only in the ways a person can cause (never a deadlock or another internal error).
func testConcurrentHostnames(t *testing.T, s domain.Store) {
	ctx := t.Context()
	seed(t, s)
	must(t, s.AddHostname(ctx, "bob", "x.example.org", ip("203.0.113.1")))
	const n = 24
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			switch i % 3 {
			case 0:
				errs[i] = s.SetHostnameIP(ctx, "bob", "x.example.org", ip(fmt.Sprintf("203.0.113.%d", i+1)))
			case 1:
				errs[i] = s.SetHostnameIP(ctx, "bob", "x.example.org", ip("203.0.113.1"))
			default:
				if errs[i] = s.RemoveHostname(ctx, "bob", "x.example.org"); errs[i] == nil {
					errs[i] = s.AddHostname(ctx, "bob", "x.example.org", ip("203.0.113.1"))
				}
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		switch domain.ErrorCode(err) {
		case "", domain.ENOTFOUND, domain.EINVALID, domain.ECONFLICT:
		default:
			t.Errorf("call %d: %v", i, err)
		}
	}
}

// testSubAccountHostnames: a sub-account holds some of its account's hostnames; one the account does
// not have is refused, and one the account gives up leaves the sub-account too.
func testSubAccountHostnames(t *testing.T, s domain.Store) {
	ctx := t.Context()
	seed(t, s)
	must(t, s.AddHostname(ctx, "bob", "bot.example.com", ip("198.51.100.7")))
	must(t, s.AddHostname(ctx, "bob", "other.example.com", ip("198.51.100.8")))
	mustSub(t, s, "bob", domain.NewSubAccount{Username: "bob.bot", PasswordHash: hash})
	sub, err := s.UpdateSubAccount(ctx, "bob", "bob.bot", domain.SubAccountUpdate{Hostnames: ptr([]string{"Bot.Example.com."})})
	must(t, err)
	if !reflect.DeepEqual(sub.Hostnames, []string{"bot.example.com"}) {
		t.Errorf("the sub-account's hostnames %v", sub.Hostnames)
	}
	_, err = s.UpdateSubAccount(ctx, "bob", "bob.bot", domain.SubAccountUpdate{Hostnames: ptr([]string{"nope.example.com"})})
	wantCode(t, "a hostname the account does not have", err, domain.EINVALID)
	must(t, s.RemoveHostname(ctx, "bob", "bot.example.com"))
	subs, err := s.ListSubAccounts(ctx, "bob")
	must(t, err)
	if len(subs) != 1 || len(subs[0].Hostnames) != 0 {
		t.Errorf("after the account gave the hostname up, the sub-account has %v", subs[0].Hostnames)
	}
}
