package web_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestCustomerSignsInAndAuthorizesAnIP drives the dashboard as a customer would: sign in, see the
// plan, add the current IP, and meet the plan's limit in the contract's words.
func TestCustomerSignsInAndAuthorizesAnIP(t *testing.T) {
	n := startNetwork(t)
	n.account(t, "alice", "alice-password", "small", "us-ca")
	ctx := browser(t)

	signIn(t, ctx, n.base, "alice", "alice-password")
	if got := text(t, ctx, "h1"); got != "Account" {
		t.Errorf("after sign-in the page is %q, want Account", got)
	}
	if got := text(t, ctx, "#plan-h"); got != "Plan small" {
		t.Errorf("plan heading %q", got)
	}
	screenshot(t, ctx, "account")

	run(t, ctx, "add my current IP",
		chromedp.Navigate(n.base+"/ips"),
		chromedp.Click(chromedp.CSS(`#add-mine`)),
		chromedp.WaitVisible(chromedp.CSS(`.notice`)),
	)
	if got := text(t, ctx, ".notice"); got != "127.0.0.1 is authorized: requests from it need no password." {
		t.Errorf("notice after adding my IP: %q", got)
	}
	if got := text(t, ctx, "#ips"); !strings.Contains(got, "127.0.0.1") {
		t.Errorf("authorized IPs: %q", got)
	}
	screenshot(t, ctx, "ips")

	// The plan allows one IP: the second is refused with the API's sentence.
	run(t, ctx, "add a second IP",
		chromedp.SendKeys(chromedp.CSS(`#ip`), "127.0.0.9"),
		chromedp.Submit(chromedp.CSS(`#ip`)),
		chromedp.WaitVisible(chromedp.CSS(`.error`)),
	)
	if got := text(t, ctx, ".error"); !strings.Contains(got, "upgrade") || !strings.Contains(got, "IP") {
		t.Errorf("limit error: %q, want the API's plan-limit sentence", got)
	}
	screenshot(t, ctx, "ips-limit")
	acct, err := n.store.GetAccount(t.Context(), "alice")
	if err != nil || len(acct.IPs) != 1 || acct.IPs[0].String() != "127.0.0.1" {
		t.Errorf("stored IPs %v, %v; want only 127.0.0.1", acct.IPs, err)
	}
}
