package storetest

import (
	"context"
	"net/netip"
	"reflect"
	"testing"

	"github.com/exitmesh/exitmesh/internal/domain"
)

func testAuthorizeRevokeProxy(t *testing.T, s domain.Store) {
	ctx := t.Context()
	seed(t, s)
	must(t, s.AuthorizeProxy(ctx, "alice", "de"))
	if got, want := mustGet(t, s, "alice").Proxies, []string{"de", "us-ca"}; !reflect.DeepEqual(got, want) {
		t.Errorf("alice's proxies = %v, want %v", got, want)
	}
	runErrCases(t, s, []errCase{
		{"authorize over the limit", func(ctx context.Context, s domain.Store) error {
			return s.AuthorizeProxy(ctx, "alice", "fr")
		}, domain.ELIMIT, `Your plan "small" allows 2 proxy servers; upgrade your plan to add more.`},
		{"authorize twice", func(ctx context.Context, s domain.Store) error {
			return s.AuthorizeProxy(ctx, "alice", "de")
		}, domain.ECONFLICT, "Proxy server is already authorized."},
		{"authorize unknown proxy", func(ctx context.Context, s domain.Store) error {
			return s.AuthorizeProxy(ctx, "bob", "mars")
		}, domain.EINVALID, `"mars"`},
		{"authorize for missing account", func(ctx context.Context, s domain.Store) error {
			return s.AuthorizeProxy(ctx, "nobody", "de")
		}, domain.ENOTFOUND, `Account "nobody" not found.`},
		{"revoke one not on the account", func(ctx context.Context, s domain.Store) error {
			return s.RevokeProxy(ctx, "alice", "fr")
		}, domain.EINVALID, `"fr"`},
		{"revoke unknown proxy", func(ctx context.Context, s domain.Store) error {
			return s.RevokeProxy(ctx, "alice", "mars")
		}, domain.EINVALID, `"mars"`},
		{"revoke for missing account", func(ctx context.Context, s domain.Store) error {
			return s.RevokeProxy(ctx, "nobody", "de")
		}, domain.ENOTFOUND, `Account "nobody" not found.`},
	})

	// Revoking from the account revokes from its sub-accounts, and only this account's.
	mustSub(t, s, "alice", domain.NewSubAccount{Username: "alice-1", PasswordHash: hash, Proxies: []string{"de", "us-ca"}})
	mustSub(t, s, "bob", domain.NewSubAccount{Username: "bob-1", PasswordHash: hash, Proxies: []string{"de"}})
	must(t, s.RevokeProxy(ctx, "alice", "de"))
	if got, want := mustGet(t, s, "alice").Proxies, []string{"us-ca"}; !reflect.DeepEqual(got, want) {
		t.Errorf("alice's proxies after revoke = %v, want %v", got, want)
	}
	wantSubProxies(t, s, "alice", []string{"us-ca"})
	wantSubProxies(t, s, "bob", []string{"de"})
	// The freed slot can be used again.
	must(t, s.AuthorizeProxy(ctx, "alice", "fr"))
}

func wantSubProxies(t *testing.T, s domain.Store, account string, want []string) {
	t.Helper()
	subs, err := s.ListSubAccounts(t.Context(), account)
	must(t, err)
	if len(subs) != 1 || !reflect.DeepEqual(subs[0].Proxies, want) {
		t.Errorf("sub-accounts of %s = %+v, want one with proxies %v", account, subs, want)
	}
}

func testAddRemoveIP(t *testing.T, s domain.Store) {
	ctx := t.Context()
	seed(t, s)
	must(t, s.AddIP(ctx, "alice", ip("::ffff:192.0.2.7"))) // stored unmapped
	want := []netip.Addr{ip("192.0.2.1"), ip("192.0.2.7")}
	if got := mustGet(t, s, "alice").IPs; !reflect.DeepEqual(got, want) {
		t.Errorf("alice's IPs = %v, want %v", got, want)
	}
	runErrCases(t, s, []errCase{
		{"add twice", func(ctx context.Context, s domain.Store) error {
			return s.AddIP(ctx, "alice", ip("192.0.2.7"))
		}, domain.ECONFLICT, "IP address is already authorized."},
		{"add mapped form of one authorized", func(ctx context.Context, s domain.Store) error {
			return s.AddIP(ctx, "bob", ip("::ffff:192.0.2.1"))
		}, domain.ECONFLICT, "IP address is already authorized."},
		{"add over the limit", func(ctx context.Context, s domain.Store) error {
			return s.AddIP(ctx, "alice", ip("192.0.2.8"))
		}, domain.ELIMIT, `Your plan "small" allows 2 IP addresses; upgrade your plan to add more.`},
		{"add invalid", func(ctx context.Context, s domain.Store) error {
			return s.AddIP(ctx, "bob", netip.Addr{})
		}, domain.EINVALID, "Invalid IP address."},
		{"add unspecified", func(ctx context.Context, s domain.Store) error {
			return s.AddIP(ctx, "bob", ip("::"))
		}, domain.EINVALID, "cannot be authorized"},
		{"add for missing account", func(ctx context.Context, s domain.Store) error {
			return s.AddIP(ctx, "nobody", ip("192.0.2.9"))
		}, domain.ENOTFOUND, `Account "nobody" not found.`},
		{"remove one not authorized", func(ctx context.Context, s domain.Store) error {
			return s.RemoveIP(ctx, "alice", ip("192.0.2.9"))
		}, domain.EINVALID, "IP address is not authorized."},
		{"remove another account's", func(ctx context.Context, s domain.Store) error {
			return s.RemoveIP(ctx, "alice", ip("198.51.100.1"))
		}, domain.EINVALID, "IP address is not authorized."},
		{"remove invalid", func(ctx context.Context, s domain.Store) error {
			return s.RemoveIP(ctx, "alice", netip.Addr{})
		}, domain.EINVALID, "Invalid IP address."},
		{"remove for missing account", func(ctx context.Context, s domain.Store) error {
			return s.RemoveIP(ctx, "nobody", ip("192.0.2.1"))
		}, domain.ENOTFOUND, `Account "nobody" not found.`},
	})

	// Removing from the account removes from its sub-accounts; the address is then free for others.
	mustSub(t, s, "alice", domain.NewSubAccount{Username: "alice-1", PasswordHash: hash, IPs: want})
	must(t, s.RemoveIP(ctx, "alice", ip("::ffff:192.0.2.7")))
	subs, err := s.ListSubAccounts(ctx, "alice")
	must(t, err)
	if got := subs[0].IPs; !reflect.DeepEqual(got, []netip.Addr{ip("192.0.2.1")}) {
		t.Errorf("sub-account IPs after RemoveIP = %v, want [192.0.2.1]", got)
	}
	must(t, s.AddIP(ctx, "bob", ip("192.0.2.7")))
	must(t, s.AddIP(ctx, "bob", ip("2001:db8::7")))
	want = []netip.Addr{ip("192.0.2.7"), ip("198.51.100.1"), ip("2001:db8::7")}
	if got := mustGet(t, s, "bob").IPs; !reflect.DeepEqual(got, want) {
		t.Errorf("bob's IPs = %v, want %v", got, want)
	}
}
