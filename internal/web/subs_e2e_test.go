package web_test

import (
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestCustomerManagesSubAccounts creates a sub-account in the form and uses it through a proxy
// server, meets the plan's sub-account limit in the contract's words, disables the sub-account
// until the proxy refuses it, and deletes it through the confirmation page.
func TestCustomerManagesSubAccounts(t *testing.T) {
	n := startNetwork(t)
	n.account(t, "alice", "alice-password", "small", "us-ca")
	ctx := browser(t)
	signIn(t, ctx, n.base, "alice", "alice-password")

	run(t, ctx, "open the new sub-account form",
		chromedp.Navigate(n.base+"/subs"),
		chromedp.Click(chromedp.CSS(`#new-sub`)),
		chromedp.WaitVisible(chromedp.CSS(`#sub-form`)),
	)
	if checked := jsEval[bool](t, ctx, `document.querySelector("input[name=proxies]").checked`); !checked {
		t.Error("a new sub-account's form does not offer the account's proxy server ticked")
	}
	run(t, ctx, "fill it in",
		chromedp.SendKeys(chromedp.CSS(`#username`), "alicebot"),
		chromedp.SendKeys(chromedp.CSS(`#password`), "bot-password"),
	)
	submit(t, ctx, "create alicebot", `#save`)
	if got := text(t, ctx, ".notice"); got != "alicebot is saved: it can use its proxy servers within a second." {
		t.Errorf("notice after creating: %q", got)
	}
	if got := text(t, ctx, "#sub-alicebot"); !strings.Contains(got, "active") || !strings.Contains(got, "us-ca") {
		t.Errorf("sub-account row %q, want alicebot active on us-ca", got)
	}
	screenshot(t, ctx, "subs")

	// The proxy server accepts the new credentials once the node has synced.
	bot := proxyClient(n.node.ProxyAddr("us-ca"), "alicebot", "bot-password")
	eventually(t, "the proxy accepts alicebot", func() error { return wantStatus(bot, n.origin.URL+"/ip", http.StatusOK) })

	// The plan allows one sub-account: the second is refused with the API's sentence.
	run(t, ctx, "fill in a second sub-account",
		chromedp.Navigate(n.base+"/subs/new"),
		chromedp.SendKeys(chromedp.CSS(`#username`), "alicebot2"),
		chromedp.SendKeys(chromedp.CSS(`#password`), "bot-password"),
	)
	submit(t, ctx, "create alicebot2", `#save`)
	if got := text(t, ctx, ".error"); !strings.Contains(got, "upgrade") || !strings.Contains(got, "sub-account") {
		t.Errorf("limit error %q, want the API's plan-limit sentence", got)
	}
	if got := jsEval[string](t, ctx, `document.querySelector("#username").value`); got != "alicebot2" {
		t.Errorf("the refused form lost its username: %q", got)
	}
	screenshot(t, ctx, "subs-limit")

	run(t, ctx, "back to the list", chromedp.Navigate(n.base+"/subs"), chromedp.WaitVisible(chromedp.CSS(`#disable-alicebot`)))
	submit(t, ctx, "disable alicebot", `#disable-alicebot`)
	if got := text(t, ctx, ".notice"); got != "alicebot is disabled: the proxy servers refuse it within a second." {
		t.Errorf("notice after disabling: %q", got)
	}
	if got := text(t, ctx, "#sub-alicebot"); !strings.Contains(got, "disabled") {
		t.Errorf("sub-account row %q, want disabled", got)
	}
	eventually(t, "the proxy refuses alicebot", func() error { return wantStatus(bot, n.origin.URL+"/ip", http.StatusForbidden) })

	// Deleting asks first, on a page of its own: no script needed.
	run(t, ctx, "ask to delete alicebot",
		chromedp.Click(chromedp.CSS(`#sub-alicebot a[href$="/delete"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#confirm-delete`)),
	)
	if subs := storedSubs(t, n, "alice"); len(subs) != 1 {
		t.Fatalf("the confirmation page already deleted: %v", subs)
	}
	submit(t, ctx, "confirm", `#confirm-delete`)
	if got := text(t, ctx, ".notice"); got != "alicebot is deleted: its username and password no longer work." {
		t.Errorf("notice after deleting: %q", got)
	}
	if got := text(t, ctx, "#subs"); got != "No sub-account yet." {
		t.Errorf("list after deleting: %q", got)
	}
	if subs := storedSubs(t, n, "alice"); len(subs) != 0 {
		t.Errorf("stored sub-accounts after deleting: %v", subs)
	}
}

// TestCustomerEditsASubAccount changes a sub-account's password, proxy servers and IPs in the edit
// form; the proxy then takes the new password. Unticking every box leaves none, a short password
// is refused in the API's words on the form again, and another's sub-account is not found.
func TestCustomerEditsASubAccount(t *testing.T) {
	n := startNetwork(t)
	n.account(t, "alice", "alice-password", "big", "us-ca", "de")
	if err := n.store.AddIP(t.Context(), "alice", netip.MustParseAddr("127.0.0.9")); err != nil {
		t.Fatal(err)
	}
	n.sub(t, "alice", "alicebot", "old-password", "us-ca", "de")
	ctx := browser(t)
	signIn(t, ctx, n.base, "alice", "alice-password")

	run(t, ctx, "open the edit form",
		chromedp.Navigate(n.base+"/subs"),
		chromedp.Click(chromedp.CSS(`#sub-alicebot a[href$="/edit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#sub-form`)),
	)
	if got := text(t, ctx, "h1"); got != "Edit alicebot" {
		t.Errorf("edit page title %q", got)
	}
	run(t, ctx, "untick de, tick the IP, set a new password",
		chromedp.Click(chromedp.CSS(`input[name=proxies][value="`+n.node.ProxyAddr("de")+`"]`)),
		chromedp.Click(chromedp.CSS(`input[name=ips][value="127.0.0.9"]`)),
		chromedp.SendKeys(chromedp.CSS(`#password`), "new-password"),
	)
	screenshot(t, ctx, "sub-edit")
	submit(t, ctx, "save", `#save`)
	if got := text(t, ctx, ".notice"); got != "alicebot is saved: it can use its proxy servers within a second." {
		t.Errorf("notice after saving: %q", got)
	}
	subs := storedSubs(t, n, "alice")
	if len(subs) != 1 || !slices.Equal(subs[0].Proxies, []string{"us-ca"}) || len(subs[0].IPs) != 1 || subs[0].IPs[0].String() != "127.0.0.9" || !subs[0].Active {
		t.Errorf("stored sub-account %+v, want active on us-ca only with 127.0.0.9", subs)
	}
	bot := proxyClient(n.node.ProxyAddr("us-ca"), "alicebot", "new-password")
	eventually(t, "the proxy takes the new password", func() error { return wantStatus(bot, n.origin.URL+"/ip", http.StatusOK) })

	// Unticking every proxy server leaves the sub-account none (not unchanged).
	run(t, ctx, "untick us-ca",
		chromedp.Navigate(n.base+"/subs/alicebot/edit"),
		chromedp.Click(chromedp.CSS(`input[name=proxies][value="`+n.node.ProxyAddr("us-ca")+`"]`)),
	)
	submit(t, ctx, "save", `#save`)
	if subs := storedSubs(t, n, "alice"); len(subs) != 1 || len(subs[0].Proxies) != 0 {
		t.Errorf("stored sub-account %+v, want no proxy server", subs)
	}
	if got := text(t, ctx, "#sub-alicebot"); !strings.Contains(got, "none") {
		t.Errorf("sub-account row %q, want no proxy server", got)
	}

	run(t, ctx, "a short password",
		chromedp.Navigate(n.base+"/subs/alicebot/edit"),
		chromedp.SendKeys(chromedp.CSS(`#password`), "short"),
	)
	submit(t, ctx, "save", `#save`)
	if got := text(t, ctx, ".error"); got != "Invalid form data: password: Password must be at least 8 characters long." {
		t.Errorf("error for a short password: %q", got)
	}
	if got := text(t, ctx, "h1"); got != "Edit alicebot" {
		t.Errorf("a refused edit shows %q, want the edit form again", got)
	}

	run(t, ctx, "an unknown sub-account", chromedp.Navigate(n.base+"/subs/nobody/edit"), chromedp.WaitVisible(chromedp.CSS(`.error`)))
	if got := text(t, ctx, ".error"); got != "Sub-account not found." {
		t.Errorf("error for an unknown sub-account: %q", got)
	}
}
