package storetest

import (
	"context"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

func testCreateAccount(t *testing.T, s domain.Store) {
	seed(t, s)
	before := time.Now().Truncate(time.Second)
	got := mustAccount(t, s, domain.NewAccount{Username: "carol@example.org", PasswordHash: hash, Plan: "big",
		Proxies: []string{"us-ca", "de", "us-ca"},
		IPs:     []netip.Addr{ip("::ffff:203.0.113.9"), ip("2001:db8::1"), ip("203.0.113.2")}})
	after := time.Now()
	if got.ID == 0 || got.CreatedAt.Before(before) || got.CreatedAt.After(after) {
		t.Errorf("ID = %d, CreatedAt = %v; want an id and a time in [%v, %v]", got.ID, got.CreatedAt, before, after)
	}
	want := domain.Account{ID: got.ID, Username: "carol@example.org", PasswordHash: hash, Plan: "big",
		CreatedAt: got.CreatedAt, Proxies: []string{"de", "us-ca"},
		IPs: []netip.Addr{ip("203.0.113.2"), ip("203.0.113.9"), ip("2001:db8::1")}, Hostnames: []domain.Hostname{}, BillingDay: 1}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("CreateAccount =\n%+v, want\n%+v", got, want)
	}
	if g := mustGet(t, s, "carol@example.org"); !reflect.DeepEqual(g, got) {
		t.Errorf("GetAccount =\n%+v, want what CreateAccount returned\n%+v", g, got)
	}
	// A bare account.
	dave := mustAccount(t, s, domain.NewAccount{Username: "dave", PasswordHash: hash, Plan: "small"})
	if len(dave.Proxies) != 0 || len(dave.IPs) != 0 || dave.Confirmed {
		t.Errorf("bare account = %+v, want no proxies, no IPs, unconfirmed", dave)
	}
}

func testCreateAccountErrors(t *testing.T, s domain.Store) {
	seed(t, s)
	mustSub(t, s, "bob", domain.NewSubAccount{Username: "bob-one", PasswordHash: hash})
	create := func(a domain.NewAccount) func(context.Context, domain.Store) error {
		return func(ctx context.Context, s domain.Store) error {
			if a.PasswordHash == "-" {
				a.PasswordHash = ""
			} else {
				a.PasswordHash = hash
			}
			if a.Plan == "" {
				a.Plan = "small"
			}
			_, err := s.CreateAccount(ctx, a)
			return err
		}
	}
	runErrCases(t, s, []errCase{
		{"invalid username", create(domain.NewAccount{Username: "-carol"}), domain.EINVALID, "Username"},
		{"empty username", create(domain.NewAccount{}), domain.EINVALID, "Username"},
		{"steering word in username", create(domain.NewAccount{Username: "carol-session-x"}), domain.EINVALID, "-session-"},
		{"empty password hash", create(domain.NewAccount{Username: "carol", PasswordHash: "-"}), domain.EINVALID, "Password"},
		{"unknown plan", create(domain.NewAccount{Username: "carol", Plan: "gold"}), domain.EINVALID, `Unknown plan "gold".`},
		{"unknown proxy", create(domain.NewAccount{Username: "carol", Proxies: []string{"us-ca", "mars"}}),
			domain.EINVALID, `"mars"`},
		{"invalid IP", create(domain.NewAccount{Username: "carol", IPs: []netip.Addr{{}}}), domain.EINVALID, "IP address"},
		{"unspecified IP", create(domain.NewAccount{Username: "carol", IPs: []netip.Addr{ip("0.0.0.0")}}),
			domain.EINVALID, "0.0.0.0"},
		{"username of an account", create(domain.NewAccount{Username: "alice"}), domain.ECONFLICT, "Username is already taken."},
		{"username of a sub-account", create(domain.NewAccount{Username: "bob-one"}), domain.ECONFLICT, "Username is already taken."},
		{"too many proxies", create(domain.NewAccount{Username: "carol", Proxies: []string{"us-ca", "de", "fr"}}),
			domain.ELIMIT, `Your plan "small" allows 2 proxy servers; upgrade your plan to add more.`},
		{"too many IPs", create(domain.NewAccount{Username: "carol",
			IPs: []netip.Addr{ip("203.0.113.1"), ip("203.0.113.2"), ip("203.0.113.3")}}),
			domain.ELIMIT, `Your plan "small" allows 2 IP addresses; upgrade`},
		{"IP of another account", create(domain.NewAccount{Username: "carol", IPs: []netip.Addr{ip("::ffff:192.0.2.1")}}),
			domain.ECONFLICT, "already authorized"},
	})
	// None of the failures left anything behind: the name is still free.
	mustAccount(t, s, domain.NewAccount{Username: "carol", PasswordHash: hash, Plan: "small"})
}

