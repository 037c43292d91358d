package storetest

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/exitmesh/exitmesh/internal/domain"
)

func testSnapshot(t *testing.T, s domain.Store) {
	ctx := t.Context()
	empty, err := s.Snapshot(ctx)
	must(t, err)
	if empty.Plans == nil || empty.Accounts == nil || empty.Subs == nil || len(empty.Accounts) != 0 {
		t.Errorf("Snapshot of an empty store = %#v, want empty, non-nil lists", empty)
	}
	seed(t, s)
	mustSub(t, s, "bob", domain.NewSubAccount{Username: "bob-z", PasswordHash: hash, Proxies: []string{"de"}})
	mustSub(t, s, "alice", domain.NewSubAccount{Username: "alice-1", PasswordHash: hash, IPs: []netip.Addr{ip("192.0.2.1")}})
	mustSub(t, s, "bob", domain.NewSubAccount{Username: "bob-a", PasswordHash: hash})

	snap, err := s.Snapshot(ctx)
	must(t, err)
	if v := version(t, s); snap.Version != v || v <= empty.Version {
		t.Errorf("Snapshot.Version = %d, Version() = %d, empty store's = %d", snap.Version, v, empty.Version)
	}
	plans, err := s.ListPlans(ctx)
	must(t, err)
	page, err := s.ListAccounts(ctx, domain.AccountQuery{})
	must(t, err)
	accounts := page.Accounts
	var subs []domain.SubAccount
	for _, a := range []string{"alice", "bob"} {
		ss, err := s.ListSubAccounts(ctx, a)
		must(t, err)
		subs = append(subs, ss...)
	}
	if !reflect.DeepEqual(snap.Plans, plans) {
		t.Errorf("Snapshot.Plans = %+v, want %+v", snap.Plans, plans)
	}
	// A snapshot comes in no particular order; the lists above are sorted by username.
	slices.SortFunc(snap.Accounts, func(x, y domain.Account) int { return strings.Compare(x.Username, y.Username) })
	slices.SortFunc(snap.Subs, func(x, y domain.SubAccount) int { return strings.Compare(x.Username, y.Username) })
	if !reflect.DeepEqual(snap.Accounts, accounts) {
		t.Errorf("Snapshot.Accounts =\n%+v, want\n%+v", snap.Accounts, accounts)
	}
	if !reflect.DeepEqual(snap.Subs, subs) {
		t.Errorf("Snapshot.Subs =\n%+v, want\n%+v", snap.Subs, subs)
	}
}

// testVersionPerChange: every successful change increments the version by exactly one.
func testVersionPerChange(t *testing.T, s domain.Store) {
	ctx := t.Context()
	yes, pw, plan := true, "$argon2id$x", "big"
	proxies, ips := []string{"de"}, []netip.Addr{ip("203.0.113.5")}
	changes := []struct {
		name string
		call func() error
	}{
		{"CreatePlan", func() error { return s.CreatePlan(ctx, small) }},
		{"PutPlan", func() error { return s.PutPlan(ctx, big) }},
		{"UpdatePlan", func() error {
			return s.UpdatePlan(ctx, domain.Plan{Name: "big", MaxProxies: 5, MaxSubs: 5, MaxIPs: 5, MaxHostnames: 5})
		}},
		{"PutProxyServer", func() error { return s.PutProxyServer(ctx, proxyServers[1]) }},
		{"CreateAccount", func() error {
			_, err := s.CreateAccount(ctx, domain.NewAccount{Username: "v", PasswordHash: hash, Plan: "small"})
			return err
		}},
		{"UpdateAccount", func() error {
			_, err := s.UpdateAccount(ctx, "v", domain.AccountUpdate{Plan: &plan, Confirmed: &yes})
			return err
		}},
		{"AuthorizeProxy", func() error { return s.AuthorizeProxy(ctx, "v", "de") }},
		{"AddIP", func() error { return s.AddIP(ctx, "v", ips[0]) }},
		{"AddHostname", func() error { return s.AddHostname(ctx, "v", "v.example.org", netip.Addr{}) }},
		{"SetHostnameIP", func() error { return s.SetHostnameIP(ctx, "v", "v.example.org", ips[0]) }},
		{"CreateSubAccount", func() error {
			_, err := s.CreateSubAccount(ctx, "v", domain.NewSubAccount{Username: "v-1", PasswordHash: hash})
			return err
		}},
		{"UpdateSubAccount", func() error {
			_, err := s.UpdateSubAccount(ctx, "v", "v-1", domain.SubAccountUpdate{PasswordHash: &pw, Proxies: &proxies, IPs: &ips})
			return err
		}},
		{"RevokeProxy", func() error { return s.RevokeProxy(ctx, "v", "de") }},
		{"RemoveIP", func() error { return s.RemoveIP(ctx, "v", ips[0]) }},
		{"DeleteSubAccount", func() error { return s.DeleteSubAccount(ctx, "v", "v-1") }},
		{"RemoveHostname", func() error { return s.RemoveHostname(ctx, "v", "v.example.org") }},
	}
	for _, c := range changes {
		before := version(t, s)
		if err := c.call(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := version(t, s); got != before+1 {
			t.Errorf("version after %s = %d, want %d", c.name, got, before+1)
		}
	}
}

// testConcurrentLimits: limits and the username namespace hold under concurrent changes.
func testConcurrentLimits(t *testing.T, s domain.Store) {
	ctx := t.Context()
	seed(t, s)
	const n = 12
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = s.AddIP(ctx, "alice", ip(fmt.Sprintf("203.0.113.%d", i+1))) })
	}
	wg.Wait()
	if got := countCodes(errs); got[""] != small.MaxIPs-1 || got[domain.ELIMIT] != n-small.MaxIPs+1 {
		t.Errorf("concurrent AddIP results by code = %v, want %d successes and the rest %s",
			got, small.MaxIPs-1, domain.ELIMIT)
	}
	for i := range n {
		wg.Go(func() { errs[i] = s.AddHostname(ctx, "alice", fmt.Sprintf("h%d.example.org", i), ip("203.0.113.1")) })
	}
	wg.Wait()
	if got := countCodes(errs); got[""] != small.MaxHostnames || got[domain.ELIMIT] != n-small.MaxHostnames {
		t.Errorf("concurrent AddHostname results by code = %v, want %d successes and the rest %s",
			got, small.MaxHostnames, domain.ELIMIT)
	}
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.CreateAccount(ctx, domain.NewAccount{Username: "race", PasswordHash: hash, Plan: "small"})
		})
	}
	wg.Wait()
	if got := countCodes(errs); got[""] != 1 || got[domain.ECONFLICT] != n-1 {
		t.Errorf("concurrent CreateAccount results by code = %v, want 1 success and the rest %s", got, domain.ECONFLICT)
	}
	if got := len(mustGet(t, s, "alice").IPs); got != small.MaxIPs {
		t.Errorf("alice has %d IPs, want the limit %d", got, small.MaxIPs)
	}
}

func countCodes(errs []error) map[string]int {
	m := map[string]int{}
	for _, err := range errs {
		m[domain.ErrorCode(err)]++
	}
	return m
}
