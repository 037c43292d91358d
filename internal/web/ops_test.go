package web_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/node"
)

// waitText waits until the first element matching sel contains want, as a page that has just been
// submitted settles; it returns the text.
func waitText(t *testing.T, ctx context.Context, sel, want string) string {
	t.Helper()
	var last string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		s, err := chromedp.Run(actx, chromedp.Text(chromedp.CSS(sel)))
		cancel()
		if last = strings.TrimSpace(s); err == nil && strings.Contains(last, want) {
			return last
		}
	}
	t.Fatalf("%s says %q, want it to contain %q", sel, last, want)
	return ""
}

// count returns how many elements match sel now.
func count(t *testing.T, ctx context.Context, sel string) int {
	t.Helper()
	nodes, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll(sel), chromedp.AtLeast(0)))
	if err != nil {
		t.Fatalf("query %s: %v", sel, err)
	}
	return len(nodes)
}

func signOut(t *testing.T, ctx context.Context) {
	t.Helper()
	run(t, ctx, "sign out", chromedp.Click(chromedp.CSS(`form.signout button`)), chromedp.WaitVisible(chromedp.CSS(`#username`)))
}

// fromSource dials from a loopback source address, so a test can be a client other than 127.0.0.1.
func fromSource(source string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 5 * time.Second}
	return d.DialContext
}

// proxyGet sends one request to the origin through the proxy server at proxyAddr as login, from
// source; it returns the status and the proxy's X-ProxyMesh-Error.
func (n *network) proxyGet(t *testing.T, proxyAddr, login, password, source string) (int, string) {
	t.Helper()
	proxyURL := &url.URL{Scheme: "http", Host: proxyAddr, User: url.UserPassword(login, password)}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL),
		DialContext: fromSource(source), DisableKeepAlives: true}}
	resp, err := c.Get(n.origin.URL + "/")
	if err != nil {
		t.Fatalf("request through %s: %v", proxyAddr, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("X-ProxyMesh-Error")
}

// answers makes a check of a proxied request's status (and reason, if one is given).
func (n *network) answers(t *testing.T, proxyAddr, login, password, source string, status int, reason string) func() error {
	return func() error {
		got, why := n.proxyGet(t, proxyAddr, login, password, source)
		if got != status || why != reason {
			return fmt.Errorf("%s through %s got %d %q, want %d %q", login, proxyAddr, got, why, status, reason)
		}
		return nil
	}
}

// client is an HTTPS client of the dashboard and the API from a loopback source address, with its
// own cookies; it trusts the node's self-signed certificate.
func (n *network) client(source string) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Timeout: 5 * time.Second, Jar: jar, Transport: &http.Transport{DialContext: fromSource(source),
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}

// statusOf is an answer's status, or -1 when there was none.
func statusOf(resp *http.Response, err error) int {
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// apiStatus is the status of GET /api/ip/ as login from c.
func (n *network) apiStatus(t *testing.T, c *http.Client, login, password string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, n.base+"/api/ip/", nil)
	req.SetBasicAuth(login, password)
	return statusOf(c.Do(req))
}

// startNode starts another node of the network whose store is store, hosting proxy server de.
func startNode(t *testing.T, store string) *node.Node {
	t.Helper()
	path := filepath.Join(t.TempDir(), "node-b.yaml")
	text := fmt.Sprintf(`
store: %s
node: {name: node-b, api: false}
metrics: {listen: "off"}
sync: {interval: 100ms}
usage: {flush_interval: 100ms}
proxies:
  - {name: de, listen: "127.0.0.1:0", country: DE, exits: [{ip: 127.0.0.5}]}
egress: {allow: [127.0.0.1/32]}
`, store)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := node.Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Close(ctx)
	})
	return b
}

