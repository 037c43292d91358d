package auth

import (
	"strings"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

func TestNewTokenIsWellFormedAndUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		tok, shown, hash := NewToken()
		if !WellFormedToken(tok) || !strings.HasPrefix(tok, "exm_") || len(tok) != 50 || shown != tok[:12] || hash != TokenHash(tok) {
			t.Fatalf("NewToken = %q %q %q", tok, shown, hash)
		}
		if seen[tok] {
			t.Fatalf("NewToken repeated %q", tok)
		}
		seen[tok] = true
		// Any one character changed breaks the checksum.
		b := []byte(tok)
		i := 4 + int(tok[10])%40
		b[i] = map[bool]byte{true: 'A', false: 'B'}[b[i] != 'A']
		if WellFormedToken(string(b)) {
			t.Fatalf("%q with one character changed is still well formed", b)
		}
	}
	for _, bad := range []string{"", "exm_", "Bearer", strings.Repeat("a", 50), "exm_" + strings.Repeat("!", 46)} {
		if WellFormedToken(bad) {
			t.Errorf("WellFormedToken(%q) = true", bad)
		}
	}
}

func TestViewAuthenticatesTokens(t *testing.T) {
	v := NewView(nil)
	uses := &TokenUses{}
	v.Uses = uses
	s := snapshot(t, "alice-password")
	alice := s.Accounts[0]
	live, _, liveHash := NewToken()
	off, _, offHash := NewToken()
	old, _, oldHash := NewToken()
	s.Tokens = []domain.Token{
		{ID: 1, AccountID: alice.ID, Login: alice.Username, Hash: liveHash, Active: true},
		{ID: 2, AccountID: alice.ID, Login: alice.Username, Hash: offHash, Active: false},
		{ID: 3, AccountID: alice.ID, Login: alice.Username, Hash: oldHash, Active: true, Expires: time.Now().Add(-time.Second)},
	}
	v.Load(s)
	if p, err := v.AuthenticateToken(live); err != nil || p.Login != alice.Username {
		t.Fatalf("the live token: %v %v", p, err)
	}
	for name, tok := range map[string]string{"deactivated": off, "expired": old, "unknown": "exm_" + strings.Repeat("a", 46)} {
		if _, err := v.AuthenticateToken(tok); err != ErrBadCredentials {
			t.Errorf("the %s token: %v, want ErrBadCredentials", name, err)
		}
	}
	v.AuthenticateToken(live) // the same second: one record
	if len(uses.used) != 1 || uses.used[1].IsZero() {
		t.Errorf("uses recorded: %v", uses.used)
	}

	// A delta of the account without the live token takes it out.
	v.applyMu.Lock()
	v.apply(domain.Delta{From: s.Version, To: s.Version + 1, Changes: []domain.Change{{Seq: s.Version + 1, Kind: domain.ChangeAccount, Ref: alice.ID}},
		Accounts: []domain.Account{alice}})
	v.applyMu.Unlock()
	if _, err := v.AuthenticateToken(live); err != ErrBadCredentials {
		t.Errorf("a token its account's delta no longer has: %v", err)
	}
}
