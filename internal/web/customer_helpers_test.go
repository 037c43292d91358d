package web_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/testwait"
)

// sub creates a sub-account of account directly in the store, as set-up.
func (n *network) sub(t *testing.T, account, username, password string, proxies ...string) {
	t.Helper()
	hash, err := auth.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.store.CreateSubAccount(t.Context(), account, domain.NewSubAccount{Username: username, PasswordHash: hash, Proxies: proxies}); err != nil {
		t.Fatal(err)
	}
}

func storedSubs(t *testing.T, n *network, account string) []domain.SubAccount {
	t.Helper()
	subs, err := n.store.ListSubAccounts(t.Context(), account)
	if err != nil {
		t.Fatal(err)
	}
	return subs
}

// submit clicks sel, which sends a form, and waits for the next page to show the outcome: a notice
// or an error. Marking the current page first keeps its own outcome from passing for the new one.
func submit(t *testing.T, ctx context.Context, what, sel string) {
	t.Helper()
	run(t, ctx, what,
		chromedp.Evaluate[chromedp.Void](`document.body.dataset.stale = "1"`),
		chromedp.Click(chromedp.CSS(sel)),
		chromedp.WaitVisible(chromedp.CSS(`body:not([data-stale]) :is(.notice, .error)`)),
	)
}

// jsEval evaluates a JavaScript expression in the page.
func jsEval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// textContent returns the text of the first element matching sel, shown or not.
func textContent(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("read %s: %v", sel, err)
	}
	return s
}

// proxyClient is a client of the proxy server at addr, logged in as login.
func proxyClient(addr, login, password string) *http.Client {
	u := &url.URL{Scheme: "http", Host: addr, User: url.UserPassword(login, password)}
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u), DisableKeepAlives: true}, Timeout: 10 * time.Second}
}

// wantStatus GETs u with c and reports a status other than want.
func wantStatus(c *http.Client, u string, want int) error {
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("status %d %s, want %d", resp.StatusCode, resp.Header.Get("X-ProxyMesh-Error"), want)
	}
	return nil
}

// eventually waits for check to pass (see testwait).
var eventually = testwait.For
