package web_test

import (
	"cmp"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/domain"
)

// TestCustomerSeesUsageAfterProxiedTraffic sends requests through two proxy servers, as the account
// and as a sub-account, waits until the node has flushed them to the store, and reads the usage page:
// a bar per proxy server and per sub-account with the bytes the store holds, a table that matches
// the store row for row, and the month's bandwidth against the plan's. At phone width the page fits.
func TestCustomerSeesUsageAfterProxiedTraffic(t *testing.T) {
	n := startNetwork(t)
	n.account(t, "alice", "alice-password", "big", "us-ca", "de")
	n.sub(t, "alice", "alicebot", "bot-password", "us-ca")

	want := map[string]int64{} // requests per proxy server and (sub-)account, as the proxies answered
	send := func(proxy, login, password string, count int) {
		c := proxyClient(n.node.ProxyAddr(proxy), login, password)
		for range count {
			resp, err := c.Get(n.origin.URL + "/bytes/3000")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				want[proxy+"/"+login]++
			}
		}
	}
	bot := proxyClient(n.node.ProxyAddr("us-ca"), "alicebot", "bot-password")
	eventually(t, "the proxy knows alicebot", func() error { return wantStatus(bot, n.origin.URL+"/ip", http.StatusOK) })
	want["us-ca/alicebot"]++
	send("us-ca", "alice", "alice-password", 3)
	send("de", "alice", "alice-password", 1)
	send("us-ca", "alicebot", "bot-password", 2)

	var rows []domain.UsageRow
	eventually(t, "usage flushed to the store", func() error {
		var err error
		if rows, err = n.store.Usage(t.Context(), domain.UsageFilter{Username: "alice"}); err != nil {
			return err
		}
		got := map[string]int64{}
		for _, r := range rows {
			got[r.Proxy+"/"+cmp.Or(r.SubAccount, r.Username)] += r.Requests
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("stored requests %v, want %v", got, want)
		}
		return nil
	})

	ctx := browser(t)
	signIn(t, ctx, n.base, "alice", "alice-password")
	run(t, ctx, "open usage", chromedp.Navigate(n.base+"/usage"), chromedp.WaitVisible(chromedp.CSS(`svg.chart`)))
	today := time.Now().UTC()
	if from, to := jsEval[string](t, ctx, `document.querySelector("#from").value`), jsEval[string](t, ctx, `document.querySelector("#to").value`); from != today.AddDate(0, 0, -29).Format(time.DateOnly) || to != today.Format(time.DateOnly) {
		t.Errorf("default period %s to %s, want the last 30 days", from, to)
	}

	// The bars: one per proxy server, and one per sub-account, each with the bytes the store holds.
	perProxy, perWho, total := map[string]int64{}, map[string]int64{}, int64(0)
	for _, r := range rows {
		perProxy[r.Day+" "+r.Proxy] += r.BytesIn + r.BytesOut
		perWho[r.Day+" "+cmp.Or(r.SubAccount, "alice (account)")] += r.BytesIn + r.BytesOut
		total += r.BytesIn + r.BytesOut
	}
	bars := jsEval[[]string](t, ctx, `[...document.querySelectorAll("svg.chart rect title")].map(t => t.textContent)`)
	for _, perDay := range []map[string]int64{perProxy, perWho} {
		for key, bytes := range perDay {
			if want := key + ": " + config.Size(bytes).Human(); !slices.Contains(bars, want) {
				t.Errorf("no bar %q among %q", want, bars)
			}
		}
	}
	if got := jsEval[int](t, ctx, `document.querySelectorAll("svg.chart").length`); got != 2 {
		t.Errorf("%d charts, want 2 (per proxy server, per sub-account)", got)
	}

	// The table: the store's rows, in its order.
	var wantRows []string
	for _, r := range rows {
		wantRows = append(wantRows, strings.Join([]string{r.Day, r.Proxy, cmp.Or(r.SubAccount, "—"),
			config.Size(r.BytesIn).Human(), config.Size(r.BytesOut).Human(), fmt.Sprint(r.Requests), fmt.Sprint(r.Tunnels)}, "|"))
	}
	gotRows := jsEval[[]string](t, ctx, `[...document.querySelectorAll("#usage tbody tr")].map(tr => [...tr.cells].map(c => c.textContent.trim()).join("|"))`)
	if !slices.Equal(gotRows, wantRows) {
		t.Errorf("table rows\n%q\nwant\n%q", gotRows, wantRows)
	}
	if got, want := text(t, ctx, "#bandwidth"), config.Size(total).Human()+" of 100 GB"; got != want {
		t.Errorf("bandwidth %q, want %q", got, want)
	}
	screenshot(t, ctx, "usage")

	run(t, ctx, "phone width", chromedp.EmulateViewport(390, 844), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`svg.chart`)))
	if w := jsEval[int](t, ctx, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("the usage page is %dpx wide at phone width 390px", w)
	}
	screenshot(t, ctx, "usage-phone")

	run(t, ctx, "a malformed date", chromedp.Navigate(n.base+"/usage?from=yesterday"), chromedp.WaitVisible(chromedp.CSS(`.error`)))
	if got := text(t, ctx, ".error"); got != "Invalid form data: from: Enter a date as YYYY-MM-DD." {
		t.Errorf("error for a malformed date: %q", got)
	}
}

// TestCustomerPagesFitAPhone opens every customer page at a phone's width (390px): nothing is wider
// than the screen (wide tables and code scroll in their own boxes).
func TestCustomerPagesFitAPhone(t *testing.T) {
	n := startNetwork(t)
	n.account(t, "alice", "alice-password", "big", "us-ca", "de")
	if err := n.store.AddIP(t.Context(), "alice", netip.MustParseAddr("127.0.0.9")); err != nil {
		t.Fatal(err)
	}
	n.sub(t, "alice", "alicebot", "bot-password", "us-ca", "de")
	ctx := browser(t)
	signIn(t, ctx, n.base, "alice", "alice-password")
	run(t, ctx, "phone width", chromedp.EmulateViewport(390, 844))
	for _, path := range []string{"/account", "/ips", "/hostnames", "/proxies", "/subs", "/subs/new", "/subs/alicebot/edit", "/subs/alicebot/delete", "/usage"} {
		run(t, ctx, "open "+path, chromedp.Navigate(n.base+path), chromedp.WaitVisible(chromedp.CSS(`h1`)))
		if w := jsEval[int](t, ctx, `document.documentElement.scrollWidth`); w > 390 {
			t.Errorf("%s is %dpx wide at phone width 390px", path, w)
		}
		if path == "/proxies" || path == "/subs" {
			screenshot(t, ctx, "phone"+strings.ReplaceAll(path, "/", "-"))
		}
	}
}
