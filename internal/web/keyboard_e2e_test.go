package web_test

import (
	"context"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// focused describes the element that has the keyboard focus: its tag, id and text.
func focused(t *testing.T, ctx context.Context) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { const e = document.activeElement;
		return e.tagName.toLowerCase() + "#" + e.id + " " + (e.textContent || "").trim(); })()`))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestKeyboardOnly signs in and authorizes an IP with the keyboard alone: Tab moves through the skip
// link, the fields and the buttons in reading order, and Enter acts.
func TestKeyboardOnly(t *testing.T) {
	n := startNetwork(t)
	n.account(t, "kim", "kim-password", "big", "us-ca")
	ctx := browser(t)
	run(t, ctx, "open the sign-in page", chromedp.Navigate(n.base+"/signin"), chromedp.WaitVisible(chromedp.CSS(`#username`)))
	// The username field has the focus at once (autofocus).
	if got := focused(t, ctx); got != "input#username " {
		t.Fatalf("focus on arrival: %q, want the username field", got)
	}
	run(t, ctx, "type the credentials",
		chromedp.KeyEvent("kim"), chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent("kim-password"), chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(`form.signout`)))
	if got := text(t, ctx, "h1"); got != "Account" {
		t.Fatalf("after signing in by keyboard: %q", got)
	}
	run(t, ctx, "open the IPs page", chromedp.Navigate(n.base+"/ips"), chromedp.WaitVisible(chromedp.CSS(`#ip`)))
	run(t, ctx, "tab to the skip link", chromedp.KeyEvent(kb.Tab))
	if got := focused(t, ctx); got != "a# Skip to content" {
		t.Fatalf("first Tab reaches %q, want the skip link", got)
	}
	run(t, ctx, "follow the skip link, tab to the IP field", chromedp.KeyEvent(kb.Enter))
	for i := 0; i < 10 && focused(t, ctx) != "input#ip "; i++ {
		run(t, ctx, "tab", chromedp.KeyEvent(kb.Tab))
	}
	if got := focused(t, ctx); got != "input#ip " {
		t.Fatalf("Tab from the content never reached the IP field; focus is on %q", got)
	}
	run(t, ctx, "type an IP and press Enter", chromedp.KeyEvent("127.0.0.5"), chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(`.notice`)))
	if got := text(t, ctx, ".notice"); got != "127.0.0.5 is authorized: requests from it need no password." {
		t.Errorf("notice: %q", got)
	}
}
