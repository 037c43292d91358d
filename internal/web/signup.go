package web

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/bans"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/mail"
)

// Signup is self sign-up and email confirmation. Zero values take the defaults noted.
type Signup struct {
	// Enabled serves /signup, where a visitor creates an unconfirmed account on Plan with Proxies
	// authorized; off, /signup is a 404 and the sign-in page does not offer it. Confirmation links
	// (/confirm) and resends work either way, for the accounts that are waiting.
	Enabled bool
	Plan    string
	Proxies []string
	// PublicURL is the base of confirmation links, such as https://dashboard.example.net; the node
	// passes dashboard.public_url or https://<the API listener's address>.
	PublicURL string
	LinkTTL   time.Duration // how long a link works; default 48h
	// RateLimit sign-ups per source IP (an IPv6 /64), and link resends per IP and per account, are
	// accepted per RateWindow; defaults 5 and 1h.
	RateLimit  int
	RateWindow time.Duration
	// Mailer sends the links; nil logs each link at info level instead, for the operator to pass on.
	Mailer Mailer

	limiter *rateLimiter
}

// hours is LinkTTL in whole hours, as the pages and the email say it.
func (c Signup) hours() int { return int(max(c.LinkTTL.Round(time.Hour), time.Hour) / time.Hour) }

// Mailer sends an email; *mail.Sender is one.
type Mailer interface {
	Send(ctx context.Context, m mail.Message) error
}

const (
	signupCookie = "__Host-exitmesh_signup" // __Host-: only this origin, over HTTPS, can set it
	signupField  = "form"
	signupMaxAge = time.Hour // a sign-up form older than this must be reloaded
)

// Sentences of the sign-up form. The field sentences are the API's and domain's own.
const (
	msgRequired      = "This field is required."
	msgNotEmail      = "Enter an email address, such as alice@example.com."
	msgPasswordsDiff = "The two passwords do not match."
	msgEmailTaken    = "This email address cannot be used to sign up. If you already have an account, sign in."
	msgFormExpired   = "This form has expired or did not come from this dashboard. Reload the page and try again."
	msgUnavailable   = "The service is temporarily unavailable. Please try again in a few minutes."
)

// routeSignup resolves the sign-up defaults and registers its pages.
func (s *Server) routeSignup() {
	c := &s.cfg.Signup
	if c.LinkTTL <= 0 {
		c.LinkTTL = 48 * time.Hour
	}
	if c.RateLimit <= 0 {
		c.RateLimit = 5
	}
	if c.RateWindow <= 0 {
		c.RateWindow = time.Hour
	}
	c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	c.limiter = newRateLimiter(c.RateLimit, c.RateWindow)
	if c.Enabled {
		s.mux.HandleFunc("GET /signup", s.signupPage)
		s.mux.HandleFunc("POST /signup", s.signup)
	}
	s.mux.HandleFunc("GET /confirm", s.confirm)
	s.mux.HandleFunc("POST /confirm/resend", s.signedIn(s.resend))
}

// signupData is what signup.html shows.
type signupData struct {
	Email string
	Form  string // the double-submit token, also in the signup cookie
	Plan  *domain.Plan
}

func (s *Server) signupPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.session(r); ok {
		http.Redirect(w, r, "/account", http.StatusSeeOther)
		return
	}
	s.renderSignup(w, r, http.StatusOK, page{}, "")
}

