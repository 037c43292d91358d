package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/internal/bans"
	"github.com/exitmesh/exitmesh/internal/domain"
)

const (
	cookieName = "exitmesh_session"
	csrfField  = "csrf"
)

func (s *Server) routeSession() {
	s.mux.HandleFunc("GET /signin", s.signinPage)
	s.mux.HandleFunc("POST /signin", s.signin)
	s.mux.HandleFunc("POST /signout", s.signedIn(s.signout))
}

// visitor is a signed-in person on a request: the session and the account.
type visitor struct {
	session  domain.WebSession
	account  domain.Account
	operator bool
}

// session returns the request's session, if its cookie names a live one.
func (s *Server) session(r *http.Request) (domain.WebSession, bool) {
	c, err := r.Cookie(cookieName)
	if err != nil || c.Value == "" || len(c.Value) > 100 {
		return domain.WebSession{}, false
	}
	ws, err := s.cfg.Store.GetWebSession(r.Context(), hashToken(c.Value))
	return ws, err == nil
}

// signedIn wraps a page that needs a signed-in account: without a session it sends the browser to
// sign in; a POST must carry the session's CSRF token; a disabled account is signed out.
func (s *Server) signedIn(h func(http.ResponseWriter, *http.Request, *visitor)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if left, banned := s.cfg.Bans.Banned(clientIP(r)); banned {
			s.renderError(w, r, nil, http.StatusForbidden, "Your IP address is temporarily banned for "+bans.Remaining(left)+" after too many failed sign-ins or requests.")
			return
		}
		ws, ok := s.session(r)
		if !ok {
			http.Redirect(w, r, "/signin?next="+safeNext(r.URL.Path), http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost && !validCSRF(r, ws.CSRF) {
			s.renderError(w, r, nil, http.StatusForbidden, "This form has expired or did not come from this dashboard. Reload the page and try again.")
			return
		}
		acct, err := s.cfg.Store.GetAccount(r.Context(), ws.Username)
		if err != nil || acct.Disabled {
			s.cfg.Store.DeleteWebSession(r.Context(), ws.ID)
			clearCookie(w)
			s.renderSignin(w, r, http.StatusForbidden, "This account is disabled; contact support.", "")
			return
		}
		h(w, r, &visitor{session: ws, account: acct, operator: s.isOperator(acct.Username)})
	}
}

func (s *Server) signinPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.session(r); ok {
		http.Redirect(w, r, "/account", http.StatusSeeOther)
		return
	}
	s.renderSignin(w, r, http.StatusOK, "", "")
}

// signin checks a username and password as the API does (sub-accounts cannot sign in) and counts a
// wrong one toward the same ban.
func (s *Server) signin(w http.ResponseWriter, r *http.Request) {
	ip := clientIP(r)
	if left, banned := s.cfg.Bans.Banned(ip); banned {
		s.renderSignin(w, r, http.StatusForbidden, "Your IP address is temporarily banned for "+bans.Remaining(left)+" after too many failed sign-ins.", "")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	username, password := strings.TrimSpace(r.PostFormValue("username")), r.PostFormValue("password")
	login, err := s.cfg.Store.GetLogin(r.Context(), username)
	if err != nil && domain.ErrorCode(err) != domain.ENOTFOUND {
		s.renderSignin(w, r, http.StatusServiceUnavailable, "The service is temporarily unavailable. Please try again in a few minutes.", username)
		return
	}
	good, err := s.cfg.Verifier.Verify(r.Context(), username, password, login.PasswordHash)
	if err != nil || !good || username == "" {
		s.cfg.Bans.Fail(ip, bans.AuthFailure)
		s.renderSignin(w, r, http.StatusUnauthorized, "Wrong username or password.", username)
		return
	}
	if login.IsSub() {
		s.renderSignin(w, r, http.StatusForbidden, "Sub-accounts cannot sign in; use the account's username and password.", username)
		return
	}
	token, ws := newSession(login.Username, s.cfg.Now().Add(s.cfg.SessionTTL))
	if err := s.cfg.Store.CreateWebSession(r.Context(), ws); err != nil {
		s.log.Error("cannot create a dashboard session", "err", err)
		s.renderSignin(w, r, http.StatusServiceUnavailable, "The service is temporarily unavailable. Please try again in a few minutes.", username)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: token, Path: "/", Expires: ws.Expires,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
}

func (s *Server) signout(w http.ResponseWriter, r *http.Request, v *visitor) {
	s.cfg.Store.DeleteWebSession(r.Context(), v.session.ID)
	clearCookie(w)
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

// newSession makes a session for username: the cookie's secret, and what the store keeps (its hash).
func newSession(username string, expires time.Time) (token string, ws domain.WebSession) {
	token = randomToken()
	return token, domain.WebSession{ID: hashToken(token), Username: username, CSRF: randomToken(), Expires: expires}
}

func randomToken() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func validCSRF(r *http.Request, want string) bool {
	got := r.PostFormValue(csrfField)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

// safeNext keeps a redirect after sign-in on this site: a local path, never another host.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") || next == "/signin" {
		return "/account"
	}
	return next
}

func clientIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
