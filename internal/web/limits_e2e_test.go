package web_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestCustomerSetsBandwidthLimits sets the account's own limits on the account page (a bad value is
// refused and shown as typed), then a sub-account's profile and monthly limit in its form, and sees
// the proxy refuse the sub-account with 509 once its limit is spent, while the account works on.
func TestCustomerSetsBandwidthLimits(t *testing.T) {
	n := startNetwork(t)
	n.account(t, "alice", "alice-password", "small", "us-ca")
	ctx := browser(t)
	signIn(t, ctx, n.base, "alice", "alice-password")

	run(t, ctx, "open the account page", chromedp.Navigate(n.base+"/account"), chromedp.WaitVisible(chromedp.CSS(`#limits-form`)))
	if got := jsEval[string](t, ctx, `document.querySelector("#monthly").value`); got != "0" {
		t.Errorf("the monthly limit field shows %q, want 0 (none)", got)
	}
	run(t, ctx, "type a bad limit", chromedp.SetValue(chromedp.CSS(`#monthly`), "lots"))
	submit(t, ctx, "save a bad limit", `#save-limits`)
	if got := text(t, ctx, ".field-error"); !strings.Contains(got, "size in GB") {
		t.Errorf("field error %q", got)
	}
	if got := jsEval[string](t, ctx, `document.querySelector("#monthly").value`); got != "lots" {
		t.Errorf("the refused form shows %q, want what was typed", got)
	}
	run(t, ctx, "type good limits", chromedp.SetValue(chromedp.CSS(`#monthly`), "2.5"), chromedp.SetValue(chromedp.CSS(`#total`), "40"))
	submit(t, ctx, "save the limits", `#save-limits`)
	if got := text(t, ctx, ".notice"); !strings.Contains(got, "limits are saved") {
		t.Errorf("notice %q", got)
	}
	acct, err := n.store.GetAccount(t.Context(), "alice")
	if err != nil || acct.MonthlyLimit != 2_500_000_000 || acct.TotalLimit != 40_000_000_000 {
		t.Fatalf("stored limits %+v %v", acct.Limits, err)
	}
	screenshot(t, ctx, "account-limits")

	run(t, ctx, "a sub-account with a profile and a small limit",
		chromedp.Navigate(n.base+"/subs/new"),
		chromedp.SendKeys(chromedp.CSS(`#username`), "alicebot"),
		chromedp.SendKeys(chromedp.CSS(`#password`), "bot-password"),
		chromedp.SendKeys(chromedp.CSS(`#email`), "bot@example.com"),
		chromedp.SendKeys(chromedp.CSS(`#first_name`), "Ro"),
		chromedp.SetValue(chromedp.CSS(`#monthly`), "0.000002"), // 2000 bytes
	)
	submit(t, ctx, "create alicebot", `#save`)
	if got := text(t, ctx, "#sub-alicebot .limits"); !strings.Contains(got, "2 KB per period") || !strings.Contains(got, "none in all") {
		t.Errorf("the list shows alicebot's limits as %q", got)
	}
	bot := proxyClient(n.node.ProxyAddr("us-ca"), "alicebot", "bot-password")
	eventually(t, "the proxy accepts alicebot", func() error { return wantStatus(bot, n.origin.URL+"/bytes/1000", http.StatusOK) })
	if err := wantStatus(bot, n.origin.URL+"/bytes/1000", http.StatusOK); err != nil {
		t.Errorf("alicebot's second 1000 bytes: %v", err)
	}
	if err := wantStatus(bot, n.origin.URL+"/bytes/1000", 509); err != nil {
		t.Errorf("alicebot past its 2000 bytes: %v", err)
	}
	alice := proxyClient(n.node.ProxyAddr("us-ca"), "alice", "alice-password")
	if err := wantStatus(alice, n.origin.URL+"/ip", http.StatusOK); err != nil {
		t.Errorf("alice while alicebot's limit is spent: %v", err)
	}
	run(t, ctx, "edit alicebot", chromedp.Navigate(n.base+"/subs/alicebot/edit"), chromedp.WaitVisible(chromedp.CSS(`#sub-form`)))
	if got := jsEval[string](t, ctx, `document.querySelector("#email").value + "|" + document.querySelector("#monthly").value`); got != "bot@example.com|0.000002" {
		t.Errorf("the edit form shows %q", got)
	}
	screenshot(t, ctx, "sub-limits")
}

// TestOperatorSetsABillingDay moves an account's billing period on the operator's accounts page.
func TestOperatorSetsABillingDay(t *testing.T) {
	n := startNetwork(t)
	n.account(t, "ops", "ops-password", "big")
	n.account(t, "carol", "carol-password", "small")
	ctx := browser(t)
	signIn(t, ctx, n.base, "ops", "ops-password")
	run(t, ctx, "open the accounts page", chromedp.Navigate(n.base+"/ops/accounts?q=carol"),
		chromedp.WaitVisible(chromedp.CSS(`#billing-day-carol`)),
		chromedp.SetValue(chromedp.CSS(`#billing-day-carol`), "15"))
	submit(t, ctx, "set carol's billing day", `#set-billing-day-carol`)
	if got := text(t, ctx, ".notice"); !strings.Contains(got, "carol bills from day 15") {
		t.Errorf("notice %q", got)
	}
	if acct, err := n.store.GetAccount(t.Context(), "carol"); err != nil || acct.BillingDay != 15 {
		t.Errorf("carol's billing day %d %v, want 15", acct.BillingDay, err)
	}
	if got := jsEval[string](t, ctx, `document.querySelector("#billing-day-carol").value`); got != "15" {
		t.Errorf("the page shows carol's billing day as %q", got)
	}
	if got := text(t, ctx, "#account-carol"); !strings.Contains(got, "billing period from day 15") {
		t.Errorf("carol's row %q, want her billing period", got)
	}
}
