package web_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/exitmesh/exitmesh/internal/certs"
	"github.com/exitmesh/exitmesh/internal/config"
)

// TestCustomerAddsAndRemovesProxyServers adds a proxy server from the catalogue and removes another,
// and reads copy-ready URLs and code with the right address and the account's username.
func TestCustomerAddsAndRemovesProxyServers(t *testing.T) {
	n := startNetwork(t)
	n.account(t, "alice", "alice-password", "small", "us-ca")
	ctx := browser(t)
	signIn(t, ctx, n.base, "alice", "alice-password")

	usca, de := n.node.ProxyAddr("us-ca"), n.node.ProxyAddr("de")
	run(t, ctx, "open proxy servers", chromedp.Navigate(n.base+"/proxies"), chromedp.WaitVisible(chromedp.CSS(`#add-de`)))
	if got, want := text(t, ctx, "#snippet-us-ca-url"), "http://alice:PASSWORD@"+usca; got != want {
		t.Errorf("us-ca proxy URL %q, want %q", got, want)
	}
	// What each proxy server's exits offer to steering, on the account's and on the others.
	if got, want := text(t, ctx, "#offers-us-ca"), "Exits in countries US · regions US-CA · cities los_angeles, san_jose · ASNs 64500, 64501"; !strings.HasPrefix(got, want) {
		t.Errorf("us-ca's exits %q, want %q", got, want)
	}
	if got, want := text(t, ctx, "#offers-de"), "exits in countries DE"; got != want {
		t.Errorf("de's exits %q, want %q", got, want)
	}
	submit(t, ctx, "add de", `#add-de`)
	if got, want := text(t, ctx, ".notice"), "de is on your account: connect to "+de+"."; got != want {
		t.Errorf("notice %q, want %q", got, want)
	}
	for id, want := range map[string]string{
		"#snippet-de-url":     "http://alice:PASSWORD@" + de,
		"#snippet-de-session": "http://alice-session-abc123:PASSWORD@" + de,
		"#snippet-de-socks":   "socks5h://alice:PASSWORD@" + de,
		"#snippet-de-curl":    "curl -x http://alice:PASSWORD@" + de + " https://api.ipify.org",
		"#snippet-de-python":  `proxy = "http://alice:PASSWORD@` + de + `"`,
		"#snippet-de-node":    `new ProxyAgent("http://alice:PASSWORD@` + de + `")`,
		"#snippet-de-go":      `url.Parse("http://alice:PASSWORD@` + de + `")`,
	} {
		if got := textContent(t, ctx, id); !strings.Contains(got, want) {
			t.Errorf("%s = %q, want it to contain %q", id, got, want)
		}
	}
	if got := jsEval[string](t, ctx, `document.querySelector("button[data-copy=snippet-de-go]").type`); got != "button" {
		t.Errorf("the Go snippet's copy button has type %q", got)
	}
	if html := jsEval[string](t, ctx, `document.documentElement.outerHTML`); strings.Contains(html, "alice-password") {
		t.Error("the page shows the account's password")
	}
	screenshot(t, ctx, "proxies")

	// The plan allows two proxy servers, and both are on the account: nothing is left to add.
	if got := text(t, ctx, "#available"); got != "Every proxy server is on your account." {
		t.Errorf("available list %q", got)
	}
	submit(t, ctx, "remove us-ca", `#remove-us-ca`)
	if got := text(t, ctx, ".notice"); got != "us-ca is no longer on your account." {
		t.Errorf("notice %q", got)
	}
	if jsEval[bool](t, ctx, `document.querySelector("#snippet-us-ca-url") !== null`) {
		t.Error("us-ca's snippets are still shown after removing it")
	}
	if got := text(t, ctx, "#available"); !strings.Contains(got, usca) {
		t.Errorf("available list %q, want us-ca back", got)
	}
	acct, err := n.store.GetAccount(t.Context(), "alice")
	if err != nil || !slices.Equal(acct.Proxies, []string{"de"}) {
		t.Errorf("stored proxy servers %v, %v; want [de]", acct.Proxies, err)
	}
}

// TestProxyPageShowsTheHTTPSURL: a proxy server whose node gives it a certificate is shown with its
// https:// URL beside the http:// and socks5h:// ones; one without shows none.
func TestProxyPageShowsTheHTTPSURL(t *testing.T) {
	dir := t.TempDir()
	_, certPEM, keyPEM, err := certs.SelfSigned("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "p.crt"), certPEM, 0o644)
	os.WriteFile(filepath.Join(dir, "p.key"), keyPEM, 0o600)
	n := startNetworkWith(t, func(c *config.Config) {
		c.Proxies[0].TLS = &config.ProxyTLS{Cert: filepath.Join(dir, "p.crt"), Key: filepath.Join(dir, "p.key")}
	}, slog.New(slog.DiscardHandler))
	n.account(t, "alice", "alice-password", "small", "us-ca", "de")
	ctx := browser(t)
	signIn(t, ctx, n.base, "alice", "alice-password")
	run(t, ctx, "open proxy servers", chromedp.Navigate(n.base+"/proxies"), chromedp.WaitVisible(chromedp.CSS(`#snippet-us-ca-url`)))
	if got, want := textContent(t, ctx, "#snippet-us-ca-https"), "https://alice:PASSWORD@"+n.node.ProxyAddr("us-ca"); got != want {
		t.Errorf("us-ca's https:// URL %q, want %q", got, want)
	}
	if jsEval[bool](t, ctx, `document.querySelector("#snippet-de-https") !== null`) {
		t.Error("de, which takes no TLS, shows an https:// URL")
	}
}
