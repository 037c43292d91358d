package web_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"github.com/exitmesh/exitmesh/internal/testlog"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/smtptest"
)

// logBuffer collects a log that goroutines write while the test reads it.
type logBuffer = testlog.Buffer

// signupNetwork starts a node with sign-up open (plan small, proxy server us-ca), emailing through
// mail when it is not nil (a loopback server without TLS, so starttls is off), and logging into the
// returned buffer. rateLimit 0 keeps the default.
func signupNetwork(t *testing.T, mail *smtptest.Server, rateLimit int) (*network, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	n := startNetworkWith(t, func(c *config.Config) {
		c.Dashboard.Signup.Enabled, c.Dashboard.Signup.Plan, c.Dashboard.Signup.Proxies = true, "small", []string{"us-ca"}
		if rateLimit > 0 {
			c.Dashboard.Signup.RateLimit = rateLimit
		}
		if mail != nil {
			c.SMTP = config.SMTP{Host: "127.0.0.1", Port: mail.Port(), From: "exitmesh <noreply@example.net>",
				Timeout: config.Duration(5 * time.Second)}
		}
	}, slog.New(slog.NewTextHandler(logs, nil)))
	return n, logs
}

var linkPattern = regexp.MustCompile(`https://[^\s"]+/confirm\?token=[A-Za-z0-9_-]+`)

