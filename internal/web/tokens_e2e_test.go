package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/exitmesh/exitmesh/internal/domain"
)

// TestCustomerManagesTokens creates a token in the browser, sees it once, copies it, uses it on the
// proxy, deactivates and deletes it, and sees the plan's limit refuse one too many.
func TestCustomerManagesTokens(t *testing.T) {
	n := startNetwork(t)
	n.account(t, "alice", "alice-password", "small", "us-ca")
	if _, err := n.store.CreateSubAccount(t.Context(), "alice", domain.NewSubAccount{Username: "alice-bot", PasswordHash: "x", Proxies: []string{"us-ca"}}); err != nil {
		t.Fatal(err)
	}
	ctx := browser(t)
	signIn(t, ctx, n.base, "alice", "alice-password")
	run(t, ctx, "open the tokens page", chromedp.Navigate(n.base+"/tokens"), chromedp.WaitVisible(chromedp.CSS(`#create`)))
	if got := text(t, ctx, "#token-room"); got != "0 of 2 active tokens your plan allows." {
		t.Errorf("room %q", got)
	}
	run(t, ctx, "fill the form", chromedp.SendKeys(chromedp.CSS(`#label`), "scraper"))
	submit(t, ctx, "create a token", `#create`)
	token := text(t, ctx, "#new-token")
	if !strings.HasPrefix(token, "exm_") || len(token) != 50 {
		t.Fatalf("the new token shown is %q", token)
	}
	if got := text(t, ctx, ".notice"); !strings.Contains(got, "shown only once") {
		t.Errorf("notice %q", got)
	}
	run(t, ctx, "copy it", chromedp.Click(chromedp.CSS(`#copy-token`)),
		chromedp.WaitVisible(chromedp.CSS(`#copy-token`)))
	ok := false
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !ok; time.Sleep(50 * time.Millisecond) {
		ok = text(t, ctx, "#copy-token") == "Copied"
	}
	if !ok {
		t.Error(`the copy button never said "Copied": the token did not reach the clipboard`)
	}
	screenshot(t, ctx, "tokens-created")

	// The token works on the proxy as alice.
	if got := proxyWithToken(t, n, token); got != http.StatusOK {
		t.Errorf("the new token on the proxy: %d", got)
	}
	// Shown once: the list keeps only its prefix, and a reload does not show it again.
	run(t, ctx, "reload", chromedp.Navigate(n.base+"/tokens"), chromedp.WaitVisible(chromedp.CSS(`#tokens`)))
	if html := jsEval[string](t, ctx, `document.documentElement.outerHTML`); strings.Contains(html, token) {
		t.Error("the token is shown again after the page that created it")
	}
	if got := text(t, ctx, "#tokens tbody"); !strings.Contains(got, token[:12]) || !strings.Contains(got, "scraper") {
		t.Errorf("the list %q, want the token's prefix and label", got)
	}

	// One for the sub-account fills the plan; a third is refused.
	run(t, ctx, "choose alice-bot", chromedp.SetValue(chromedp.CSS(`#for`), "alice-bot"))
	submit(t, ctx, "create a token for alice-bot", `#create`)
	if got := text(t, ctx, "#created h3"); got != "Token for alice-bot" {
		t.Errorf("the second token's heading %q", got)
	}
	submit(t, ctx, "create a third", `#create`)
	if got := text(t, ctx, ".error"); !strings.Contains(got, "2 active API tokens") {
		t.Errorf("a third token: %q, want the plan's limit", got)
	}

	tokens, err := n.store.ListTokens(t.Context(), "alice", "")
	if err != nil || len(tokens) != 1 {
		t.Fatalf("alice's tokens: %v %v", tokens, err)
	}
	id := tokens[0].ID
	submit(t, ctx, "deactivate", "#deactivate-"+itoa(id))
	if got := proxyWithToken(t, n, token); got != http.StatusProxyAuthRequired {
		t.Errorf("a deactivated token on the proxy: %d, want 407", got)
	}
	submit(t, ctx, "delete", "#delete-"+itoa(id))
	if got := text(t, ctx, ".notice"); !strings.Contains(got, "deleted") {
		t.Errorf("notice %q", got)
	}
	if jsEval[bool](t, ctx, `document.querySelector("#token-`+itoa(id)+`") !== null`) {
		t.Error("the deleted token is still listed")
	}
	screenshot(t, ctx, "tokens")
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// proxyWithToken sends a request through us-ca with the token as Proxy-Authorization: Bearer.
func proxyWithToken(t *testing.T, n *network, token string) int {
	t.Helper()
	u, _ := url.Parse("http://" + n.node.ProxyAddr("us-ca"))
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(u), DisableKeepAlives: true}}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, n.origin.URL+"/ip", nil)
	req.Header.Set("Proxy-Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