// TestOperatorFindsDisablesAndEnablesAnAccount: the operator finds an account by a part of its
// name, disables it, and its requests are refused on this node and on another node of the network;
// enabled again, they pass; moved to another plan and confirmed, the list says so.
func TestOperatorFindsDisablesAndEnablesAnAccount(t *testing.T) {
	var store string // the network's, for a second node
	n := startNetworkWith(t, func(c *config.Config) { store = c.Store }, slog.New(slog.DiscardHandler))
	other := startNode(t, store)
	n.account(t, "ops", "ops-password", "big")
	n.account(t, "alice", "alice-password", "small", "us-ca", "de")
	n.account(t, "alicia", "alicia-password", "small")
	n.account(t, "bob", "bob-password", "small")
	here, there := n.node.ProxyAddr("us-ca"), other.ProxyAddr("de")
	eventually(t, "alice through us-ca", n.answers(t, here, "alice", "alice-password", "127.0.0.1", http.StatusOK, ""))
	eventually(t, "alice through de on node-b", n.answers(t, there, "alice", "alice-password", "127.0.0.1", http.StatusOK, ""))
	ctx := browser(t)

	signIn(t, ctx, n.base, "ops", "ops-password")
	run(t, ctx, "open the operator pages and search",
		chromedp.Click(chromedp.CSS(`.top nav a[href="/ops/accounts"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#q`)),
		chromedp.SendKeys(chromedp.CSS(`#q`), "ALI"),
		chromedp.Click(chromedp.CSS(`#search`)),
	)
	waitText(t, ctx, "#matches", "Accounts whose username starts with “ALI”: 2 on this page.")
	if got := text(t, ctx, "#accounts tbody"); !strings.Contains(got, "alice") || !strings.Contains(got, "alicia") || strings.Contains(got, "bob") {
		t.Errorf("search for ALI lists %q, want alice and alicia only", got)
	}
	if got := text(t, ctx, "#account-alice"); !strings.Contains(got, " of 10 GB") || !strings.Contains(got, "de, us-ca") {
		t.Errorf("alice's row %q lacks the month's bandwidth against the plan, or the proxy servers", got)
	}

	run(t, ctx, "disable alice", chromedp.Click(chromedp.CSS(`#account-alice button[value=disable]`)))
	waitText(t, ctx, ".notice", "alice is disabled")
	if got := text(t, ctx, "#account-alice .status"); got != "disabled" {
		t.Errorf("alice's status after disabling: %q", got)
	}
	if got, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(`#q`))); err != nil || got != "ALI" || count(t, ctx, "#account-bob") != 0 {
		t.Errorf("after the change the search is %q (%v), want ALI still applied", got, err)
	}
	screenshot(t, ctx, "ops-accounts")
	eventually(t, "disabled alice refused here", n.answers(t, here, "alice", "alice-password", "127.0.0.1", http.StatusForbidden, "account-disabled"))
	eventually(t, "disabled alice refused on node-b", n.answers(t, there, "alice", "alice-password", "127.0.0.1", http.StatusForbidden, "account-disabled"))

	run(t, ctx, "enable alice", chromedp.Click(chromedp.CSS(`#account-alice button[value=enable]`)))
	waitText(t, ctx, ".notice", "alice is enabled again.")
	eventually(t, "enabled alice served here", n.answers(t, here, "alice", "alice-password", "127.0.0.1", http.StatusOK, ""))
	eventually(t, "enabled alice served on node-b", n.answers(t, there, "alice", "alice-password", "127.0.0.1", http.StatusOK, ""))

	run(t, ctx, "move alice to plan big",
		chromedp.SetValue(chromedp.CSS(`#account-alice select[name=plan]`), "big"),
		chromedp.Click(chromedp.CSS(`#account-alice button[value=set-plan]`)),
	)
	waitText(t, ctx, ".notice", "alice is on plan big now.")
	if got := text(t, ctx, "#account-alice .plan"); got != "big" {
		t.Errorf("alice's plan cell: %q", got)
	}
	if acct, err := n.store.GetAccount(t.Context(), "alice"); err != nil || acct.Plan != "big" || acct.Disabled {
		t.Errorf("stored alice: plan %q, disabled %v, %v", acct.Plan, acct.Disabled, err)
	}

	// An unconfirmed account (self sign-up) is confirmed from its row.
	hash := mustAccountHash(t, n, "alicia")
	if _, err := n.store.CreateAccount(t.Context(), domain.NewAccount{Username: "alix", PasswordHash: hash, Plan: "small"}); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "search again", chromedp.Navigate(n.base+"/ops/accounts?q=alix"))
	if got := text(t, ctx, "#account-alix .status"); got != "unconfirmed" {
		t.Errorf("alix's status: %q", got)
	}
	run(t, ctx, "confirm alix", chromedp.Click(chromedp.CSS(`#account-alix button[value=confirm]`)))
	waitText(t, ctx, ".notice", "alix is confirmed.")
	if got := text(t, ctx, "#account-alix .status"); got != "active" {
		t.Errorf("alix's status after confirming: %q", got)
	}
}

func mustAccountHash(t *testing.T, n *network, username string) string {
	t.Helper()
	acct, err := n.store.GetAccount(t.Context(), username)
	if err != nil {
		t.Fatal(err)
	}
	return acct.PasswordHash
}

