package client_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/client"
	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/node"
)

// realAPI starts a real node (SQLite, HTTPS API with its generated certificate) with one account,
// alice, and returns a client of it as alice.
func realAPI(t *testing.T, password string) (*client.Client, func(pw string) *client.Client) {
	c, as, _ := realAPIWithToken(t, password)
	return c, as
}

// realAPIWithToken is realAPI, with a maker of clients that authenticate with a token.
func realAPIWithToken(t *testing.T, password string) (*client.Client, func(pw string) *client.Client, func(token string) *client.Client) {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Parse(fmt.Appendf(nil, `
store: sqlite:%s/exitmesh.db
api: {listen: "127.0.0.1:0"}
metrics: {listen: "off"}
proxies:
  - {name: us-ca, listen: "127.0.0.1:0", address: "us-ca.example.net:31280", country: US, exits: [{ip: 127.0.0.2}]}
  - {name: world, listen: "127.0.0.1:0", address: "world.example.net:31281", exits: [{ip: 127.0.0.3}]}
plans: [{name: small, proxies: 1, subs: 2, ips: 2, hostnames: 1, bandwidth: 1GB, tokens: 2}]
`, dir))
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.Close(ctx)
	})
	hash, _ := auth.HashPassword("alice-password")
	if _, err := n.Store().CreateAccount(context.Background(), domain.NewAccount{Username: "alice", PasswordHash: hash,
		Plan: "small", Confirmed: true}); err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(filepath.Join(dir, "exitmesh-api.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	as := func(pw string) *client.Client {
		c, err := client.New("https://"+n.APIAddr(), "alice", pw, client.WithRootCAs(pool))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	withToken := func(token string) *client.Client {
		c, err := client.NewWithToken("https://"+n.APIAddr(), token, client.WithRootCAs(pool))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return as(password), as, withToken
}

func TestTokensAndSubAccountsThroughTheClient(t *testing.T) {
	c, _, withToken := realAPIWithToken(t, "alice-password")
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.AddIP(ctx, "192.0.2.5")
	must(err)
	_, err = c.CreateSubAccount(ctx, client.NewSubAccount{Username: "alice-bot", Password: "bot-password"})
	must(err)
	bot := c.ForSubAccount("alice-bot")
	_, err = bot.AddIP(ctx, "192.0.2.5")
	must(err)
	if ips, err := bot.IPs(ctx); err != nil || !slices.Equal(ips, []string{"192.0.2.5"}) {
		t.Errorf("the sub-account's IPs: %v %v", ips, err)
	}
	if _, err := c.ForSubAccount("nobody").IPs(ctx); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("an unknown sub-account: %v, want ErrNotFound", err)
	}

	expires := time.Now().Add(24 * time.Hour).Truncate(time.Second)
	tok, err := c.CreateToken(ctx, "ci", expires)
	must(err)
	if tok.Secret == "" || tok.Label != "ci" || !tok.Active || tok.Expires == nil || !tok.Expires.Equal(expires) || tok.Username != "alice" {
		t.Errorf("CreateToken = %+v", tok)
	}
	botTok, err := bot.CreateToken(ctx, "", time.Time{})
	must(err)
	if botTok.Username != "alice-bot" || botTok.Expires != nil {
		t.Errorf("the sub-account's token = %+v", botTok)
	}
	if _, err := c.CreateToken(ctx, "", time.Time{}); !errors.Is(err, client.ErrPaymentRequired) {
		t.Errorf("a third token on a plan of 2: %v, want ErrPaymentRequired", err)
	}
	byToken := withToken(tok.Secret)
	if ips, err := byToken.IPs(ctx); err != nil || len(ips) != 1 {
		t.Errorf("IPs with the token: %v %v", ips, err)
	}
	if _, err := byToken.Tokens(ctx); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("Tokens with a token: %v, want ErrForbidden", err)
	}
	off, err := c.DeactivateToken(ctx, tok.ID)
	must(err)
	if off.Active {
		t.Error("DeactivateToken answered an active token")
	}
	if _, err := byToken.IPs(ctx); !errors.Is(err, client.ErrUnauthorized) {
		t.Errorf("a deactivated token: %v, want ErrUnauthorized", err)
	}
	_, err = c.ActivateToken(ctx, tok.ID)
	must(err)
	list, err := c.Tokens(ctx)
	must(err)
	if len(list) != 1 || list[0].ID != tok.ID || !list[0].Active {
		t.Errorf("Tokens = %+v", list)
	}
	must(c.DeleteToken(ctx, tok.ID))
	if err := c.DeleteToken(ctx, tok.ID); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("deleting it again: %v, want ErrNotFound", err)
	}

	// Limits and profile.
	half, none := 0.5, 0.0
	acct, err := c.EditAccount(ctx, client.AccountChange{MonthlyBandwidthLimit: &half})
	must(err)
	if acct.MonthlyBandwidthLimit != 0.5 || acct.TotalBandwidthLimit != 0 || acct.BillingDay != 1 || acct.Limits.Tokens != 2 ||
		acct.Bandwidth.PeriodEnd.Sub(acct.Bandwidth.PeriodStart) < 28*24*time.Hour {
		t.Errorf("EditAccount = %+v", acct)
	}
	if got, err := c.GetAccount(ctx); err != nil || got.MonthlyBandwidthLimit != 0.5 {
		t.Errorf("GetAccount = %+v %v", got, err)
	}
	email := "bot@example.com"
	sub, err := c.EditSubAccount(ctx, "alice-bot", client.SubAccountChange{Email: &email, TotalBandwidthLimit: &half})
	must(err)
	if sub.Email != email || sub.TotalBandwidthLimit != 0.5 {
		t.Errorf("EditSubAccount(profile, limit) = %+v", sub)
	}
	sub, err = c.EditSubAccount(ctx, "alice-bot", client.SubAccountChange{TotalBandwidthLimit: &none})
	must(err)
	if sub.TotalBandwidthLimit != 0 || sub.Email != email {
		t.Errorf("EditSubAccount(no limit) = %+v", sub)
	}
	subs, err := c.SubAccounts(ctx)
	must(err)
	if len(subs) != 1 || subs[0].Bandwidth == nil || subs[0].Email != email {
		t.Errorf("SubAccounts = %+v, want the profile and the bandwidth used", subs)
	}
}

