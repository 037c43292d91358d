package web_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/dnstest"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/node"
	"github.com/exitmesh/exitmesh/internal/origin"
	"github.com/exitmesh/exitmesh/internal/store"
)

// chromium is Debian's browser, which .ci/run installs.
const chromium = "/usr/bin/chromium"

const nodeConfig = `
store: sqlite:%s
api: {listen: "127.0.0.1:0"}
metrics: {listen: "off"}
sync: {interval: 100ms}
usage: {flush_interval: 100ms}
dashboard: {operators: [ops]}
hostnames: {resolver: "%s"}
proxies:
  - {name: us-ca, listen: "127.0.0.1:0", country: US, exits: [{ip: 127.0.0.2, region: US-CA, city: los_angeles, asn: 64500}, {ip: 127.0.0.3, region: US-CA, city: san_jose, asn: 64501}]}
  - {name: de, listen: "127.0.0.1:0", country: DE, exits: [{ip: 127.0.0.4}]}
egress: {allow: [127.0.0.1/32]}
plans:
  - {name: small, proxies: 2, subs: 1, ips: 1, hostnames: 1, bandwidth: 10GB, tokens: 2}
  - {name: big, proxies: 10, subs: 10, ips: 10, hostnames: 10, bandwidth: 100GB}
`

// network is a running node (proxies, API and dashboard on SQLite) with an origin, and a second
// handle on its store: what an operator's exitmesh admin uses.
type network struct {
	node   *node.Node
	store  domain.Store
	origin *httptest.Server
	dns    *dnstest.Server // the node's resolver for customers' hostnames
	base   string          // the dashboard's https:// address
}

func startNetwork(t *testing.T) *network {
	t.Helper()
	return startNetworkWith(t, nil, slog.New(slog.DiscardHandler))
}

// startNetworkWith is startNetwork with the config changed by configure (when not nil) before the
// node starts, and the node logging to log.
func startNetworkWith(t *testing.T, configure func(*config.Config), log *slog.Logger) *network {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "exitmesh.yaml")
	db := filepath.Join(dir, "exitmesh.db")
	n := &network{dns: dnstest.Start(t)}
	if err := os.WriteFile(cfgPath, fmt.Appendf(nil, nodeConfig, db, n.dns.Addr()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if configure != nil {
		configure(cfg)
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	if n.node, err = node.Start(context.Background(), cfg, log); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.node.Close(ctx)
	})
	if n.store, err = store.Open(context.Background(), "sqlite:"+db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.store.Close() })
	n.origin = httptest.NewServer(origin.Handler())
	t.Cleanup(n.origin.Close)
	n.base = "https://" + n.node.APIAddr()
	return n
}

// account creates a confirmed account.
func (n *network) account(t *testing.T, username, password, plan string, proxies ...string) {
	t.Helper()
	hash, err := auth.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.store.CreateAccount(context.Background(), domain.NewAccount{Username: username, PasswordHash: hash,
		Plan: plan, Confirmed: true, Proxies: proxies}); err != nil {
		t.Fatal(err)
	}
}

// browser starts headless Chromium, kept off every network but loopback, and returns its context.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing: CI must run the browser tests (.ci/run installs chromium)", chromium)
		}
		t.Skipf("%s is missing; install Debian's chromium to run the browser tests", chromium)
	}
	home := t.TempDir()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(filepath.Join(home, "profile")),
		chromedp.Env("HOME=" + home),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("ignore-certificate-errors", true), // the node's self-signed API certificate
		// Every name resolves nowhere: the browser reaches only the loopback addresses it is given.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute) // a bound for a stuck browser, not a threshold
	t.Cleanup(func() {
		cancelTimeout()
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// run runs browser actions and fails the test on error.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// text returns the text of the first element matching sel.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("read %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// screenshot saves the page as name.png in the screenshot directory: EXITMESH_SCREENSHOTS, or a
// directory under the system's temporary one. The path is logged for review.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("EXITMESH_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "exitmesh-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// signIn signs in through the form.
func signIn(t *testing.T, ctx context.Context, base, username, password string) {
	t.Helper()
	run(t, ctx, "sign in as "+username,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#username`)),
		chromedp.SendKeys(chromedp.CSS(`#username`), username),
		chromedp.SendKeys(chromedp.CSS(`#password`), password),
		chromedp.Click(chromedp.CSS(`form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`form.signout`)),
	)
}