// renderSignup shows the form with a new double-submit token, keeping what was typed in email.
func (s *Server) renderSignup(w http.ResponseWriter, r *http.Request, status int, p page, email string) {
	token := randomToken()
	http.SetCookie(w, &http.Cookie{Name: signupCookie, Value: token, Path: "/", MaxAge: int(signupMaxAge / time.Second),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	d := signupData{Email: email, Form: token}
	if plan, err := s.cfg.Store.GetPlan(r.Context(), s.cfg.Signup.Plan); err == nil {
		d.Plan = &plan
	}
	p.Title, p.Data = "Sign up", d
	s.render(w, status, "signup", nil, p)
}

// signup creates an unconfirmed account and sends its confirmation link. The form is protected by
// a double-submit token (a SameSite=Strict, __Host- cookie that must equal a hidden field), since
// a signed-out visitor has no session to tie a CSRF token to; banned IPs are refused, and at most
// RateLimit attempts per IP and window reach the store.
func (s *Server) signup(w http.ResponseWriter, r *http.Request) {
	ip := clientIP(r)
	if left, banned := s.cfg.Bans.Banned(ip); banned {
		s.renderSignup(w, r, http.StatusForbidden, page{Error: "Your IP address is temporarily banned for " + bans.Remaining(left) + " after too many failed sign-ins or requests."}, "")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	email := strings.ToLower(strings.TrimSpace(r.PostFormValue("email")))
	password, again := r.PostFormValue("password"), r.PostFormValue("password2")
	if c, err := r.Cookie(signupCookie); err != nil || !sameToken(c.Value, r.PostFormValue(signupField)) {
		s.renderSignup(w, r, http.StatusForbidden, page{Error: msgFormExpired}, email)
		return
	}
	if fields := signupProblems(email, password, again); len(fields) > 0 {
		var p page
		status := s.refused(&p, &domain.Error{Code: domain.EINVALID, Message: "Invalid form data", Fields: fields})
		s.renderSignup(w, r, status, p, email)
		return
	}
	if ok, wait := s.cfg.Signup.limiter.allow(s.cfg.Now(), ipKey(ip)); !ok {
		s.renderSignup(w, r, http.StatusTooManyRequests, page{Error: "Too many sign-ups from your IP address. Please try again in " + bans.Remaining(wait) + "."}, email)
		return
	}
	hash, err := auth.HashPassword(password)
	if err != nil {
		s.log.Error("sign-up: cannot hash the password", "err", err)
		s.renderSignup(w, r, http.StatusInternalServerError, page{Error: msgUnavailable}, email)
		return
	}
	acct, err := s.cfg.Store.CreateAccount(r.Context(), domain.NewAccount{Username: email, PasswordHash: hash,
		Plan: s.cfg.Signup.Plan, Proxies: s.cfg.Signup.Proxies, Confirmed: false})
	switch domain.ErrorCode(err) {
	case "":
	case domain.ECONFLICT:
		var p page
		status := s.refused(&p, domain.FieldError("email", msgEmailTaken))
		s.renderSignup(w, r, status, p, email)
		return
	case domain.EUNAVAILABLE:
		s.renderSignup(w, r, http.StatusServiceUnavailable, page{Error: msgUnavailable}, email)
		return
	default: // an unknown plan or proxy server, a plan too small: the operator's config
		s.log.Error("sign-up refused by the store: check dashboard.signup", "plan", s.cfg.Signup.Plan, "proxies", s.cfg.Signup.Proxies, "err", err)
		s.renderSignup(w, r, http.StatusServiceUnavailable, page{Error: "Sign-up is not available right now. Please try again later."}, email)
		return
	}
	s.log.Info("account signed up", "username", acct.Username, "plan", acct.Plan, "ip", ip)
	sent := s.sendLink(r.Context(), acct.Username)
	http.SetCookie(w, &http.Cookie{Name: signupCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	s.render(w, http.StatusOK, "signup-done", nil, page{Title: "Account created", Data: struct {
		Email  string
		Sent   bool // the link went out (by email, or to the log)
		Mailed bool // email is configured
		Hours  int
	}{acct.Username, sent == nil, s.cfg.Signup.Mailer != nil, s.cfg.Signup.hours()}})
}

// signupProblems checks the form with the sentences used everywhere else, by field.
func signupProblems(email, password, again string) map[string][]string {
	fields := map[string][]string{}
	switch {
	case email == "":
		fields["email"] = []string{msgRequired}
	case domain.ValidateUsername(email) != nil:
		fields["email"] = []string{domain.ErrorMessage(domain.ValidateUsername(email))}
	case !isEmail(email):
		fields["email"] = []string{msgNotEmail}
	}
	switch {
	case password == "":
		fields["password"] = []string{msgRequired}
	case domain.ValidatePassword(password) != nil:
		fields["password"] = []string{domain.ErrorMessage(domain.ValidatePassword(password))}
	case password != again:
		fields["password"] = []string{msgPasswordsDiff}
	}
	return fields
}

// isEmail reports whether s is local@host.domain. Usernames allow only letters, digits and . _ @ -,
// so addresses with + or quotes are refused by ValidateUsername before this.
func isEmail(s string) bool {
	local, host, ok := strings.Cut(s, "@")
	return ok && local != "" && !strings.Contains(host, "@") && domain.ValidateHostname(host) == nil
}

func sameToken(got, want string) bool {
	return got != "" && want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
