package storetest

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := domain.ErrorCode(err); got != code {
		t.Errorf("%s: %v (%q), want %q", what, err, got, code)
	}
}

func mustToken(t *testing.T, s domain.Store, account string, n domain.NewToken) domain.Token {
	t.Helper()
	tok, err := s.CreateToken(t.Context(), account, n)
	must(t, err)
	return tok
}

func tokenIDs(ts []domain.Token) []int64 {
	ids := make([]int64, len(ts))
	for i, t := range ts {
		ids[i] = t.ID
	}
	return ids
}

func testTokens(t *testing.T, s domain.Store) {
	ctx := t.Context()
	alice, _ := seed(t, s)
	sub := mustSub(t, s, "alice", domain.NewSubAccount{Username: "alice.bot", PasswordHash: hash})
	expires := time.Now().Add(48 * time.Hour).Truncate(time.Second).UTC()

	before := version(t, s)
	t1 := mustToken(t, s, "alice", domain.NewToken{Label: "laptop", Prefix: "exm_aaaa", Hash: "h1", Expires: expires})
	want := domain.Token{ID: t1.ID, AccountID: alice.ID, Login: "alice", Label: "laptop", Prefix: "exm_aaaa", Hash: "h1",
		Created: t1.Created, Expires: expires, Active: true}
	if t1.ID == 0 || t1.Created.IsZero() || !reflect.DeepEqual(t1, want) {
		t.Errorf("CreateToken =\n%+v, want\n%+v", t1, want)
	}
	if version(t, s) == before {
		t.Error("CreateToken did not change the version: nodes would not learn of the token")
	}
	d, err := s.ChangesSince(ctx, before, 100)
	must(t, err)
	if ids := tokenIDs(d.Tokens); !slices.Equal(ids, []int64{t1.ID}) {
		t.Errorf("the delta of CreateToken carries tokens %v, want [%d]", ids, t1.ID)
	}
	t2 := mustToken(t, s, "alice", domain.NewToken{Sub: "alice.bot", Prefix: "exm_bbbb", Hash: "h2"})
	if t2.Login != "alice.bot" || t2.SubID != sub.ID || !t2.Expires.IsZero() {
		t.Errorf("a sub-account's token: %+v", t2)
	}
	_, err = s.CreateToken(ctx, "alice", domain.NewToken{Prefix: "exm_cccc", Hash: "h3"})
	wantCode(t, "a third active token on a plan of two", err, domain.ELIMIT)
	_, err = s.CreateToken(ctx, "alice", domain.NewToken{Sub: "bob", Prefix: "exm_cccc", Hash: "h3"})
	wantCode(t, "a token for another account", err, domain.ENOTFOUND)

	off, err := s.SetTokenActive(ctx, "alice", t1.ID, false)
	must(t, err)
	if off.Active {
		t.Error("SetTokenActive(false) answered an active token")
	}
	t3 := mustToken(t, s, "alice", domain.NewToken{Prefix: "exm_cccc", Hash: "h3"}) // room again
	_, err = s.SetTokenActive(ctx, "alice", t1.ID, true)
	wantCode(t, "activating beyond the limit", err, domain.ELIMIT)

	list, err := s.ListTokens(ctx, "alice", "")
	must(t, err)
	if !slices.Equal(tokenIDs(list), []int64{t1.ID, t3.ID}) {
		t.Errorf("ListTokens(alice) = %v, want [%d %d]", tokenIDs(list), t1.ID, t3.ID)
	}
	list, err = s.ListTokens(ctx, "alice", "alice.bot")
	must(t, err)
	if !slices.Equal(tokenIDs(list), []int64{t2.ID}) {
		t.Errorf("ListTokens(alice.bot) = %v, want [%d]", tokenIDs(list), t2.ID)
	}
	if list, err := s.ListTokens(ctx, "bob", ""); err != nil || list == nil || len(list) != 0 {
		t.Errorf("ListTokens(bob) = %#v %v, want an empty, non-nil list", list, err)
	}

	for what, err := range map[string]error{
		"GetToken of another's":  func() error { _, err := s.GetToken(ctx, "bob", t1.ID); return err }(),
		"SetTokenActive":         func() error { _, err := s.SetTokenActive(ctx, "bob", t1.ID, false); return err }(),
		"DeleteToken":            s.DeleteToken(ctx, "bob", t1.ID),
		"GetToken of an unknown": func() error { _, err := s.GetToken(ctx, "alice", 987654); return err }(),
		"FindToken":              func() error { _, err := s.FindToken(ctx, "nope"); return err }(),
	} {
		wantCode(t, what, err, domain.ENOTFOUND)
	}
	found, err := s.FindToken(ctx, "h2")
	must(t, err)
	if found.ID != t2.ID || found.Login != "alice.bot" || found.AccountID != alice.ID {
		t.Errorf("FindToken(h2) = %+v", found)
	}

	v := version(t, s)
	used := time.Now().Add(-time.Minute).Truncate(time.Second).UTC()
	must(t, s.TouchTokens(ctx, map[int64]time.Time{t2.ID: used}))
	must(t, s.TouchTokens(ctx, map[int64]time.Time{t2.ID: used.Add(-time.Hour)})) // late report of an older use
	if got, _ := s.GetToken(ctx, "alice", t2.ID); !got.LastUsed.Equal(used) {
		t.Errorf("LastUsed = %v, want %v", got.LastUsed, used)
	}
	if version(t, s) != v {
		t.Error("TouchTokens changed the version: every use would wake every node")
	}

	snap, err := s.Snapshot(ctx)
	must(t, err)
	if !slices.Equal(tokenIDs(snap.Tokens), []int64{t1.ID, t2.ID, t3.ID}) {
		t.Errorf("Snapshot tokens %v", tokenIDs(snap.Tokens))
	}
	must(t, s.DeleteToken(ctx, "alice", t1.ID))
	must(t, s.DeleteSubAccount(ctx, "alice", "alice.bot"))
	snap, err = s.Snapshot(ctx)
	must(t, err)
	if !slices.Equal(tokenIDs(snap.Tokens), []int64{t3.ID}) {
		t.Errorf("after deleting a token and a sub-account, the snapshot holds tokens %v, want [%d]", tokenIDs(snap.Tokens), t3.ID)
	}
}

// testTokensFollowThePlan: moving an account to a plan with room for fewer tokens deactivates its
// newest active tokens beyond the limit.
func testTokensFollowThePlan(t *testing.T, s domain.Store) {
	ctx := t.Context()
	seed(t, s)
	var ids []int64
	for _, h := range []string{"b1", "b2", "b3", "b4"} {
		ids = append(ids, mustToken(t, s, "bob", domain.NewToken{Prefix: "exm_" + h, Hash: h}).ID)
	}
	_, err := s.SetTokenActive(ctx, "bob", ids[0], false)
	must(t, err)
	plan := "small" // 2 tokens: b2 and b3 stay active, b4 (the newest) is deactivated
	_, err = s.UpdateAccount(ctx, "bob", domain.AccountUpdate{Plan: &plan})
	must(t, err)
	list, err := s.ListTokens(ctx, "bob", "")
	must(t, err)
	var active []int64
	for _, tok := range list {
		if tok.Active {
			active = append(active, tok.ID)
		}
	}
	if !slices.Equal(active, ids[1:3]) {
		t.Errorf("active after the move: %v, want %v", active, ids[1:3])
	}
}