// TestOperatorPagesThroughBans: more bans than a page are listed a page at a time, in the order of
// the IPs' text, only those in force; the next page follows a link, a search by the start of an IP
// narrows the list, and unbanning from a search shows the search again.
func TestOperatorPagesThroughBans(t *testing.T) {
	n := startNetwork(t)
	n.account(t, "ops", "ops-password", "big")
	ctx := t.Context()
	until := time.Now().Add(time.Hour)
	put := func(ip string, until time.Time) {
		t.Helper()
		if err := n.store.PutBan(ctx, domain.Ban{IP: netip.MustParseAddr(ip), Until: until, Reason: "auth-failure"}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 205 {
		put(fmt.Sprintf("198.51.100.%d", i), until)
	}
	for i := 1; i <= 5; i++ {
		put(fmt.Sprintf("203.0.113.%d", i), until)
	}
	put("198.51.100.250", time.Now().Add(-time.Minute)) // over: would sort among the first page's
	put("203.0.113.9", until)
	if err := n.store.LiftBan(ctx, netip.MustParseAddr("203.0.113.9")); err != nil {
		t.Fatal(err)
	}

	bctx := browser(t)
	signIn(t, bctx, n.base, "ops", "ops-password")
	run(t, bctx, "open the bans", chromedp.Navigate(n.base+"/ops/bans"), chromedp.WaitVisible(chromedp.CSS(`#matches`)))
	waitText(t, bctx, "#matches", "Bans: 200 on this page.")
	if got := count(t, bctx, "#bans tbody tr"); got != 200 {
		t.Errorf("the first page lists %d bans, want 200", got)
	}
	row := func(ip string) string { return `[id="ban-` + ip + `"]` }
	listed := func() string {
		return jsEval[string](t, bctx, `Array.from(document.querySelectorAll("#bans tbody th"), e => e.textContent.trim()).join(" ")`)
	}
	// By text, 198.51.100.0, .1, .10, .100 … .199, .2, .20, .200 … up to .94 make the first 200.
	for ip, want := range map[string]int{"198.51.100.0": 1, "198.51.100.199": 1, "198.51.100.204": 1, "198.51.100.94": 1,
		"198.51.100.95": 0, "198.51.100.250": 0, "203.0.113.1": 0} {
		if got := count(t, bctx, row(ip)); got != want {
			t.Errorf("%s on the first page %d times, want %d", ip, got, want)
		}
	}
	run(t, bctx, "next page", chromedp.Click(chromedp.CSS(`#next`)))
	waitText(t, bctx, "#matches", "Bans after 198.51.100.94: 10 on this page.")
	if got, want := listed(), "198.51.100.95 198.51.100.96 198.51.100.97 198.51.100.98 198.51.100.99 "+
		"203.0.113.1 203.0.113.2 203.0.113.3 203.0.113.4 203.0.113.5"; got != want {
		t.Errorf("the second page lists %q, want %q", got, want)
	}
	if count(t, bctx, "#next") != 0 {
		t.Error("the last page links to a next one")
	}

	run(t, bctx, "search by prefix", chromedp.Navigate(n.base+"/ops/bans"), chromedp.WaitVisible(chromedp.CSS(`#q`)),
		chromedp.SetValue(chromedp.CSS(`#q`), "203.0.113."), chromedp.Click(chromedp.CSS(`#search`)))
	waitText(t, bctx, "#matches", "Bans of IPs starting with “203.0.113.”: 5 on this page.")
	if count(t, bctx, row("203.0.113.9")) != 0 {
		t.Error("the lifted ban of 203.0.113.9 is listed")
	}
	run(t, bctx, "unban from the search", chromedp.Click(chromedp.CSS(row("203.0.113.3")+` button`)))
	waitText(t, bctx, ".notice", "203.0.113.3 is no longer banned")
	waitText(t, bctx, "#matches", "starting with “203.0.113.”: 4 on this page.")
	if got := listed(); got != "203.0.113.1 203.0.113.2 203.0.113.4 203.0.113.5" {
		t.Errorf("the search after unbanning lists %q", got)
	}

	run(t, bctx, "search 198.51.100.1", chromedp.Navigate(n.base+"/ops/bans?q=198.51.100.1"))
	waitText(t, bctx, "#matches", "starting with “198.51.100.1”: 111 on this page.") // .1, .10 to .19, .100 to .199
	run(t, bctx, "search what is no IP", chromedp.Navigate(n.base+"/ops/bans?q=198.51.100.%25"))
	waitText(t, bctx, ".error", "only digits, the letters a to f, dots and colons")
	if got := text(t, bctx, "#bans"); got != "No IP starting with “198.51.100.%” is banned." {
		t.Errorf("bans after a refused search: %q", got)
	}
}

// TestOperatorCreatesAnAccount: the create form refuses what the store and the password rules
// refuse, in their words, keeping what was typed; a created account works through the proxy at once.
// TestOperatorPagesThroughAccounts: a network larger than a page is listed a page at a time, in the
// order of usernames whatever their case, and the next page follows a link; the plans page counts
// every account.
func TestOperatorPagesThroughAccounts(t *testing.T) {
	n := startNetwork(t)
	n.account(t, "ops", "ops-password", "big")
	hash := mustAccountHash(t, n, "ops")
	bulk := make([]domain.BulkAccount, 205)
	for i := range bulk {
		name := fmt.Sprintf("user%03d", i)
		if i == 204 {
			name = "User999" // sorts among the others whatever its case
		}
		bulk[i] = domain.BulkAccount{Account: domain.NewAccount{Username: name, PasswordHash: hash, Plan: "small", Confirmed: true}}
	}
	if err := n.store.ImportAccounts(t.Context(), bulk); err != nil {
		t.Fatal(err)
	}
	ctx := browser(t)
	signIn(t, ctx, n.base, "ops", "ops-password")
	run(t, ctx, "open the accounts", chromedp.Navigate(n.base+"/ops/accounts"), chromedp.WaitVisible(chromedp.CSS(`#matches`)))
	waitText(t, ctx, "#matches", "Accounts: 200 on this page.")
	if got := count(t, ctx, "#accounts tbody tr"); got != 200 {
		t.Errorf("the first page lists %d accounts, want 200", got)
	}
	if count(t, ctx, "#account-ops") != 1 || count(t, ctx, "#account-user198") != 1 || count(t, ctx, "#account-user199") != 0 {
		t.Error("the first page is not ops then user000 to user198")
	}
	run(t, ctx, "next page", chromedp.Click(chromedp.CSS(`#next`)))
	waitText(t, ctx, "#matches", "after user198: 6 on this page.")
	if got := text(t, ctx, "#accounts tbody"); !strings.Contains(got, "user199") || !strings.Contains(got, "User999") || strings.Contains(got, "user198") {
		t.Errorf("the second page lists %q, want user199 to user203 and User999", got)
	}
	if count(t, ctx, "#next") != 0 {
		t.Error("the last page links to a next one")
	}
	run(t, ctx, "search by prefix, any case", chromedp.Navigate(n.base+"/ops/accounts?q=USER19"))
	waitText(t, ctx, "#matches", "starts with “USER19”: 10 on this page.")
	run(t, ctx, "plans", chromedp.Navigate(n.base+"/ops/plans"), chromedp.WaitVisible(chromedp.CSS(`#plan-small`)))
	if got := text(t, ctx, "#plan-small .num"); got != "205" {
		t.Errorf("accounts on small: %q, want 205", got)
	}
}

func TestOperatorCreatesAnAccount(t *testing.T) {
	n := startNetwork(t)
	n.account(t, "ops", "ops-password", "big")
	ctx := browser(t)
	signIn(t, ctx, n.base, "ops", "ops-password")

	create := func(username, password, plan string) {
		t.Helper()
		run(t, ctx, "create "+username,
			chromedp.Navigate(n.base+"/ops/accounts"),
			chromedp.SendKeys(chromedp.CSS(`#new-username`), username),
			chromedp.SendKeys(chromedp.CSS(`#new-password`), password),
			chromedp.SetValue(chromedp.CSS(`#new-plan`), plan),
			chromedp.Click(chromedp.CSS(`#create-account input[value=us-ca]`)),
			chromedp.Click(chromedp.CSS(`#create`)),
		)
	}
	create("carol", "short", "small")
	waitText(t, ctx, ".error", "Password must be at least 8 characters long.")
	if got, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(`#new-username`))); err != nil || got != "carol" {
		t.Errorf("the refused form lost the username: %q, %v", got, err)
	}
	create("ops", "a-good-password", "small")
	waitText(t, ctx, ".error", "already")
	create("carol-session-1", "a-good-password", "small")
	waitText(t, ctx, ".error", "steering parameter")

	create("carol", "carol-password", "small")
	waitText(t, ctx, ".notice", "Account carol created on plan small.")
	if got := text(t, ctx, "#account-carol"); !strings.Contains(got, "us-ca") || !strings.Contains(got, "active") {
		t.Errorf("carol's row: %q", got)
	}
	if got, why := n.proxyGet(t, n.node.ProxyAddr("us-ca"), "carol", "carol-password", "127.0.0.1"); got != http.StatusOK {
		t.Errorf("carol through us-ca right after creation: %d %s (the local node refreshes at once)", got, why)
	}
}