func testGetListAccounts(t *testing.T, s domain.Store) {
	ctx := t.Context()
	page, err := s.ListAccounts(ctx, domain.AccountQuery{})
	must(t, err)
	if page.Accounts == nil || len(page.Accounts) != 0 || page.Next != "" {
		t.Fatalf("ListAccounts on an empty store = %#v, want an empty, non-nil list", page)
	}
	alice, bob := seed(t, s)
	mustAccount(t, s, domain.NewAccount{Username: "Zed", PasswordHash: hash, Plan: "big"})
	zed := mustGet(t, s, "Zed")
	mustAccount(t, s, domain.NewAccount{Username: "bobby", PasswordHash: hash, Plan: "big"})
	bobby := mustGet(t, s, "bobby")
	mustSub(t, s, "bob", domain.NewSubAccount{Username: "bob-x", PasswordHash: hash})
	for _, tt := range []struct {
		q    domain.AccountQuery
		want []domain.Account
		next string
	}{
		{domain.AccountQuery{}, []domain.Account{alice, bob, bobby, zed}, ""}, // case ignored: Zed last
		{domain.AccountQuery{Limit: 2}, []domain.Account{alice, bob}, "bob"},
		{domain.AccountQuery{Limit: 2, After: "bob"}, []domain.Account{bobby, zed}, ""},
		{domain.AccountQuery{Prefix: "bob"}, []domain.Account{bob, bobby}, ""},
		{domain.AccountQuery{Prefix: "BOB", Limit: 1}, []domain.Account{bob}, "bob"},
		{domain.AccountQuery{Prefix: "bob", After: "bob"}, []domain.Account{bobby}, ""},
		{domain.AccountQuery{Prefix: "b", After: "alice"}, []domain.Account{bob, bobby}, ""},
		{domain.AccountQuery{Prefix: "z"}, []domain.Account{zed}, ""},
		{domain.AccountQuery{Prefix: "bob-"}, []domain.Account{}, ""}, // sub-accounts are not accounts
		{domain.AccountQuery{Prefix: "zz"}, []domain.Account{}, ""},
	} {
		page, err := s.ListAccounts(ctx, tt.q)
		must(t, err)
		if !reflect.DeepEqual(page.Accounts, tt.want) || page.Next != tt.next {
			t.Errorf("ListAccounts(%+v) =\n%+v next %q, want\n%+v next %q", tt.q, page.Accounts, page.Next, tt.want, tt.next)
		}
	}
	counts, err := s.CountAccountsByPlan(ctx)
	must(t, err)
	if want := map[string]int{"small": 1, "big": 3}; !reflect.DeepEqual(counts, want) {
		t.Errorf("CountAccountsByPlan = %v, want %v", counts, want)
	}
	runErrCases(t, s, []errCase{
		{"GetAccount missing", func(ctx context.Context, s domain.Store) error {
			_, err := s.GetAccount(ctx, "nobody")
			return err
		}, domain.ENOTFOUND, `Account "nobody" not found.`},
		{"GetAccount of a sub-account name", func(ctx context.Context, s domain.Store) error {
			_, err := s.GetAccount(ctx, "bob-x")
			return err
		}, domain.ENOTFOUND, `Account "bob-x" not found.`},
	})
}

