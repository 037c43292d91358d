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

// TestDashboardCallsTakeTheAPIsPath runs endpoints through Do as the dashboard does and checks they
// answer as the API would: the same results, refusals and allowance of an unconfirmed account, except
// that reading a page is free.
func TestDashboardCallsTakeTheAPIsPath(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "exitmesh.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.CreatePlan(ctx, domain.Plan{Name: "small", MaxIPs: 5, MaxSubs: 1, MaxProxies: 1, MaxHostnames: 1}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []domain.NewAccount{
		{Username: "dora", PasswordHash: "x", Plan: "small", Confirmed: false},
		{Username: "erin", PasswordHash: "x", Plan: "small", Confirmed: true},
	} {
		if _, err := st.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	srv := api.New(api.Config{Store: st, UnconfirmedAllowance: 2})
	page := httptest.NewRequest(http.MethodGet, "https://dashboard/ips", nil)
	page.RemoteAddr = "192.0.2.44:51000"

	for range 10 { // browsing: free
		if e := srv.Do(page, "dora", "/api/ips/", nil, nil); e != nil {
			t.Fatalf("reading the IPs of an unconfirmed account: %v", e)
		}
	}
	var added struct{ IP string }
	for _, ip := range []string{"", "192.0.2.7"} { // "" adds the browser's own address
		if e := srv.Do(page, "dora", "/api/ip/add/", url.Values{"ip": {ip}}, &added); e != nil {
			t.Fatalf("change %q within the allowance: %v", ip, e)
		}
	}
	if added.IP != "192.0.2.7" {
		t.Errorf("added %q", added.IP)
	}
	var list struct{ IPs []string }
	srv.Do(page, "dora", "/api/ips/", nil, &list)
	if strings.Join(list.IPs, ",") != "192.0.2.7,192.0.2.44" {
		t.Errorf("IPs %v, want the browser's address and 192.0.2.7", list.IPs)
	}
	e := srv.Do(page, "dora", "/api/ip/add/", url.Values{"ip": {"192.0.2.8"}}, nil)
	if e == nil || e.Status != http.StatusPaymentRequired || !strings.Contains(e.Message, "confirm your email") {
		t.Fatalf("third change of an unconfirmed account: %+v, want the 402 of API.md row 8", e)
	}
	if e := srv.Do(page, "dora", "/api/ips/", nil, nil); e == nil || e.Status != http.StatusPaymentRequired {
		t.Errorf("reading during the block: %+v, want 402", e)
	}

	e = srv.Do(page, "erin", "/api/ip/add/", url.Values{"ip": {"nope"}}, nil)
	if e == nil || e.Status != http.StatusBadRequest || e.Message != "Invalid form data" || len(e.Fields["ip"]) != 1 {
		t.Errorf("invalid IP: %+v, want the API's form error", e)
	}
	if e := srv.Do(page, "erin", "/api/nothing/", nil, nil); e == nil || e.Status != http.StatusNotFound {
		t.Errorf("unknown endpoint: %+v", e)
	}
}
