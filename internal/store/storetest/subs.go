package storetest

import (
	"context"
	"net/netip"
	"reflect"
	"testing"

	"github.com/exitmesh/exitmesh/internal/domain"
)

func testCreateSubAccount(t *testing.T, s domain.Store) {
	ctx := t.Context()
	alice, _ := seed(t, s)
	subs, err := s.ListSubAccounts(ctx, "alice")
	must(t, err)
	if subs == nil || len(subs) != 0 {
		t.Fatalf("ListSubAccounts of an account without any = %#v, want an empty, non-nil list", subs)
	}
	got := mustSub(t, s, "alice", domain.NewSubAccount{Username: "alice.scraper", PasswordHash: hash,
		Proxies: []string{"us-ca", "us-ca"}, IPs: []netip.Addr{ip("::ffff:192.0.2.1")}})
	want := domain.SubAccount{ID: got.ID, AccountID: alice.ID, Username: "alice.scraper", PasswordHash: hash,
		Active: true, Proxies: []string{"us-ca"}, IPs: []netip.Addr{ip("192.0.2.1")}, Hostnames: []string{}}
	if got.ID == 0 || !reflect.DeepEqual(got, want) {
		t.Errorf("CreateSubAccount =\n%+v, want\n%+v", got, want)
	}
	subs, err = s.ListSubAccounts(ctx, "alice")
	must(t, err)
	if !reflect.DeepEqual(subs, []domain.SubAccount{want}) {
		t.Errorf("ListSubAccounts = %+v, want [%+v]", subs, want)
	}
	b1 := mustSub(t, s, "bob", domain.NewSubAccount{Username: "bob-b", PasswordHash: hash})
	b0 := mustSub(t, s, "bob", domain.NewSubAccount{Username: "bob-a", PasswordHash: hash, Proxies: []string{"us-ca", "de"}})
	subs, err = s.ListSubAccounts(ctx, "bob")
	must(t, err)
	if !reflect.DeepEqual(subs, []domain.SubAccount{b0, b1}) {
		t.Errorf("ListSubAccounts(bob) = %+v, want [%+v %+v]", subs, b0, b1)
	}

	create := func(account string, n domain.NewSubAccount) func(context.Context, domain.Store) error {
		return func(ctx context.Context, s domain.Store) error {
			if n.PasswordHash == "" {
				n.PasswordHash = hash
			} else if n.PasswordHash == "-" {
				n.PasswordHash = ""
			}
			_, err := s.CreateSubAccount(ctx, account, n)
			return err
		}
	}
	runErrCases(t, s, []errCase{
		{"missing account", create("nobody", domain.NewSubAccount{Username: "x1"}), domain.ENOTFOUND, `Account "nobody" not found.`},
		{"invalid username", create("bob", domain.NewSubAccount{Username: "x y"}), domain.EINVALID, "Username"},
		{"steering word in username", create("bob", domain.NewSubAccount{Username: "x-country-us"}), domain.EINVALID, "-country-"},
		{"empty password hash", create("bob", domain.NewSubAccount{Username: "x1", PasswordHash: "-"}), domain.EINVALID, "Password"},
		{"unknown proxy", create("bob", domain.NewSubAccount{Username: "x1", Proxies: []string{"mars"}}), domain.EINVALID, `"mars"`},
		{"proxy the account lacks", create("bob", domain.NewSubAccount{Username: "x1", Proxies: []string{"us-ca", "fr"}}),
			domain.EINVALID, `"fr"`},
		{"IP the account lacks", create("bob", domain.NewSubAccount{Username: "x1", IPs: []netip.Addr{ip("192.0.2.1")}}),
			domain.EINVALID, "192.0.2.1"},
		{"invalid IP", create("bob", domain.NewSubAccount{Username: "x1", IPs: []netip.Addr{{}}}), domain.EINVALID, "IP address"},
		{"username of an account", create("bob", domain.NewSubAccount{Username: "alice"}), domain.ECONFLICT, "Username is already taken."},
		{"username of a sub-account", create("bob", domain.NewSubAccount{Username: "alice.scraper"}), domain.ECONFLICT, "Username is already taken."},
		{"over the limit", create("alice", domain.NewSubAccount{Username: "x1"}),
			domain.ELIMIT, `Your plan "small" allows 1 sub-account; upgrade your plan to add more.`},
	})
	mustSub(t, s, "bob", domain.NewSubAccount{Username: "x1", PasswordHash: hash}) // failures left the name free
}