// TestOperatorChangesAPlanLimit: a customer meets the plan's IP limit; the operator raises it on
// the plans page (after a refused value); the customer can add one more IP and meets the new limit.
func TestOperatorChangesAPlanLimit(t *testing.T) {
	n := startNetwork(t)
	n.account(t, "ops", "ops-password", "big")
	n.account(t, "alice", "alice-password", "small", "us-ca")
	ctx := browser(t)
	addIP := func(ip string) {
		t.Helper()
		run(t, ctx, "add "+ip, chromedp.Navigate(n.base+"/ips"), chromedp.SendKeys(chromedp.CSS(`#ip`), ip), chromedp.Submit(chromedp.CSS(`#ip`)))
	}

	signIn(t, ctx, n.base, "alice", "alice-password")
	addIP("127.0.0.8")
	waitText(t, ctx, ".notice", "127.0.0.8 is authorized")
	addIP("127.0.0.9")
	waitText(t, ctx, ".error", `Your plan "small" allows 1 IP address; upgrade your plan to add more.`)
	signOut(t, ctx)

	small, err := n.store.GetPlan(t.Context(), "small")
	if err != nil {
		t.Fatal(err)
	}
	small.Rate, small.Speed = 7, 3_000_000 // limits the row shows and must keep when another changes
	if err := n.store.UpdatePlan(t.Context(), small); err != nil {
		t.Fatal(err)
	}
	signIn(t, ctx, n.base, "ops", "ops-password")
	run(t, ctx, "open plans", chromedp.Navigate(n.base+"/ops/plans"), chromedp.WaitVisible(chromedp.CSS(`#plan-small`)))
	if got := text(t, ctx, "#plan-small .num"); got != "1" {
		t.Errorf("accounts on small: %q, want 1", got)
	}
	run(t, ctx, "a refused limit",
		chromedp.SetValue(chromedp.CSS(`#plan-small input[name=ips]`), "two"),
		chromedp.Click(chromedp.CSS(`#edit-small button`)),
	)
	waitText(t, ctx, ".error", "Plan small not saved: ips must be a whole number, 0 or more.")
	run(t, ctx, "raise small's IPs to 2 and its bandwidth to 20GB",
		chromedp.SetValue(chromedp.CSS(`#plan-small input[name=ips]`), "2"),
		chromedp.SetValue(chromedp.CSS(`#plan-small input[name=bandwidth]`), "20GB"),
		chromedp.Click(chromedp.CSS(`#edit-small button`)),
	)
	waitText(t, ctx, ".notice", "Plan small updated")
	for sel, want := range map[string]string{`#plan-small input[name=ips]`: "2", `#plan-small input[name=bandwidth]`: "20GB",
		`#plan-small input[name=rate]`: "7", `#plan-small input[name=speed]`: "3MB", `#plan-small input[name=connections]`: "0"} {
		if got, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(sel))); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", sel, got, err, want)
		}
	}

	run(t, ctx, "create a plan with a wrong size",
		chromedp.SendKeys(chromedp.CSS(`#new-name`), "pro"),
		chromedp.SetValue(chromedp.CSS(`#new-bandwidth`), "10 parsecs"),
		chromedp.Click(chromedp.CSS(`#create`)),
	)
	waitText(t, ctx, ".error", "bandwidth must be a size such as 10GB")
	if got := text(t, ctx, ".field-error"); !strings.Contains(got, "must be a size") {
		t.Errorf("field message beside the bandwidth: %q", got)
	}
	run(t, ctx, "create plan pro",
		chromedp.SetValue(chromedp.CSS(`#new-bandwidth`), "500MiB"),
		chromedp.SetValue(chromedp.CSS(`#new-proxies`), "5"),
		chromedp.Click(chromedp.CSS(`#create`)),
	)
	waitText(t, ctx, ".notice", "Plan pro created.")
	if got := text(t, ctx, "#plan-pro"); !strings.Contains(got, "pro") {
		t.Errorf("plan pro row: %q", got)
	}
	if p, err := n.store.GetPlan(t.Context(), "pro"); err != nil || p.MonthlyBandwidth != 500<<20 || p.MaxProxies != 5 {
		t.Errorf("stored plan pro: %+v, %v", p, err)
	}
	run(t, ctx, "create plan pro again", chromedp.SendKeys(chromedp.CSS(`#new-name`), "pro"), chromedp.Click(chromedp.CSS(`#create`)))
	waitText(t, ctx, ".error", `Plan "pro" already exists.`)
	screenshot(t, ctx, "ops-plans")
	signOut(t, ctx)

	signIn(t, ctx, n.base, "alice", "alice-password")
	if got := text(t, ctx, "#main"); !strings.Contains(got, "1 of 2") || !strings.Contains(got, "of 20 GB") {
		t.Errorf("alice's account page after the plan change: %q", got)
	}
	addIP("127.0.0.9")
	waitText(t, ctx, ".notice", "127.0.0.9 is authorized")
	addIP("127.0.0.10")
	waitText(t, ctx, ".error", `Your plan "small" allows 2 IP addresses; upgrade your plan to add more.`)
}

