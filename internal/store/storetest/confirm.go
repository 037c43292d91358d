package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// testConfirmTokens covers email confirmation links: created without moving the version, used once
// to confirm the account (which moves it), refused when unknown, used or expired, and forgotten
// domain.ConfirmTokenKept after they expire.
func testConfirmTokens(t *testing.T, s domain.Store) {
	ctx := t.Context()
	seed(t, s)
	now := time.Now().UTC().Truncate(time.Second)
	mustAccount(t, s, domain.NewAccount{Username: "carol@example.com", PasswordHash: hash, Plan: "small", Proxies: []string{"us-ca"}})
	v := version(t, s)
	must(t, s.CreateConfirmToken(ctx, domain.ConfirmToken{ID: "live", Username: "carol@example.com", Expires: now.Add(time.Hour)}))
	must(t, s.CreateConfirmToken(ctx, domain.ConfirmToken{ID: "expired", Username: "carol@example.com", Expires: now.Add(-time.Second)}))
	if got := version(t, s); got != v {
		t.Errorf("creating links moved the version %d → %d", v, got)
	}
	if err := s.CreateConfirmToken(ctx, domain.ConfirmToken{ID: "live", Username: "carol@example.com", Expires: now.Add(time.Hour)}); err == nil {
		t.Error("a second link with the same id was accepted")
	}

	runErrCases(t, s, []errCase{
		{"link for an unknown account", func(ctx context.Context, s domain.Store) error {
			return s.CreateConfirmToken(ctx, domain.ConfirmToken{ID: "x", Username: "nobody", Expires: now.Add(time.Hour)})
		}, domain.ENOTFOUND, `"nobody" not found`},
		{"link without an id", func(ctx context.Context, s domain.Store) error {
			return s.CreateConfirmToken(ctx, domain.ConfirmToken{Username: "carol@example.com", Expires: now.Add(time.Hour)})
		}, domain.EINVALID, "needs an id"},
		{"unknown link", confirm("nope"), domain.ENOTFOUND, "This confirmation link is not valid."},
		{"expired link", confirm("expired"), domain.EINVALID, "This confirmation link has expired."},
	})
	if mustGet(t, s, "carol@example.com").Confirmed {
		t.Fatal("refused links confirmed the account")
	}

	acc, err := s.ConfirmAccount(ctx, "live")
	if err != nil || acc.Username != "carol@example.com" || !acc.Confirmed || len(acc.Proxies) != 1 {
		t.Fatalf("ConfirmAccount(live) = %+v, %v; want carol, confirmed, with her proxy", acc, err)
	}
	if !mustGet(t, s, "carol@example.com").Confirmed {
		t.Error("the stored account is not confirmed")
	}
	if got := version(t, s); got <= v {
		t.Errorf("confirming left the version at %d", got)
	}
	runErrCases(t, s, []errCase{
		{"used link", confirm("live"), domain.ECONFLICT, "This confirmation link has already been used."},
	})

	// A link expired for longer than ConfirmTokenKept is forgotten when the next one is created.
	must(t, s.CreateConfirmToken(ctx, domain.ConfirmToken{ID: "old", Username: "carol@example.com", Expires: now.Add(-domain.ConfirmTokenKept - time.Minute)}))
	must(t, s.CreateConfirmToken(ctx, domain.ConfirmToken{ID: "new", Username: "carol@example.com", Expires: now.Add(time.Hour)}))
	runErrCases(t, s, []errCase{
		{"forgotten link", confirm("old"), domain.ENOTFOUND, "not valid"},
		{"recently expired link is kept", confirm("expired"), domain.EINVALID, "expired"},
	})
}

// testConcurrentConfirm uses one link from many goroutines: exactly one confirms.
func testConcurrentConfirm(t *testing.T, s domain.Store) {
	seed(t, s)
	mustAccount(t, s, domain.NewAccount{Username: "dave@example.com", PasswordHash: hash, Plan: "small"})
	must(t, s.CreateConfirmToken(t.Context(), domain.ConfirmToken{ID: "once", Username: "dave@example.com", Expires: time.Now().Add(time.Hour)}))
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.ConfirmAccount(t.Context(), "once")
		})
	}
	wg.Wait()
	if got := countCodes(errs); got[""] != 1 || got[domain.ECONFLICT] != n-1 {
		t.Errorf("concurrent ConfirmAccount results by code = %v, want 1 success and the rest %s", got, domain.ECONFLICT)
	}
}

func confirm(id string) func(ctx context.Context, s domain.Store) error {
	return func(ctx context.Context, s domain.Store) error {
		_, err := s.ConfirmAccount(ctx, id)
		return err
	}
}