func testUpdateSubAccount(t *testing.T, s domain.Store) {
	ctx := t.Context()
	seed(t, s)
	must(t, s.AddIP(ctx, "bob", ip("198.51.100.2")))
	sub := mustSub(t, s, "bob", domain.NewSubAccount{Username: "bob-1", PasswordHash: hash, Proxies: []string{"us-ca"}})
	mustSub(t, s, "alice", domain.NewSubAccount{Username: "alice-1", PasswordHash: hash})

	newHash, no := "$argon2id$new", false
	proxies := []string{"de", "us-ca", "de"}
	ips := []netip.Addr{ip("198.51.100.2"), ip("::ffff:198.51.100.1")}
	got, err := s.UpdateSubAccount(ctx, "bob", "bob-1",
		domain.SubAccountUpdate{PasswordHash: &newHash, Active: &no, Proxies: &proxies, IPs: &ips})
	must(t, err)
	want := sub
	want.PasswordHash, want.Active = newHash, false
	want.Proxies, want.IPs = []string{"de", "us-ca"}, []netip.Addr{ip("198.51.100.1"), ip("198.51.100.2")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("UpdateSubAccount =\n%+v, want\n%+v", got, want)
	}
	// Empty lists clear; an empty update changes nothing.
	none, noIPs := []string{}, []netip.Addr{}
	got, err = s.UpdateSubAccount(ctx, "bob", "bob-1", domain.SubAccountUpdate{Proxies: &none, IPs: &noIPs})
	must(t, err)
	if len(got.Proxies) != 0 || len(got.IPs) != 0 {
		t.Errorf("after clearing: %+v", got)
	}
	v := version(t, s)
	if got, err = s.UpdateSubAccount(ctx, "bob", "bob-1", domain.SubAccountUpdate{}); err != nil || got.Username != "bob-1" {
		t.Errorf("empty update = %+v, %v", got, err)
	}
	if version(t, s) != v {
		t.Errorf("an empty update changed the version")
	}

	empty, fr, foreign := "", []string{"fr"}, []netip.Addr{ip("192.0.2.1")}
	update := func(account, sub string, u domain.SubAccountUpdate) func(context.Context, domain.Store) error {
		return func(ctx context.Context, s domain.Store) error {
			_, err := s.UpdateSubAccount(ctx, account, sub, u)
			return err
		}
	}
	active := true
	runErrCases(t, s, []errCase{
		{"missing sub-account", update("bob", "bob-9", domain.SubAccountUpdate{Active: &active}), domain.ENOTFOUND, "Sub-account not found."},
		{"another account's sub-account", update("bob", "alice-1", domain.SubAccountUpdate{Active: &active}),
			domain.ENOTFOUND, "Sub-account not found."},
		{"the account itself", update("bob", "bob", domain.SubAccountUpdate{Active: &active}), domain.ENOTFOUND, "Sub-account not found."},
		{"missing account", update("nobody", "bob-1", domain.SubAccountUpdate{Active: &active}), domain.ENOTFOUND, `Account "nobody" not found.`},
		{"empty password hash", update("bob", "bob-1", domain.SubAccountUpdate{Active: &active, PasswordHash: &empty}), domain.EINVALID, "Password"},
		{"proxy the account lacks", update("bob", "bob-1", domain.SubAccountUpdate{Active: &active, Proxies: &fr}), domain.EINVALID, `"fr"`},
		{"IP the account lacks", update("bob", "bob-1", domain.SubAccountUpdate{Active: &active, IPs: &foreign}), domain.EINVALID, "192.0.2.1"},
	})
	subs, err := s.ListSubAccounts(ctx, "bob")
	must(t, err)
	if subs[0].Active {
		t.Error("a failed update was partly applied: bob-1 is active")
	}
}

func testDeleteSubAccount(t *testing.T, s domain.Store) {
	ctx := t.Context()
	seed(t, s)
	mustSub(t, s, "bob", domain.NewSubAccount{Username: "bob-1", PasswordHash: hash,
		Proxies: []string{"de"}, IPs: []netip.Addr{ip("198.51.100.1")}})
	mustSub(t, s, "alice", domain.NewSubAccount{Username: "alice-1", PasswordHash: hash})
	runErrCases(t, s, []errCase{
		{"missing sub-account", func(ctx context.Context, s domain.Store) error {
			return s.DeleteSubAccount(ctx, "bob", "bob-9")
		}, domain.ENOTFOUND, "Sub-account not found."},
		{"another account's sub-account", func(ctx context.Context, s domain.Store) error {
			return s.DeleteSubAccount(ctx, "bob", "alice-1")
		}, domain.ENOTFOUND, "Sub-account not found."},
		{"the account itself", func(ctx context.Context, s domain.Store) error {
			return s.DeleteSubAccount(ctx, "bob", "bob")
		}, domain.ENOTFOUND, "Sub-account not found."},
		{"missing account", func(ctx context.Context, s domain.Store) error {
			return s.DeleteSubAccount(ctx, "nobody", "bob-1")
		}, domain.ENOTFOUND, `Account "nobody" not found.`},
	})
	must(t, s.DeleteSubAccount(ctx, "bob", "bob-1"))
	subs, err := s.ListSubAccounts(ctx, "bob")
	must(t, err)
	if len(subs) != 0 {
		t.Errorf("ListSubAccounts after delete = %+v, want none", subs)
	}
	wantError(t, s.DeleteSubAccount(ctx, "bob", "bob-1"), domain.ENOTFOUND, "Sub-account not found.")
	// The name is free again and nothing of the old sub-account comes back with it.
	again := mustSub(t, s, "bob", domain.NewSubAccount{Username: "bob-1", PasswordHash: hash})
	if len(again.Proxies) != 0 || len(again.IPs) != 0 {
		t.Errorf("re-created sub-account inherited %v %v", again.Proxies, again.IPs)
	}
	must(t, s.DeleteSubAccount(ctx, "bob", "bob-1"))
	mustAccount(t, s, domain.NewAccount{Username: "bob-1", PasswordHash: hash, Plan: "small"})
}