// TestOperatorLiftsABan: a client IP banned for failed logins is refused by the API, the dashboard
// and the proxies; the operator unbans it; it is served again everywhere.
func TestOperatorLiftsABan(t *testing.T) {
	n := startNetwork(t)
	n.account(t, "ops", "ops-password", "big")
	n.account(t, "alice", "alice-password", "small", "us-ca")
	const banned = "127.0.0.9"
	c := n.client(banned)
	for i := 0; n.apiStatus(t, c, "alice", "wrong-password") != http.StatusForbidden; i++ {
		if i > 20 {
			t.Fatal("20 failed logins did not ban")
		}
	}
	if got := n.apiStatus(t, c, "alice", "alice-password"); got != http.StatusForbidden {
		t.Errorf("banned IP, right password: API %d, want 403", got)
	}
	if got, why := n.proxyGet(t, n.node.ProxyAddr("us-ca"), "alice", "alice-password", banned); got != http.StatusForbidden || why != "banned" {
		t.Errorf("banned IP through the proxy: %d %q, want 403 banned", got, why)
	}
	signin := func() int {
		return statusOf(c.PostForm(n.base+"/signin", url.Values{"username": {"alice"}, "password": {"alice-password"}}))
	}
	if got := signin(); got != http.StatusForbidden {
		t.Errorf("banned IP signs in: %d, want 403", got)
	}
	eventually(t, "the ban reaches the store", func() error {
		bans, err := n.store.ListBans(t.Context())
		if err != nil || len(bans) != 1 {
			return fmt.Errorf("stored bans %v, %v", bans, err)
		}
		return nil
	})

	ctx := browser(t)
	signIn(t, ctx, n.base, "ops", "ops-password")
	run(t, ctx, "open bans", chromedp.Navigate(n.base+"/ops/bans"), chromedp.WaitVisible(chromedp.CSS(`#bans`)))
	row := `[id="ban-` + banned + `"]`
	if got := text(t, ctx, row); !strings.Contains(got, "auth-failure") || !strings.Contains(got, "more minutes") {
		t.Errorf("the ban's row: %q, want the reason and the time left", got)
	}
	screenshot(t, ctx, "ops-bans")
	run(t, ctx, "unban", chromedp.Click(chromedp.CSS(row+` button`)))
	waitText(t, ctx, ".notice", banned+" is no longer banned")
	if got := text(t, ctx, "#bans"); got != "No IP is banned." {
		t.Errorf("bans after unbanning: %q", got)
	}

	eventually(t, "the unbanned IP uses the API", func() error {
		if got := n.apiStatus(t, c, "alice", "alice-password"); got != http.StatusOK {
			return fmt.Errorf("API %d", got)
		}
		return nil
	})
	if got := signin(); got != http.StatusOK { // redirected to the account page
		t.Errorf("the unbanned IP signs in: %d", got)
	}
	eventually(t, "the unbanned IP uses the proxy", n.answers(t, n.node.ProxyAddr("us-ca"), "alice", "alice-password", banned, http.StatusOK, ""))
	time.Sleep(300 * time.Millisecond) // three sync intervals: the lift holds, no node brings the ban back
	if got := n.apiStatus(t, c, "alice", "alice-password"); got != http.StatusOK {
		t.Errorf("the lifted ban came back: API %d", got)
	}
}

