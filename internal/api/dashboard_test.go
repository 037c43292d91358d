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
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/store"
)

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
