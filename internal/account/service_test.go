package account_test

import (
	"context"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"

	"github.com/exitmesh/exitmesh/internal/account"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/store"
)

// network is a store with plan "small", two proxy servers, and accounts: alice (confirmed, with the
// sub-account alicebot), bob (confirmed, with bobbot) and dora (unconfirmed).
type network struct {
	st      domain.Store
	svc     *account.Service
	changes int
}

func newNetwork(t *testing.T, allowance int) *network {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "exitmesh.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	must(t, st.CreatePlan(ctx, domain.Plan{Name: "small", MaxIPs: 5, MaxSubs: 2, MaxProxies: 2, MaxHostnames: 1}))
	for _, p := range []domain.ProxyServer{{Name: "us-ca", Address: "us-ca.example.net:31280", Country: "US"}, {Name: "de", Address: "de.example.net:31280", Country: "DE"}} {
		must(t, st.PutProxyServer(ctx, p))
	}
	for _, a := range []domain.NewAccount{
		{Username: "alice", PasswordHash: "x", Plan: "small", Confirmed: true, Proxies: []string{"us-ca", "de"},
			IPs: []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")}},
		{Username: "bob", PasswordHash: "x", Plan: "small", Confirmed: true},
		{Username: "dora", PasswordHash: "x", Plan: "small"},
	} {
		if _, err := st.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	for owner, sub := range map[string]string{"alice": "alicebot", "bob": "bobbot"} {
		if _, err := st.CreateSubAccount(ctx, owner, domain.NewSubAccount{Username: sub, PasswordHash: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	n := &network{st: st}
	n.svc = account.New(account.Config{Store: st, UnconfirmedAllowance: allowance,
		Changed: func(context.Context) { n.changes++ }})
	return n
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (n *network) open(t *testing.T, username string) *account.Caller {
	t.Helper()
	c, err := n.svc.Open(context.Background(), username, false)
	if err != nil {
		t.Fatalf("open %s: %v", username, err)
	}
	return c
}

// wantCode checks that err is a domain error with the code (and, when msg is not "", the message).
func wantCode(t *testing.T, what string, err error, code, msg string) {
	t.Helper()
	if got := domain.ErrorCode(err); got != code || (msg != "" && domain.ErrorMessage(err) != msg) {
		t.Errorf("%s: %v (%s), want %s %q", what, err, got, code, msg)
	}
}

// TestUnconfirmedAllowanceCountsChangesNotReads: an unconfirmed account's reads are free, its changes
// count; past the allowance everything is refused with the 402 of API.md row 8 and a wait.
func TestUnconfirmedAllowanceCountsChangesNotReads(t *testing.T) {
	n := newNetwork(t, 2)
	ctx := context.Background()
	for range 10 {
		if _, err := n.svc.Open(ctx, "dora", true); err != nil {
			t.Fatalf("reading as an unconfirmed account: %v", err)
		}
	}
	for _, ip := range []string{"", "192.0.2.7"} { // "" adds the caller's own address
		c := n.open(t, "dora")
		if _, err := n.svc.AddIP(ctx, c, "", ip, netip.MustParseAddr("::ffff:192.0.2.44")); err != nil {
			t.Fatalf("change %q within the allowance: %v", ip, err)
		}
	}
	c, err := n.svc.Open(ctx, "dora", true)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Account.IPs; !slices.Equal(got, []netip.Addr{netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("192.0.2.44")}) {
		t.Errorf("IPs %v, want the caller's address (unmapped) and 192.0.2.7", got)
	}
	_, err = n.svc.Open(ctx, "dora", false)
	wantCode(t, "third change", err, domain.ELIMIT, "")
	var de *domain.Error
	if domain.ErrorCode(err) == domain.ELIMIT {
		de = err.(*domain.Error)
		if de.RetryAfter <= 0 {
			t.Errorf("the block carries no wait: %+v", de)
		}
	}
	_, err = n.svc.Open(ctx, "dora", true)
	wantCode(t, "reading during the block", err, domain.ELIMIT, "")
	if _, err := n.svc.Open(ctx, "alice", false); err != nil {
		t.Errorf("a confirmed account is never counted: %v", err)
	}
}

// TestActingOnASubAccount: username=<sub> reads and changes that sub-account's lists, within its
// account's; unknown names are 404, others' sub-accounts and the account itself 403.
func TestActingOnASubAccount(t *testing.T) {
	n := newNetwork(t, 0)
	ctx := context.Background()
	alice := n.open(t, "alice")
	from := netip.MustParseAddr("198.51.100.9")

	if _, err := n.svc.AddIP(ctx, alice, "alicebot", "192.0.2.2", from); err != nil {
		t.Fatalf("add one of alice's IPs to alicebot: %v", err)
	}
	_, err := n.svc.AddIP(ctx, alice, "alicebot", "192.0.2.2", from)
	wantCode(t, "add it again", err, domain.ECONFLICT, "IP address is already authorized.")
	_, err = n.svc.AddIP(ctx, alice, "alicebot", "192.0.2.99", from)
	wantCode(t, "an IP that is not alice's", err, domain.EINVALID, "")
	_, err = n.svc.AddIP(ctx, alice, "alicebot", "nope", from)
	if domain.ErrorCode(err) != domain.EINVALID || len(domain.ErrorFields(err)["ip"]) != 1 {
		t.Errorf("malformed IP: %v, want a form error on ip", err)
	}
	ips, err := n.svc.IPs(ctx, alice, "alicebot")
	if err != nil || !slices.Equal(ips, []netip.Addr{netip.MustParseAddr("192.0.2.2")}) {
		t.Errorf("alicebot's IPs: %v %v", ips, err)
	}
	ips, _ = n.svc.IPs(ctx, alice, "alice") // the account's own name is the account
	if len(ips) != 2 {
		t.Errorf("alice's IPs by her own name: %v", ips)
	}

	_, err = n.svc.IPs(ctx, alice, "bobbot")
	wantCode(t, "another account's sub-account", err, domain.EFORBIDDEN, "")
	_, err = n.svc.IPs(ctx, alice, "bob")
	wantCode(t, "another account", err, domain.EFORBIDDEN, "")
	_, err = n.svc.IPs(ctx, alice, "nobody")
	wantCode(t, "unknown name", err, domain.ENOTFOUND, "Sub-account not found.")
	err = n.svc.DeleteSub(ctx, alice, "alice")
	wantCode(t, "sub/delete of the account itself", err, domain.EFORBIDDEN, "")

	if _, err := n.svc.AddProxy(ctx, alice, "alicebot", "de.example.net:31280"); err != nil {
		t.Fatalf("add de to alicebot by address: %v", err)
	}
	ps, _ := n.svc.Proxies(ctx, alice, "alicebot")
	if len(ps) != 1 || ps[0].Name != "de" {
		t.Errorf("alicebot's proxies: %v", ps)
	}
	err = n.svc.RemoveProxy(ctx, alice, "alicebot", "us-ca")
	wantCode(t, "remove a proxy alicebot does not have", err, domain.EINVALID, `Proxy server "us-ca.example.net:31280" is not on your sub-account alicebot.`)
	must(t, n.svc.RemoveIP(ctx, alice, "alicebot", "192.0.2.2"))

	// The account's own lists are untouched by all this.
	a := n.open(t, "alice")
	if len(a.Account.IPs) != 2 || len(a.Account.Proxies) != 2 {
		t.Errorf("alice's own lists changed: %v %v", a.Account.IPs, a.Account.Proxies)
	}
	bobbot, _ := n.st.ListSubAccounts(ctx, "bob")
	if len(bobbot[0].IPs) != 0 || len(bobbot[0].Proxies) != 0 {
		t.Errorf("bobbot changed: %+v", bobbot[0])
	}
}

// TestChangedFollowsEveryChangeAndNothingElse: the node's view is refreshed after each change made,
// never after a read or a refusal.
func TestChangedFollowsEveryChangeAndNothingElse(t *testing.T) {
	n := newNetwork(t, 0)
	ctx := context.Background()
	alice := n.open(t, "alice")
	pw := "a-good-password"
	steps := []struct {
		what    string
		run     func() error
		changes int
	}{
		{"list IPs", func() error { _, err := n.svc.IPs(ctx, alice, ""); return err }, 0},
		{"add an IP", func() error {
			_, err := n.svc.AddIP(ctx, alice, "", "192.0.2.3", netip.Addr{})
			return err
		}, 1},
		{"add it again (refused)", func() error {
			_, err := n.svc.AddIP(ctx, alice, "", "192.0.2.3", netip.Addr{})
			if err == nil {
				t.Error("a second add of one IP was accepted")
			}
			return nil
		}, 0},
		{"create a sub-account", func() error {
			_, err := n.svc.CreateSub(ctx, alice, account.SubInput{Username: "alicebot2", Password: &pw})
			return err
		}, 1},
		{"create it again (refused)", func() error {
			_, err := n.svc.CreateSub(ctx, alice, account.SubInput{Username: "alicebot2", Password: &pw})
			if len(domain.ErrorFields(err)["username"]) != 1 {
				t.Errorf("a taken username: %v, want a form error on username", err)
			}
			return nil
		}, 0},
		{"delete it", func() error { return n.svc.DeleteSub(ctx, alice, "alicebot2") }, 1},
		{"usage", func() error { _, err := n.svc.Usage(ctx, alice, "alicebot", "", ""); return err }, 0},
	}
	for _, s := range steps {
		before := n.changes
		if err := s.run(); err != nil {
			t.Fatalf("%s: %v", s.what, err)
		}
		if got := n.changes - before; got != s.changes {
			t.Errorf("%s: %d refreshes, want %d", s.what, got, s.changes)
		}
	}
}

// TestUsageOfASubAccount: usage with username=<sub> has only that sub-account's rows.
func TestUsageOfASubAccount(t *testing.T) {
	n := newNetwork(t, 0)
	ctx := context.Background()
	alice := n.open(t, "alice")
	bot, err := n.st.GetLogin(ctx, "alicebot")
	must(t, err)
	day := "2026-12-01"
	must(t, n.st.AddUsage(ctx, "b1", map[domain.UsageKey]domain.UsageCounts{
		{AccountID: alice.Account.ID, Proxy: "us-ca", Day: day}:                   {BytesIn: 10, Requests: 1},
		{AccountID: alice.Account.ID, SubID: bot.SubID, Proxy: "us-ca", Day: day}: {BytesIn: 7, Requests: 2},
	}))
	all, err := n.svc.Usage(ctx, alice, "", day, day)
	must(t, err)
	sub, err := n.svc.Usage(ctx, alice, "alicebot", day, day)
	must(t, err)
	if len(all.Rows) != 2 || len(sub.Rows) != 1 || sub.Rows[0].SubAccount != "alicebot" || sub.Rows[0].BytesIn != 7 {
		t.Errorf("usage: all %+v, alicebot %+v", all.Rows, sub.Rows)
	}
	_, err = n.svc.Usage(ctx, alice, "", "12/01/2026", "")
	if len(domain.ErrorFields(err)["from"]) != 1 {
		t.Errorf("a malformed date: %v, want a form error on from", err)
	}
}

// TestSubAccountHostnames: username=<sub> on the hostname endpoints gives a sub-account some of its
// account's hostnames.
func TestSubAccountHostnames(t *testing.T) {
	n := newNetwork(t, 0)
	ctx := context.Background()
	must(t, n.st.AddHostname(ctx, "alice", "bot.example.com", netip.MustParseAddr("198.51.100.9")))
	alice := n.open(t, "alice")
	h, err := n.svc.AddHostname(ctx, alice, "alicebot", "BOT.example.com")
	if err != nil || h.Name != "bot.example.com" || h.IP != netip.MustParseAddr("198.51.100.9") {
		t.Fatalf("AddHostname for alicebot = %+v, %v", h, err)
	}
	_, err = n.svc.AddHostname(ctx, alice, "alicebot", "bot.example.com")
	wantCode(t, "add it again", err, domain.ECONFLICT, "Hostname is already authorized.")
	_, err = n.svc.AddHostname(ctx, alice, "alicebot", "other.example.com")
	wantCode(t, "a hostname alice lacks", err, domain.EINVALID, "")
	hs, err := n.svc.Hostnames(ctx, alice, "alicebot")
	if err != nil || len(hs) != 1 || hs[0].Name != "bot.example.com" {
		t.Errorf("alicebot's hostnames = %+v, %v", hs, err)
	}
	must(t, n.svc.RemoveHostname(ctx, alice, "alicebot", "bot.example.com"))
	err = n.svc.RemoveHostname(ctx, alice, "alicebot", "bot.example.com")
	wantCode(t, "remove it again", err, domain.EINVALID, "Hostname is not authorized.")
	if hs, _ := n.svc.Hostnames(ctx, n.open(t, "alice"), ""); len(hs) != 1 {
		t.Errorf("alice's own hostnames changed: %+v", hs)
	}
}