// TestOperatorSeesTheExitBoard: the proxy servers page shows each exit as its node reported it,
// with the proxy server's traffic; when the health target goes away the exits show DOWN with the
// checks' error.
func TestOperatorSeesTheExitBoard(t *testing.T) {
	target := httptest.NewServer(http.NotFoundHandler()) // a GET answered below 500: the exit is up
	t.Cleanup(target.Close)
	n := startNetworkWith(t, func(c *config.Config) {
		c.Health = config.Health{Target: target.URL, Interval: config.Duration(100 * time.Millisecond),
			Timeout: config.Duration(100 * time.Millisecond), Fall: 2, Rise: 1}
	}, slog.New(slog.DiscardHandler))
	n.account(t, "ops", "ops-password", "big")
	n.account(t, "alice", "alice-password", "small", "us-ca")
	for range 3 {
		eventually(t, "alice through us-ca", n.answers(t, n.node.ProxyAddr("us-ca"), "alice", "alice-password", "127.0.0.1", http.StatusOK, ""))
	}
	ctx := browser(t)
	signIn(t, ctx, n.base, "ops", "ops-password")
	board := func(want ...string) string {
		t.Helper()
		var got string
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			run(t, ctx, "open proxy servers", chromedp.Navigate(n.base+"/ops/proxies"), chromedp.WaitVisible(chromedp.CSS(`#proxy-us-ca`)))
			got = text(t, ctx, "#proxy-us-ca")
			if containsAll(got, want...) {
				return got
			}
		}
		t.Fatalf("us-ca's board says %q, want %q", got, want)
		return ""
	}
	got := board("2 of 2", "3 requests", "127.0.0.2", "127.0.0.3", "up")
	if !strings.Contains(got, "us-ca") || strings.Contains(got, "DOWN") {
		t.Errorf("the board before the target went away: %q", got)
	}
	if got := text(t, ctx, "#proxy-de"); !strings.Contains(got, "127.0.0.4") || !strings.Contains(got, "0 requests") {
		t.Errorf("de's board: %q", got)
	}

	target.Close()
	got = board("0 of 2", "DOWN", "refused")
	if n := strings.Count(got, "DOWN"); n != 2 {
		t.Errorf("%d exits DOWN on %q, want 2", n, got)
	}
	if count(t, ctx, "#proxy-us-ca td.health.down") != 2 {
		t.Error("the DOWN cells are not marked for the eye")
	}
	screenshot(t, ctx, "ops-proxies")
}

