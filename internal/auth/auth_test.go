package auth

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/exitmesh/exitmesh/internal/domain"
)

func mustHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestPasswordHash(t *testing.T) {
	h := mustHash(t, "correct horse")
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") || strings.Contains(h, "correct horse") {
		t.Fatalf("hash = %q", h)
	}
	if h2 := mustHash(t, "correct horse"); h2 == h {
		t.Error("two hashes of one password are equal: salt not random")
	}
	for pw, want := range map[string]bool{"correct horse": true, "correct hors": false, "": false} {
		if ok, err := CheckPassword(h, pw); ok != want || err != nil {
			t.Errorf("CheckPassword(%q) = %v, %v; want %v", pw, ok, err, want)
		}
	}
	for _, bad := range []string{"", "plain", "$argon2id$v=19$m=0,t=2,p=1$AAAA$AAAA", "$argon2i$v=19$m=8,t=1,p=1$AAAA$AAAA", "$argon2id$v=19$m=19456,t=2,p=1$!!$AAAA"} {
		if ok, err := CheckPassword(bad, "x"); ok || err == nil {
			t.Errorf("CheckPassword(%q) = %v, %v; want an error", bad, ok, err)
		}
	}
}

func snapshot(t *testing.T, alicePW string) domain.Snapshot {
	return domain.Snapshot{
		Version: 7,
		Accounts: []domain.Account{
			{ID: 1, Username: "alice", PasswordHash: mustHash(t, alicePW), Proxies: []string{"us-ca", "world"},
				IPs: []netip.Addr{netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("203.0.113.2")}},
			{ID: 2, Username: "bob", PasswordHash: mustHash(t, "bob-password"), Disabled: true, Proxies: []string{"us-ca"}},
		},
		Subs: []domain.SubAccount{
			{ID: 10, AccountID: 1, Username: "alice-scraper", PasswordHash: mustHash(t, "sub-password"), Active: true,
				Proxies: []string{"world"}, IPs: []netip.Addr{netip.MustParseAddr("203.0.113.2")}},
			{ID: 11, AccountID: 1, Username: "alice-old", PasswordHash: mustHash(t, "old-password"), Active: false},
		},
	}
}