func testUpdateAccount(t *testing.T, s domain.Store) {
	ctx := t.Context()
	alice, _ := seed(t, s)
	newHash, plan, yes := "$argon2id$new", "big", true
	v := version(t, s)
	got, err := s.UpdateAccount(ctx, "alice", domain.AccountUpdate{PasswordHash: &newHash, Plan: &plan, Disabled: &yes})
	must(t, err)
	want := alice
	want.PasswordHash, want.Plan, want.Disabled = newHash, "big", true
	if !reflect.DeepEqual(got, want) {
		t.Errorf("UpdateAccount =\n%+v, want\n%+v", got, want)
	}
	if g := mustGet(t, s, "alice"); !reflect.DeepEqual(g, want) {
		t.Errorf("GetAccount after update =\n%+v, want\n%+v", g, want)
	}
	if got := version(t, s); got != v+1 {
		t.Errorf("version after UpdateAccount = %d, want %d", got, v+1)
	}
	no := false
	got, err = s.UpdateAccount(ctx, "alice", domain.AccountUpdate{Confirmed: &no, Disabled: &no})
	must(t, err)
	if got.Confirmed || got.Disabled {
		t.Errorf("after confirmed=false disabled=false: %+v", got)
	}
	// An empty update returns the account and changes nothing.
	v = version(t, s)
	got, err = s.UpdateAccount(ctx, "alice", domain.AccountUpdate{})
	must(t, err)
	if got.Username != "alice" || version(t, s) != v {
		t.Errorf("empty update = %+v, version %d; want alice unchanged at version %d", got, version(t, s), v)
	}

	empty, gold, other := "", "gold", "$argon2id$other"
	runErrCases(t, s, []errCase{
		{"missing account", func(ctx context.Context, s domain.Store) error {
			_, err := s.UpdateAccount(ctx, "nobody", domain.AccountUpdate{Disabled: &yes})
			return err
		}, domain.ENOTFOUND, `Account "nobody" not found.`},
		{"unknown plan", func(ctx context.Context, s domain.Store) error {
			_, err := s.UpdateAccount(ctx, "alice", domain.AccountUpdate{PasswordHash: &other, Plan: &gold, Disabled: &yes})
			return err
		}, domain.EINVALID, `Unknown plan "gold".`},
		{"empty password hash", func(ctx context.Context, s domain.Store) error {
			_, err := s.UpdateAccount(ctx, "alice", domain.AccountUpdate{PasswordHash: &empty})
			return err
		}, domain.EINVALID, "Password"},
	})
	if g := mustGet(t, s, "alice"); g.Disabled || g.PasswordHash != newHash {
		t.Errorf("a failed update was partly applied: %+v", g)
	}
}

// testPlanDowngrade: moving to a smaller plan keeps what the account has and refuses additions.
func testPlanDowngrade(t *testing.T, s domain.Store) {
	ctx := t.Context()
	seed(t, s)
	must(t, s.AuthorizeProxy(ctx, "bob", "fr"))
	for _, a := range []string{"198.51.100.2", "198.51.100.3"} {
		must(t, s.AddIP(ctx, "bob", ip(a)))
	}
	mustSub(t, s, "bob", domain.NewSubAccount{Username: "bob-1", PasswordHash: hash})
	mustSub(t, s, "bob", domain.NewSubAccount{Username: "bob-2", PasswordHash: hash})
	plan := "small"
	got, err := s.UpdateAccount(ctx, "bob", domain.AccountUpdate{Plan: &plan})
	must(t, err)
	if got.Plan != "small" || len(got.Proxies) != 3 || len(got.IPs) != 3 {
		t.Errorf("after downgrade: %+v; want plan small with 3 proxies and 3 IPs kept", got)
	}
	runErrCases(t, s, []errCase{
		{"AuthorizeProxy", func(ctx context.Context, s domain.Store) error {
			return s.AuthorizeProxy(ctx, "bob", "world")
		}, domain.ELIMIT, `Your plan "small" allows 2 proxy servers`},
		{"AddIP", func(ctx context.Context, s domain.Store) error {
			return s.AddIP(ctx, "bob", ip("198.51.100.9"))
		}, domain.ELIMIT, `Your plan "small" allows 2 IP addresses`},
		{"CreateSubAccount", func(ctx context.Context, s domain.Store) error {
			_, err := s.CreateSubAccount(ctx, "bob", domain.NewSubAccount{Username: "bob-3", PasswordHash: hash})
			return err
		}, domain.ELIMIT, `Your plan "small" allows 1 sub-account; upgrade your plan to add more.`},
	})
}
