package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/exitmesh/exitmesh/internal/api"
	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/store"
)

// TestDoReadsOnlyItsParams runs sub/edit for the dashboard on a request whose own form (the page's,
// already parsed) holds other fields: the endpoint sees the params it is given, not the page's form.
func TestDoReadsOnlyItsParams(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "exitmesh.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.PutPlan(ctx, domain.Plan{Name: "big", MaxProxies: 3, MaxSubs: 3}); err != nil {
		t.Fatal(err)
	}
	hash, err := auth.HashPassword("alice-password")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateAccount(ctx, domain.NewAccount{Username: "alice", PasswordHash: hash, Plan: "big", Confirmed: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateSubAccount(ctx, "alice", domain.NewSubAccount{Username: "alicebot", PasswordHash: hash}); err != nil {
		t.Fatal(err)
	}
	srv := api.New(api.Config{Store: st})

	page := httptest.NewRequest(http.MethodPost, "/subs", strings.NewReader("action=disable&username=alicebot&csrf=x"))
	page.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	page.ParseForm()
	var out struct{ Active bool }
	if e := srv.Do(page, "alice", "/api/sub/edit/", url.Values{"username": {"alicebot"}, "active": {"false"}}, &out); e != nil {
		t.Fatalf("sub/edit: %d %s", e.Status, e.Message)
	}
	if out.Active {
		t.Error("sub/edit answered active: it read the page's form instead of its params")
	}
	subs, err := st.ListSubAccounts(ctx, "alice")
	if err != nil || len(subs) != 1 || subs[0].Active {
		t.Errorf("stored sub-accounts %+v, %v; want alicebot disabled", subs, err)
	}
}