func TestViewAuthenticate(t *testing.T) {
	v := NewView(nil)
	ctx := context.Background()
	if _, err := v.Authenticate(ctx, "alice", "alice-password"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("before Load: err = %v, want ErrBadCredentials", err)
	}
	v.Load(snapshot(t, "alice-password"))
	if v.Version() != 7 {
		t.Errorf("Version = %d, want 7", v.Version())
	}
	tests := []struct {
		login, pw     string
		wantErr       bool
		account       string
		sub, disabled bool
		proxy         string
		mayUse        bool
	}{
		{"alice", "alice-password", false, "alice", false, false, "us-ca", true},
		{"alice", "alice-password", false, "alice", false, false, "us-ca", true}, // cached
		{"alice", "wrong-password", true, "", false, false, "", false},
		{"nobody", "alice-password", true, "", false, false, "", false},
		{"bob", "bob-password", false, "bob", false, true, "us-ca", true},
		{"alice-scraper", "sub-password", false, "alice", true, false, "us-ca", false},
		{"alice-scraper", "sub-password", false, "alice", true, false, "world", true},
		{"alice-old", "old-password", false, "alice", true, true, "world", false},
	}
	for _, tt := range tests {
		p, err := v.Authenticate(ctx, tt.login, tt.pw)
		if tt.wantErr {
			if !errors.Is(err, ErrBadCredentials) {
				t.Errorf("%s/%s: err = %v, want ErrBadCredentials", tt.login, tt.pw, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.login, err)
			continue
		}
		if p.Account != tt.account || (p.SubID != 0) != tt.sub || p.Disabled != tt.disabled || p.MayUse(tt.proxy) != tt.mayUse {
			t.Errorf("%s: got %+v, MayUse(%s)=%v", tt.login, p, tt.proxy, p.MayUse(tt.proxy))
		}
	}

	// A password change in the store invalidates the cached old password at once.
	v.Load(snapshot(t, "new-alice-password"))
	if _, err := v.Authenticate(ctx, "alice", "alice-password"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("old password after change: err = %v, want ErrBadCredentials", err)
	}
	if _, err := v.Authenticate(ctx, "alice", "new-alice-password"); err != nil {
		t.Errorf("new password: %v", err)
	}
}

func TestViewByIP(t *testing.T) {
	v := NewView(nil)
	v.Load(snapshot(t, "alice-password"))
	p, ok := v.ByIP(netip.MustParseAddr("203.0.113.1"))
	if !ok || p.Login != "alice" || p.SubID != 0 {
		t.Errorf("203.0.113.1 = %+v, %v; want account alice", p, ok)
	}
	p, ok = v.ByIP(netip.MustParseAddr("::ffff:203.0.113.2"))
	if !ok || p.Login != "alice-scraper" {
		t.Errorf("203.0.113.2 = %+v, %v; want sub-account alice-scraper (its own IP)", p, ok)
	}
	if _, ok := v.ByIP(netip.MustParseAddr("198.51.100.1")); ok {
		t.Error("unknown IP authenticated")
	}
}

func TestViewHostnameAuthorizes(t *testing.T) {
	snap := snapshot(t, "alice-password")
	snap.Accounts[1].Hostnames = []domain.Hostname{
		{Name: "home.bob.example", IP: netip.MustParseAddr("198.51.100.7")},
		{Name: "clash.bob.example", IP: netip.MustParseAddr("203.0.113.1")}, // alice's explicit IP
		{Name: "gone.bob.example"}, // did not resolve
	}
	v := NewView(nil)
	v.Load(snap)
	if p, ok := v.ByIP(netip.MustParseAddr("198.51.100.7")); !ok || p.Login != "bob" {
		t.Errorf("hostname address = %+v, %v; want bob", p, ok)
	}
	if p, ok := v.ByIP(netip.MustParseAddr("203.0.113.1")); !ok || p.Login != "alice" {
		t.Errorf("address that is alice's IP and bob's hostname = %+v; want alice (explicit IP wins)", p)
	}
	if _, ok := v.ByIP(netip.Addr{}); ok {
		t.Error("an unresolved hostname authorized the zero address")
	}
}

// TestViewSubAccountHostnames: an address of an account's hostname that one of its sub-accounts
// holds authenticates as that sub-account; held by two, as the account.
func TestViewSubAccountHostnames(t *testing.T) {
	snap := snapshot(t, "alice-password")
	snap.Accounts[0].Hostnames = []domain.Hostname{
		{Name: "bot.alice.example", IP: netip.MustParseAddr("198.51.100.9")},
		{Name: "shared.alice.example", IP: netip.MustParseAddr("198.51.100.10")},
	}
	snap.Subs[0].Hostnames = []string{"bot.alice.example", "shared.alice.example"}
	snap.Subs[1].Hostnames = []string{"shared.alice.example"}
	v := NewView(nil)
	v.Load(snap)
	if p, ok := v.ByIP(netip.MustParseAddr("198.51.100.9")); !ok || p.Login != "alice-scraper" {
		t.Errorf("the address of alice-scraper's hostname = %+v, %v; want alice-scraper", p, ok)
	}
	if p, ok := v.ByIP(netip.MustParseAddr("198.51.100.10")); !ok || p.Login != "alice" {
		t.Errorf("the address of a hostname two sub-accounts hold = %+v, %v; want alice", p, ok)
	}
}

func TestViewCarriesThePlanBandwidth(t *testing.T) {
	s := snapshot(t, "alice-password")
	s.Plans = []domain.Plan{{Name: "small", MonthlyBandwidth: 10_000}, {Name: "unlimited"}}
	s.Accounts[0].Plan, s.Accounts[1].Plan = "small", "unlimited"
	v := NewView(nil)
	v.Load(s)
	for _, tt := range []struct {
		ip, login string
		want      int64
	}{
		{"203.0.113.1", "alice", 10_000},
		{"203.0.113.2", "alice-scraper", 10_000}, // a sub-account has its account's plan
	} {
		p, ok := v.ByIP(netip.MustParseAddr(tt.ip))
		if !ok || p.Login != tt.login || p.Bandwidth() != tt.want {
			t.Errorf("%s: %+v, %v; want %s with bandwidth %d", tt.ip, p, ok, tt.login, tt.want)
		}
	}
	if p, err := v.Authenticate(t.Context(), "bob", "bob-password"); err != nil || p.Bandwidth() != 0 {
		t.Errorf("bob: %+v, %v; want bandwidth 0 (unlimited)", p, err)
	}
}

// TestViewCurrent: a principal handed out before its account changed leads to the one that replaced it.
func TestViewCurrent(t *testing.T) {
	snap := snapshot(t, "alice-password")
	v := NewView(nil)
	v.Load(snap)
	old, ok := v.ByIP(netip.MustParseAddr("203.0.113.1"))
	if !ok {
		t.Fatal("alice's IP not found")
	}
	snap.Accounts[0].MonthlyLimit = 5e9
	snap.Version++
	v.Load(snap)
	if cur := v.Current(old); cur == old || cur.AccountLimits.MonthlyLimit != 5e9 {
		t.Errorf("Current = %+v, want the principal with the new limit", cur)
	}
	gone := &Principal{Login: "nobody"}
	if v.Current(gone) != gone {
		t.Error("Current of a login the view does not hold is not itself")
	}
}
