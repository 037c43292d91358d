package storetest

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/exitmesh/exitmesh/internal/domain"
)

func testHostnames(t *testing.T, s domain.Store) {
	ctx := t.Context()
	alice, bob := seed(t, s)
	v := version(t, s)
	must(t, s.AddHostname(ctx, "alice", "Home.Alice.Example.", ip("203.0.113.9")))
	if version(t, s) != v+1 {
		t.Error("AddHostname did not move the version")
	}
	got, err := s.GetAccount(ctx, "alice")
	must(t, err)
	if len(got.Hostnames) != 1 || got.Hostnames[0].Name != "home.alice.example" || got.Hostnames[0].IP != ip("203.0.113.9") || got.Hostnames[0].ResolvedAt.IsZero() {
		t.Fatalf("alice's hostnames = %+v, want home.alice.example at 203.0.113.9, resolved", got.Hostnames)
	}
	// Another account may authorize the same hostname; an unresolved one is kept without an address.
	must(t, s.AddHostname(ctx, "bob", "home.alice.example", ip("203.0.113.9")))
	must(t, s.AddHostname(ctx, "bob", "later.bob.example", netip.Addr{}))

	runErrCases(t, s, []errCase{
		{"duplicate in another case", func(ctx context.Context, s domain.Store) error {
			return s.AddHostname(ctx, "alice", "HOME.alice.example", ip("203.0.113.9"))
		}, domain.ECONFLICT, "Hostname is already authorized."},
		{"over the plan's limit of 1", func(ctx context.Context, s domain.Store) error {
			return s.AddHostname(ctx, "alice", "second.alice.example", ip("203.0.113.10"))
		}, domain.ELIMIT, "upgrade"},
		{"invalid name", func(ctx context.Context, s domain.Store) error {
			return s.AddHostname(ctx, "bob", "not a.name!", ip("203.0.113.10"))
		}, domain.EINVALID, "not a valid host name"},
		{"an IP is not a hostname", func(ctx context.Context, s domain.Store) error {
			return s.AddHostname(ctx, "bob", "203.0.113.10", ip("203.0.113.10"))
		}, domain.EINVALID, "IP address"},
		{"unknown account", func(ctx context.Context, s domain.Store) error {
			return s.AddHostname(ctx, "nobody", "x.example.org", ip("203.0.113.10"))
		}, domain.ENOTFOUND, "nobody"},
		{"remove one not authorized", func(ctx context.Context, s domain.Store) error {
			return s.RemoveHostname(ctx, "alice", "other.example.org")
		}, domain.EINVALID, "not authorized"},
		{"set address of an unknown hostname", func(ctx context.Context, s domain.Store) error {
			return s.SetHostnameIP(ctx, "alice", "other.example.org", ip("203.0.113.10"))
		}, domain.ENOTFOUND, "not found"},
	})

	// Re-resolution: a new address moves the version, the same address does not.
	v = version(t, s)
	must(t, s.SetHostnameIP(ctx, "alice", "home.alice.example", ip("203.0.113.9")))
	if version(t, s) != v {
		t.Error("SetHostnameIP with an unchanged address moved the version")
	}
	must(t, s.SetHostnameIP(ctx, "alice", "home.alice.example", ip("203.0.113.77")))
	if version(t, s) != v+1 {
		t.Error("SetHostnameIP with a new address did not move the version")
	}
	must(t, s.SetHostnameIP(ctx, "bob", "later.bob.example", ip("203.0.113.78")))

	all, err := s.ListAllHostnames(ctx)
	must(t, err)
	want := []domain.AccountHostname{
		{Account: "alice", Hostname: domain.Hostname{Name: "home.alice.example", IP: ip("203.0.113.77")}},
		{Account: "bob", Hostname: domain.Hostname{Name: "home.alice.example", IP: ip("203.0.113.9")}},
		{Account: "bob", Hostname: domain.Hostname{Name: "later.bob.example", IP: ip("203.0.113.78")}},
	}
	if len(all) != len(want) {
		t.Fatalf("ListAllHostnames = %+v, want %+v", all, want)
	}
	for i := range want {
		if all[i].Account != want[i].Account || all[i].Name != want[i].Name || all[i].IP != want[i].IP || all[i].ResolvedAt.IsZero() {
			t.Errorf("ListAllHostnames[%d] = %+v, want %+v (resolved)", i, all[i], want[i])
		}
	}

	snap, err := s.Snapshot(ctx)
	must(t, err)
	i := slices.IndexFunc(snap.Accounts, func(a domain.Account) bool { return a.ID == alice.ID })
	if i < 0 || len(snap.Accounts[i].Hostnames) != 1 || snap.Accounts[i].Hostnames[0].IP != ip("203.0.113.77") {
		t.Errorf("snapshot lacks alice's re-resolved hostname: %+v", snap.Accounts)
	}

	v = version(t, s)
	must(t, s.RemoveHostname(ctx, "alice", "HOME.alice.example."))
	if version(t, s) != v+1 {
		t.Error("RemoveHostname did not move the version")
	}
	got, err = s.GetAccount(ctx, "bob")
	must(t, err)
	if got.ID != bob.ID || len(got.Hostnames) != 2 {
		t.Errorf("removing alice's hostname touched bob's: %+v", got.Hostnames)
	}
}

func testGetLogin(t *testing.T, s domain.Store) {
	ctx := t.Context()
	alice, _ := seed(t, s)
	_, err := s.CreateSubAccount(ctx, "alice", domain.NewSubAccount{Username: "alice-bot", PasswordHash: hash + "x"})
	must(t, err)
	sub, err := s.ListSubAccounts(ctx, "alice")
	must(t, err)

	l, err := s.GetLogin(ctx, "alice")
	must(t, err)
	if l != (domain.Login{Username: "alice", PasswordHash: hash, AccountID: alice.ID, Account: "alice"}) || l.IsSub() {
		t.Errorf("GetLogin(alice) = %+v", l)
	}
	l, err = s.GetLogin(ctx, "alice-bot")
	must(t, err)
	if l != (domain.Login{Username: "alice-bot", PasswordHash: hash + "x", AccountID: alice.ID, Account: "alice", SubID: sub[0].ID}) || !l.IsSub() {
		t.Errorf("GetLogin(alice-bot) = %+v", l)
	}
	if _, err := s.GetLogin(ctx, "ALICE"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("GetLogin(ALICE) = %v, want ENOTFOUND (usernames are case-sensitive)", err)
	}
}