func TestAgainstTheRealServer(t *testing.T) {
	c, as := realAPI(t, "alice-password")
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	ip, err := c.CallerIP(ctx)
	must(err)
	if ip != "127.0.0.1" {
		t.Errorf("CallerIP = %q", ip)
	}
	added, err := c.AddIP(ctx, "")
	must(err)
	_, err = c.AddIP(ctx, "192.0.2.5")
	must(err)
	ips, err := c.IPs(ctx)
	must(err)
	if added != "127.0.0.1" || !slices.Equal(ips, []string{"127.0.0.1", "192.0.2.5"}) {
		t.Errorf("AddIP = %q, IPs = %v", added, ips)
	}
	if _, err := c.AddIP(ctx, "192.0.2.5"); !errors.Is(err, client.ErrBadRequest) || err.(*client.Error).Message != "IP address is already authorized." {
		t.Errorf("duplicate AddIP: %v, want ErrBadRequest with the server's sentence", err)
	}
	if _, err := c.AddIP(ctx, "192.0.2.6"); !errors.Is(err, client.ErrPaymentRequired) {
		t.Errorf("third IP on a plan of 2: %v, want ErrPaymentRequired", err)
	}
	must(c.DeleteIP(ctx, "192.0.2.5"))

	avail, err := c.AvailableProxies(ctx)
	must(err)
	if len(avail) != 2 || avail[0].Name != "us-ca" || avail[0].Address != "us-ca.example.net:31280" || avail[0].Country != "US" ||
		!slices.Equal(avail[0].Countries, []string{"US"}) {
		t.Errorf("AvailableProxies = %+v", avail)
	}
	addr, err := c.AddProxy(ctx, "us-ca")
	must(err)
	proxies, err := c.Proxies(ctx)
	must(err)
	if addr != "us-ca.example.net:31280" || !slices.Equal(proxies, []string{addr}) {
		t.Errorf("AddProxy = %q, Proxies = %v", addr, proxies)
	}

	sub, err := c.CreateSubAccount(ctx, client.NewSubAccount{Username: "alice-bot", Password: "bot-password", Proxies: []string{"us-ca"}, IPs: []string{"127.0.0.1"}})
	must(err)
	if sub.Username != "alice-bot" || !sub.Active || !slices.Equal(sub.Proxies, []string{addr}) || !slices.Equal(sub.IPs, []string{"127.0.0.1"}) {
		t.Errorf("CreateSubAccount = %+v", sub)
	}
	inactive, none := false, []string{}
	sub, err = c.EditSubAccount(ctx, "alice-bot", client.SubAccountChange{Active: &inactive, IPs: &none})
	must(err)
	if sub.Active || len(sub.IPs) != 0 || len(sub.Proxies) != 1 {
		t.Errorf("EditSubAccount = %+v, want inactive, no IPs, proxies unchanged", sub)
	}
	subs, err := c.SubAccounts(ctx)
	must(err)
	if len(subs) != 1 || subs[0].Username != "alice-bot" {
		t.Errorf("SubAccounts = %+v", subs)
	}
	if _, err := c.EditSubAccount(ctx, "nobody", client.SubAccountChange{Active: &inactive}); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("edit of an unknown sub-account: %v, want ErrNotFound", err)
	}
	if _, err := c.EditSubAccount(ctx, "alice", client.SubAccountChange{Active: &inactive}); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("edit of the account itself: %v, want ErrForbidden", err)
	}
	must(c.DeleteSubAccount(ctx, "alice-bot"))
	must(c.DeleteProxy(ctx, addr))

	usage, err := c.Usage(ctx, "2026-01-01", "2026-12-31")
	must(err)
	if len(usage) != 0 { // no traffic went through the proxies
		t.Errorf("Usage = %v, want no rows", usage)
	}
	report, err := c.UsageReport(ctx, "", "")
	must(err)
	if bw := report.Bandwidth; bw.Month != time.Now().UTC().Format("2006-01") || bw.Used != 0 || bw.Limit != 1e9 {
		t.Errorf("UsageReport bandwidth = %+v, want this month, nothing used, the plan's limit", bw)
	}
	if _, err := c.Usage(ctx, "yesterday", ""); !errors.Is(err, client.ErrBadRequest) {
		t.Errorf("bad date: %v, want ErrBadRequest", err)
	}
	if _, err := as("wrong-password").IPs(ctx); !errors.Is(err, client.ErrUnauthorized) {
		t.Errorf("wrong password: %v, want ErrUnauthorized", err)
	}
}