// cells is the text of sel with its cells and lines joined by single spaces.
func cells(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return strings.Join(strings.Fields(text(t, ctx, sel)), " ")
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// TestOperatorSeesNetworkUsage: the usage page charts bytes per day per proxy server over the last
// 30 days, every account together, with a table of the same figures; a period can be chosen.
func TestOperatorSeesNetworkUsage(t *testing.T) {
	n := startNetwork(t)
	n.account(t, "ops", "ops-password", "big")
	n.account(t, "alice", "alice-password", "big", "us-ca", "de")
	n.account(t, "bob", "bob-password", "big", "us-ca")
	ctx := t.Context()
	alice, _ := n.store.GetAccount(ctx, "alice")
	bob, _ := n.store.GetAccount(ctx, "bob")
	today := time.Now().UTC()
	day := func(ago int) string { return today.AddDate(0, 0, -ago).Format(time.DateOnly) }
	// What nodes flushed on earlier days: two accounts through us-ca, one through de.
	if err := n.store.AddUsage(ctx, "seed", map[domain.UsageKey]domain.UsageCounts{
		{AccountID: alice.ID, Proxy: "us-ca", Day: day(1)}: {BytesIn: 500_000_000, BytesOut: 1_000_000_000, Requests: 10},
		{AccountID: bob.ID, Proxy: "us-ca", Day: day(1)}:   {BytesOut: 1_000_000_000, Requests: 5},
		{AccountID: alice.ID, Proxy: "de", Day: day(1)}:    {BytesOut: 700_000_000, Tunnels: 2},
		{AccountID: alice.ID, Proxy: "de", Day: day(5)}:    {BytesOut: 300_000_000, Tunnels: 1},
		{AccountID: alice.ID, Proxy: "de", Day: day(40)}:   {BytesOut: 9_000_000_000, Tunnels: 1}, // before the period
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "bob through us-ca", n.answers(t, n.node.ProxyAddr("us-ca"), "bob", "bob-password", "127.0.0.1", http.StatusOK, ""))
	b := browser(t)
	signIn(t, b, n.base, "ops", "ops-password")
	row := func(d string) string { return `[id="day-` + d + `"]` }
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		run(t, b, "open usage", chromedp.Navigate(n.base+"/ops/usage"), chromedp.WaitVisible(chromedp.CSS(`#usage`)))
		if got := cells(t, b, row(day(0))); !strings.HasSuffix(got, " 0 B") || time.Now().After(deadline) {
			break // today's request has been flushed (or the check below reports it)
		}
	}
	if got := text(t, b, "#usage thead"); !containsAll(got, "de", "us-ca", "Total") {
		t.Errorf("table head %q, want a column per proxy server", got)
	}
	if got := count(t, b, "#usage tbody tr"); got != 30 {
		t.Errorf("%d days in the table, want 30", got)
	}
	if got := cells(t, b, row(day(1))); got != day(1)+" 700 MB 2.5 GB 3.2 GB" {
		t.Errorf("yesterday's row %q, want de 700 MB, us-ca 2.5 GB, total 3.2 GB", got)
	}
	if got := cells(t, b, row(day(0))); strings.HasSuffix(got, " 0 B") {
		t.Errorf("today's row %q, want bob's request through us-ca", got)
	}
	// de: 700 MB + 300 MB, the 40-day-old 9 GB left out; us-ca: 2.5 GB and today's request.
	if got := cells(t, b, "#totals"); !strings.HasPrefix(got, "Total 1 GB 2.5 GB 3.5 GB") {
		t.Errorf("totals %q, want de 1 GB, us-ca 2.5 GB, 3.5 GB in all", got)
	}
	desc, err := chromedp.Run(b, chromedp.TextContent(chromedp.CSS("svg.chart desc")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(desc, "over 30 days") || !strings.Contains(desc, "the busiest, "+day(1)) {
		t.Errorf("chart description %q", desc)
	}
	if got := count(t, b, "svg.chart rect"); got < 4 { // three bars' parts and two legend keys at least
		t.Errorf("%d rects in the chart", got)
	}
	screenshot(t, b, "ops-usage")

	run(t, b, "choose a period", chromedp.Navigate(n.base+"/ops/usage?from="+day(6)+"&to="+day(4)))
	if got := count(t, b, "#usage tbody tr"); got != 3 {
		t.Errorf("%d days from %s to %s, want 3", got, day(6), day(4))
	}
	if got := cells(t, b, "#totals"); got != "Total 300 MB 300 MB" {
		t.Errorf("totals of the chosen period %q, want de's 300 MB only", got)
	}
	run(t, b, "a wrong date", chromedp.Navigate(n.base+"/ops/usage?from=yesterday"))
	waitText(t, b, ".error", "Dates are YYYY-MM-DD")
}

// TestOperatorAnswersAnAbuseComplaint: the abuse page names the accounts that used an exit in the
// hours around a time, with their sub-accounts and counts, and nobody else.
func TestOperatorAnswersAnAbuseComplaint(t *testing.T) {
	n := startNetwork(t)
	n.account(t, "ops", "ops-password", "big")
	n.account(t, "alice", "alice-password", "big", "us-ca")
	n.account(t, "bob", "bob-password", "big", "us-ca")
	ctx := t.Context()
	alice, _ := n.store.GetAccount(ctx, "alice")
	bob, _ := n.store.GetAccount(ctx, "bob")
	h := time.Date(2026, 11, 30, 14, 0, 0, 0, time.UTC)
	e2, e3 := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")
	if err := n.store.AddUsage(ctx, "seed", map[domain.UsageKey]domain.UsageCounts{
		{AccountID: alice.ID, Proxy: "us-ca", Day: "2026-11-30", Exit: e2, Hour: h.Unix()}:                   {BytesOut: 2_000_000, Requests: 12},
		{AccountID: bob.ID, Proxy: "us-ca", Day: "2026-11-30", Exit: e3, Hour: h.Unix()}:                     {BytesOut: 5_000, Tunnels: 1},
		{AccountID: bob.ID, Proxy: "us-ca", Day: "2026-11-30", Exit: e2, Hour: h.Add(-5 * time.Hour).Unix()}: {Requests: 1},
	}); err != nil {
		t.Fatal(err)
	}
	b := browser(t)
	signIn(t, b, n.base, "ops", "ops-password")
	run(t, b, "open the abuse page", chromedp.Navigate(n.base+"/ops/who"),
		chromedp.SendKeys(chromedp.CSS(`#exit`), "127.0.0.2"),
		chromedp.SetValue(chromedp.CSS(`#at`), "2026-11-30T14:32"),
		chromedp.Click(chromedp.CSS(`#ask`)), chromedp.WaitVisible(chromedp.CSS(`#who`)))
	if got := cells(t, b, "#who tbody"); got != "2026-11-30 14:00 us-ca alice — 12 0 0 B 2 MB" {
		t.Errorf("who used 127.0.0.2 around 14:32: %q, want alice's hour only (bob's was at 09:00)", got)
	}
	screenshot(t, b, "ops-who")
	run(t, b, "a time nobody used it", chromedp.Navigate(n.base+"/ops/who?exit=127.0.0.2&at=2026-11-30T20:00&window=1h"),
		chromedp.WaitVisible(chromedp.CSS(`#nobody`)))
	run(t, b, "not an IP", chromedp.Navigate(n.base+"/ops/who?exit=nope&at=2026-11-30T20:00"))
	waitText(t, b, ".error", "is not an IP address")
}

// TestCustomerIsRefusedOperatorPages: an account not in dashboard.operators sees no operator link
// and gets 403 on every operator page, for reading and for changing, with no operator data.
func TestCustomerIsRefusedOperatorPages(t *testing.T) {
	n := startNetwork(t)
	n.account(t, "alice", "alice-password", "small", "us-ca")
	n.account(t, "bob", "bob-password", "small")
	ctx := browser(t)
	signIn(t, ctx, n.base, "alice", "alice-password")
	if got := count(t, ctx, `a[href^="/ops/"]`); got != 0 {
		t.Errorf("a customer sees %d operator links", got)
	}
	run(t, ctx, "open an operator page", chromedp.Navigate(n.base+"/ops/accounts"))
	if got := text(t, ctx, "h1"); got != "Forbidden" {
		t.Errorf("h1 %q, want Forbidden", got)
	}
	if got := text(t, ctx, ".error"); got != "This page is for the network's operators." {
		t.Errorf("error %q", got)
	}
	if got := text(t, ctx, "#main"); strings.Contains(got, "bob") {
		t.Error("the refusal shows other accounts")
	}

	// The same with a plain client, for every page and every change, with a valid CSRF token.
	c := n.client("127.0.0.1")
	resp, err := c.PostForm(n.base+"/signin", url.Values{"username": {"alice"}, "password": {"alice-password"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(body)
	if m == nil {
		t.Fatal("no CSRF token on the account page")
	}
	for _, path := range []string{"/ops/", "/ops/accounts", "/ops/plans", "/ops/proxies", "/ops/bans", "/ops/usage", "/ops/who?exit=127.0.0.2&at=2026-01-01T00:00"} {
		if got := statusOf(c.Get(n.base + path)); got != http.StatusForbidden {
			t.Errorf("GET %s as a customer: %d, want 403", path, got)
		}
	}
	for path, form := range map[string]url.Values{
		"/ops/accounts": {"action": {"disable"}, "username": {"bob"}},
		"/ops/plans":    {"action": {"edit"}, "name": {"small"}, "proxies": {"99"}, "subs": {"9"}, "ips": {"99"}, "hostnames": {"9"}, "bandwidth": {"0"}},
		"/ops/bans":     {"action": {"lift"}, "ip": {"127.0.0.9"}},
	} {
		form.Set("csrf", string(m[1]))
		if got := statusOf(c.PostForm(n.base+path, form)); got != http.StatusForbidden {
			t.Errorf("POST %s as a customer: %d, want 403", path, got)
		}
	}
	if bob, err := n.store.GetAccount(t.Context(), "bob"); err != nil || bob.Disabled {
		t.Errorf("bob after a customer's disable: %+v, %v", bob.Disabled, err)
	}
	if p, err := n.store.GetPlan(t.Context(), "small"); err != nil || p.MaxIPs != 1 {
		t.Errorf("plan small after a customer's edit: %+v, %v", p, err)
	}
}