// signUp fills the sign-up form and submits it; waitFor is what the next page shows.
func signUp(t *testing.T, ctx context.Context, base, email, password, again, waitFor string) {
	t.Helper()
	run(t, ctx, "sign up as "+email,
		chromedp.Navigate(base+"/signup"),
		chromedp.WaitVisible(chromedp.CSS(`#email`)),
		chromedp.SendKeys(chromedp.CSS(`#email`), email),
		chromedp.SendKeys(chromedp.CSS(`#password`), password),
		chromedp.SendKeys(chromedp.CSS(`#password2`), again),
		chromedp.Click(chromedp.CSS(`#signup button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(waitFor)),
	)
}

// TestSignupConfirmedByEmail: a visitor finds sign-up on the sign-in page, signs up with an email
// address, gets the link by email (through a real SMTP exchange), opens it, and can then sign in
// as a confirmed customer.
func TestSignupConfirmedByEmail(t *testing.T) {
	mail := smtptest.Start(t, smtptest.Options{})
	n, logs := signupNetwork(t, mail, 0)
	ctx := browser(t)

	run(t, ctx, "find sign-up on the sign-in page",
		chromedp.Navigate(n.base+"/signin"),
		chromedp.Click(chromedp.CSS(`#signup-link`)),
		chromedp.WaitVisible(chromedp.CSS(`#email`)),
	)
	if got := text(t, ctx, "#signup-plan"); !strings.Contains(got, "small plan") {
		t.Errorf("the form says %q, want the plan it signs up for", got)
	}
	screenshot(t, ctx, "signup")

	signUp(t, ctx, n.base, "Carol@Example.com", "carol-password", "carol-password", "#signup-done")
	if got := text(t, ctx, "#signup-done"); !strings.Contains(got, "We sent a confirmation link to carol@example.com") {
		t.Errorf("after sign-up: %q", got)
	}
	screenshot(t, ctx, "signup-done")

	acct, err := n.store.GetAccount(t.Context(), "carol@example.com")
	if err != nil || acct.Confirmed || acct.Plan != "small" || len(acct.Proxies) != 1 || acct.Proxies[0] != "us-ca" {
		t.Fatalf("stored account %+v, %v; want carol@example.com (lower-cased), unconfirmed, plan small, proxy us-ca", acct, err)
	}

	msg := mail.Wait(t)
	if len(msg.To) != 1 || msg.To[0] != "carol@example.com" || msg.From != "noreply@example.net" {
		t.Errorf("email %s → %v, want noreply@example.net → carol@example.com", msg.From, msg.To)
	}
	if !bytes.Contains(msg.Data, []byte("Subject: Confirm your email address\r\n")) {
		t.Errorf("email without the subject:\n%s", msg.Data)
	}
	link := linkPattern.FindString(string(msg.Data))
	if !strings.HasPrefix(link, n.base+"/confirm?token=") {
		t.Fatalf("link %q in the email, want one on %s:\n%s", link, n.base, msg.Data)
	}
	token := link[strings.Index(link, "token=")+len("token="):]
	if l := logs.String(); !strings.Contains(l, "confirmation email sent") || strings.Contains(l, token) {
		t.Errorf("log %q: want \"confirmation email sent\" and never the link's secret", l)
	}

	run(t, ctx, "open the link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(`.notice`)))
	if got := text(t, ctx, ".notice"); got != "Your email address carol@example.com is confirmed." {
		t.Errorf("confirmation page says %q", got)
	}
	screenshot(t, ctx, "confirmed")
	if acct, err := n.store.GetAccount(t.Context(), "carol@example.com"); err != nil || !acct.Confirmed {
		t.Errorf("after the link: confirmed %v, %v", acct.Confirmed, err)
	}

	signIn(t, ctx, n.base, "carol@example.com", "carol-password")
	if got := text(t, ctx, "#plan-h"); got != "Plan small" {
		t.Errorf("signed in, the account page shows %q", got)
	}
	if banner, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector("#confirm-banner") !== null`)); err != nil || banner {
		t.Errorf("a confirmed account sees the confirm banner (%v)", err)
	}
}

// TestSignupLinkLoggedWithoutSMTP: with no smtp.host the link is in the node's log at info level,
// and it works.
func TestSignupLinkLoggedWithoutSMTP(t *testing.T) {
	n, logs := signupNetwork(t, nil, 0)
	ctx := browser(t)
	signUp(t, ctx, n.base, "erin@example.com", "erin-password", "erin-password", "#signup-done")
	if got := text(t, ctx, "#signup-done"); !strings.Contains(got, "ask its operator for your confirmation link") {
		t.Errorf("after sign-up without email: %q", got)
	}
	var line string
	for l := range strings.Lines(logs.String()) {
		if strings.Contains(l, "email confirmation link") {
			line = l
		}
	}
	link := linkPattern.FindString(line)
	if !strings.Contains(line, "level=INFO") || !strings.Contains(line, "username=erin@example.com") || !strings.HasPrefix(link, n.base+"/confirm?token=") {
		t.Fatalf("log line %q: want the link at info level, for erin@example.com, on %s", line, n.base)
	}
	run(t, ctx, "open the logged link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(`.notice`)))
	if acct, err := n.store.GetAccount(t.Context(), "erin@example.com"); err != nil || !acct.Confirmed {
		t.Errorf("after the logged link: confirmed %v, %v", acct.Confirmed, err)
	}
}

// TestSignupDisabled: by default /signup is a 404 and the sign-in page does not offer it.
func TestSignupDisabled(t *testing.T) {
	n := startNetwork(t)
	c := insecureClient(t)
	if res, body := get(t, c, n.base+"/signup"); res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /signup: %d %q, want 404", res.StatusCode, body)
	}
	res, err := c.PostForm(n.base+"/signup", url.Values{"email": {"x@example.com"}, "password": {"password1"}, "password2": {"password1"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("POST /signup: %d, want 404", res.StatusCode)
	}
	if _, body := get(t, c, n.base+"/signin"); strings.Contains(body, "/signup") {
		t.Errorf("the sign-in page offers sign-up while it is off:\n%s", body)
	}
}

// TestSignupRefusals: the form's mistakes are shown with the sentences used everywhere else; a
// taken address says only that it cannot be used; a form posted without its cookie is refused; and
// each IP gets only rate_limit attempts per window.
func TestSignupRefusals(t *testing.T) {
	n, _ := signupNetwork(t, nil, 3)
	n.account(t, "taken@example.com", "taken-password", "big")
	ctx := browser(t)

	tests := []struct{ email, password, again, want string }{
		{"frank@example.com", "frank-password", "frank-passw0rd", "Invalid form data: password: The two passwords do not match."},
		{"frank@example.com", "short", "short", "Invalid form data: password: Password must be at least 8 characters long."},
		{"frank+proxy@example.com", "frank-password", "frank-password", "Invalid form data: email: Username may contain only letters, digits and . _ @ - and must start with a letter or digit."},
		{"frank@localhost", "frank-password", "frank-password", "Invalid form data: email: Enter an email address, such as alice@example.com."},
		{"taken@example.com", "frank-password", "frank-password", "Invalid form data: email: This email address cannot be used to sign up. If you already have an account, sign in."},
	}
	for _, tt := range tests {
		signUp(t, ctx, n.base, tt.email, tt.password, tt.again, ".error")
		if got := text(t, ctx, ".error"); got != tt.want {
			t.Errorf("sign-up %s/%s/%s: error %q, want %q", tt.email, tt.password, tt.again, got, tt.want)
		}
		if got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#email").value`)); err != nil || got != strings.ToLower(tt.email) {
			t.Errorf("the form kept email %q (%v), want %q", got, err, tt.email)
		}
	}
	screenshot(t, ctx, "signup-error")

	// Without the form's cookie (a cross-site post, a script): refused before anything else.
	res, err := insecureClient(t).PostForm(n.base+"/signup", url.Values{"email": {"gina@example.com"},
		"password": {"gina-password"}, "password2": {"gina-password"}, "form": {"made-up"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "This form has expired or did not come from this dashboard.") {
		t.Errorf("POST without the cookie: %d, want 403 and the expired-form sentence", res.StatusCode)
	}

	// The taken address counted as one attempt: two more sign-ups pass, the next is refused.
	signUp(t, ctx, n.base, "gina@example.com", "gina-password", "gina-password", "#signup-done")
	signUp(t, ctx, n.base, "hank@example.com", "hank-password", "hank-password", "#signup-done")
	signUp(t, ctx, n.base, "ivan@example.com", "ivan-password", "ivan-password", ".error")
	if got := text(t, ctx, ".error"); !strings.HasPrefix(got, "Too many sign-ups from your IP address. Please try again in ") {
		t.Errorf("the fourth attempt: %q", got)
	}
	for name, want := range map[string]string{"gina@example.com": "", "hank@example.com": "", "ivan@example.com": domain.ENOTFOUND, "frank@example.com": domain.ENOTFOUND} {
		if _, err := n.store.GetAccount(t.Context(), name); domain.ErrorCode(err) != want {
			t.Errorf("account %s: %v, want code %q", name, err, want)
		}
	}
}

// TestConfirmLinkErrors: an expired, a used and an unknown link each get a clear page and status,
// and none confirms the account.
func TestConfirmLinkErrors(t *testing.T) {
	n, _ := signupNetwork(t, nil, 0)
	unconfirmed(t, n, "judy@example.com", "judy-password")
	link := func(secret string, expires time.Time) string {
		sum := sha256.Sum256([]byte(secret))
		if err := n.store.CreateConfirmToken(t.Context(), domain.ConfirmToken{ID: hex.EncodeToString(sum[:]), Username: "judy@example.com", Expires: expires}); err != nil {
			t.Fatal(err)
		}
		return n.base + "/confirm?token=" + secret
	}
	expired, live := link("expired-secret", time.Now().Add(-time.Minute)), link("live-secret", time.Now().Add(time.Hour))
	ctx := browser(t)

	open := func(u string, wantStatus int, wantError string) {
		t.Helper()
		res, err := chromedp.Run(ctx, chromedp.NavigateResponse(u))
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != int64(wantStatus) {
			t.Errorf("%s: status %d, want %d", u, res.Status, wantStatus)
		}
		if wantError == "" {
			return
		}
		if got := text(t, ctx, ".error"); got != wantError {
			t.Errorf("%s: error %q, want %q", u, got, wantError)
		}
	}
	open(expired, http.StatusGone, "This confirmation link has expired.")
	screenshot(t, ctx, "confirm-expired")
	if got := text(t, ctx, "#confirm"); !strings.Contains(got, "Send the link again") {
		t.Errorf("the expired-link page does not say how to get a new one: %q", got)
	}
	open(n.base+"/confirm?token=no-such-secret", http.StatusNotFound, "This confirmation link is not valid.")
	open(n.base+"/confirm", http.StatusNotFound, "This confirmation link is not valid.")
	if acct, _ := n.store.GetAccount(t.Context(), "judy@example.com"); acct.Confirmed {
		t.Fatal("a refused link confirmed the account")
	}
	open(live, http.StatusOK, "")
	open(live, http.StatusGone, "This confirmation link has already been used.")
	screenshot(t, ctx, "confirm-used")
	if acct, _ := n.store.GetAccount(t.Context(), "judy@example.com"); !acct.Confirmed {
		t.Error("the live link did not confirm the account")
	}
}

// TestUnconfirmedBannerAndResend: a signed-in unconfirmed account sees the banner on every page,
// asks for the link again, gets it by email, and the banner goes once it is used; resends are
// limited per account.
func TestUnconfirmedBannerAndResend(t *testing.T) {
	mail := smtptest.Start(t, smtptest.Options{})
	n, _ := signupNetwork(t, mail, 2)
	unconfirmed(t, n, "kate@example.com", "kate-password")
	ctx := browser(t)

	signIn(t, ctx, n.base, "kate@example.com", "kate-password")
	if got := text(t, ctx, "#confirm-banner p"); !strings.Contains(got, "Please confirm your email address") {
		t.Errorf("banner %q", got)
	}
	screenshot(t, ctx, "unconfirmed-banner")
	run(t, ctx, "the banner is on other pages too", chromedp.Navigate(n.base+"/ips"), chromedp.WaitVisible(chromedp.CSS(`#confirm-banner`)))

	run(t, ctx, "send the link again", chromedp.Click(chromedp.CSS(`#resend`)), chromedp.WaitVisible(chromedp.CSS(`.notice`)))
	if got := text(t, ctx, ".notice"); got != "We sent a new confirmation link to kate@example.com. It works for 48 hours." {
		t.Errorf("after resend: %q", got)
	}
	link := linkPattern.FindString(string(mail.Wait(t).Data))

	run(t, ctx, "again", chromedp.Click(chromedp.CSS(`#resend`)), chromedp.WaitVisible(chromedp.CSS(`.notice`)))
	mail.Wait(t)
	run(t, ctx, "a third time", chromedp.Click(chromedp.CSS(`#resend`)), chromedp.WaitVisible(chromedp.CSS(`.error`)))
	if got := text(t, ctx, ".error"); !strings.HasPrefix(got, "Too many links asked for. Please try again in ") {
		t.Errorf("the third resend: %q", got)
	}
	if got := len(mail.Messages()); got != 2 {
		t.Errorf("%d emails sent, want 2", got)
	}

	run(t, ctx, "open the first link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(`.notice`)))
	run(t, ctx, "back to the account", chromedp.Navigate(n.base+"/account"), chromedp.WaitVisible(chromedp.CSS(`#plan-h`)))
	if banner, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector("#confirm-banner") !== null`)); err != nil || banner {
		t.Errorf("the banner stays after confirmation (%v)", err)
	}
}

// unconfirmed creates an unconfirmed account, as sign-up leaves it.
func unconfirmed(t *testing.T, n *network, username, password string) {
	t.Helper()
	hash, err := auth.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.store.CreateAccount(t.Context(), domain.NewAccount{Username: username, PasswordHash: hash, Plan: "small", Proxies: []string{"us-ca"}}); err != nil {
		t.Fatal(err)
	}
}

// insecureClient talks to the node's self-signed loopback listener and does not follow redirects.
func insecureClient(t *testing.T) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} // loopback, self-signed
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	res, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}
