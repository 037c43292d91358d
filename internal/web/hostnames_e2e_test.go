package web_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestCustomerAddsAHostname adds a hostname the node's resolver knows and sees its address, meets
// the contract's sentence for one that does not resolve, and deletes it.
func TestCustomerAddsAHostname(t *testing.T) {
	n := startNetwork(t)
	n.dns.Set("home.example.org", netip.MustParseAddr("127.0.0.7"))
	n.account(t, "alice", "alice-password", "small", "us-ca")
	ctx := browser(t)
	signIn(t, ctx, n.base, "alice", "alice-password")

	run(t, ctx, "a hostname that does not resolve",
		chromedp.Navigate(n.base+"/hostnames"),
		chromedp.SendKeys(chromedp.CSS(`#hostname`), "gone.example.org"),
	)
	submit(t, ctx, "add it", `#hostname ~ button`)
	if got := text(t, ctx, ".error"); got != "Invalid form data: hostname: gone.example.org does not resolve to an IP address." {
		t.Errorf("error %q", got)
	}
	run(t, ctx, "a hostname that resolves", chromedp.SendKeys(chromedp.CSS(`#hostname`), "home.example.org"))
	submit(t, ctx, "add it", `#hostname ~ button`)
	if got := text(t, ctx, ".notice"); got != "home.example.org is authorized: requests from 127.0.0.7 need no password while it resolves there." {
		t.Errorf("notice %q", got)
	}
	if got := text(t, ctx, "#hostnames tbody"); !strings.Contains(got, "home.example.org") || !strings.Contains(got, "127.0.0.7") {
		t.Errorf("hostnames %q", got)
	}
	screenshot(t, ctx, "hostnames")
	acct, err := n.store.GetAccount(t.Context(), "alice")
	if err != nil || len(acct.Hostnames) != 1 || acct.Hostnames[0].IP.String() != "127.0.0.7" {
		t.Errorf("stored hostnames %v, %v", acct.Hostnames, err)
	}

	submit(t, ctx, "delete it", `#hostnames button.danger`)
	if got := text(t, ctx, ".notice"); got != "home.example.org is no longer authorized." {
		t.Errorf("notice %q", got)
	}
	if got := text(t, ctx, "#hostnames"); got != "No authorized hostname yet." {
		t.Errorf("hostnames %q", got)
	}
}
