// Package api is the account API (API.md): customers manage their authorized IPs, hostnames, proxy
// servers and sub-accounts from scripts. Every request passes the checks of API.md §4 in the
// contract's order; the first that applies answers.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/internal/account"
	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/bans"
	"github.com/exitmesh/exitmesh/internal/domain"
)

// Store is what the API reads itself: the logins it authenticates and the idempotency keys of its
// POSTs. Everything else goes through the account service.
type Store interface {
	account.Store
	ClaimIdempotencyKey(ctx context.Context, k domain.IdempotencyKey, now time.Time) (domain.Claim, error)
	FinishIdempotencyKey(ctx context.Context, k domain.IdempotencyKey, a domain.IdempotentAnswer) error
	ReleaseIdempotencyKey(ctx context.Context, k domain.IdempotencyKey) error
}

// Config is what the API needs. Zero values take the defaults noted.
type Config struct {
	Store    Store
	Accounts *account.Service // the account rules; nil: a service on Store with its defaults
	Verifier *auth.Verifier   // nil: a new one
	Bans     *bans.Tracker    // nil: no bans
	Log      *slog.Logger
	Now      func() time.Time
}

// Server serves the account API.
type Server struct {
	cfg Config
	log *slog.Logger
}

// New returns the API handler.
func New(cfg Config) *Server {
	if cfg.Verifier == nil {
		cfg.Verifier = auth.NewVerifier()
	}
	if cfg.Accounts == nil {
		cfg.Accounts = account.New(account.Config{Store: cfg.Store})
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Server{cfg: cfg, log: cfg.Log.With("component", "api")}
}

// call is one API request on its way through the checks.
type call struct {
	r      *http.Request
	w      http.ResponseWriter
	id     string
	ip     netip.Addr
	route  *route
	caller *account.Caller
	params params

	claimed *domain.IdempotencyKey   // the request's Idempotency-Key, claimed: its answer is kept
	replay  *domain.IdempotentAnswer // the answer kept for its key, to give again
}

// ServeHTTP answers one API request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{r: r, w: w, id: requestID()}
	w.Header().Set("X-Request-Id", c.id)
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		c.ip = ap.Addr().Unmap()
	}
	if r.URL.Path == openAPIPath {
		serveOpenAPI(w, r)
		return
	}
	result, err := s.serve(c)
	if c.replay != nil {
		writeReplay(w, c.replay)
		return
	}
	var rec *recorder
	if c.claimed != nil {
		rec = &recorder{ResponseWriter: w}
		c.w = rec
	}
	switch {
	case err != nil:
		s.writeError(c, err)
	case result == nil:
		c.w.WriteHeader(http.StatusNoContent)
	default:
		writeJSON(c.w, http.StatusOK, result)
	}
	if rec != nil {
		s.keep(c, *c.claimed, rec)
	}
}

// serve runs the checks of API.md §4 rows 2–9 in order, then the endpoint (rows 10–17).
func (s *Server) serve(c *call) (any, error) {
	if left, banned := s.cfg.Bans.Banned(c.ip); banned { // row 2
		return nil, &apiError{Status: http.StatusForbidden, RetryAfter: left, Message: fmt.Sprintf(
			"Your IP address is temporarily banned for %s after too many failed authentications or requests.", bans.Remaining(left))}
	}
	if c.route = lookupRoute(c.r.URL.Path); c.route == nil { // row 3
		s.cfg.Bans.Fail(c.ip, bans.NotFound)
		return nil, errNotFound
	}
	if c.r.Method != http.MethodGet && c.r.Method != http.MethodPost { // row 4
		return nil, &apiError{Status: http.StatusMethodNotAllowed, Allow: c.route.method}
	}
	login, bearer, err := s.authenticate(c) // rows 5, 6
	if err != nil {
		return nil, err
	}
	if bearer && c.route.tokens { // row 6b
		return nil, errBearerOnTokens
	}
	if c.route.isList() && c.r.Method == http.MethodPost { // row 7
		return nil, newError(http.StatusForbidden, fmt.Sprintf("%s is a list: use GET, not POST.", c.route.path))
	}
	if !c.route.isList() && c.r.Method == http.MethodGet { // row 7b
		return nil, &apiError{Status: http.StatusMethodNotAllowed, Allow: http.MethodPost,
			Message: fmt.Sprintf("%s makes a change: use POST.", c.route.path)}
	}
	if c.caller, err = s.cfg.Accounts.Open(c.r.Context(), login.Username, false); err != nil { // rows 8, 9
		return nil, err
	}
	if c.params, err = readParams(c.w, c.r); err != nil {
		return nil, err
	}
	key, idempotent, err := idempotencyKey(c)
	if err != nil {
		return nil, err
	}
	if idempotent {
		if c.replay, err = s.claim(c, key); err != nil || c.replay != nil {
			return nil, err
		}
		c.claimed = &key
	}
	return c.route.handle(s, c)
}

// authenticate checks the credentials, Basic or a bearer API token (bearer is true then): an
// account's, not a sub-account's.
func (s *Server) authenticate(c *call) (_ domain.Login, bearer bool, _ error) {
	if token, ok := bearerToken(c.r); ok {
		login, err := s.cfg.Accounts.AuthenticateToken(c.r.Context(), token)
		switch {
		case err == account.ErrBadToken:
			s.cfg.Bans.Fail(c.ip, bans.AuthFailure)
			return login, true, errUnauthorized
		case err != nil:
			return login, true, fmt.Errorf("%w: %w", account.ErrPlan, err)
		case login.IsSub():
			return login, true, errSubAccount
		}
		return login, true, nil
	}
	login, err := s.basic(c)
	return login, false, err
}

// bearerToken returns the token of "Authorization: Bearer <token>" (RFC 6750).
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(h[len(prefix):]), true
}

// basic checks Basic credentials.
func (s *Server) basic(c *call) (domain.Login, error) {
	username, password, ok := c.r.BasicAuth()
	if !ok {
		s.cfg.Bans.Fail(c.ip, bans.AuthFailure)
		return domain.Login{}, errUnauthorized
	}
	login, err := s.cfg.Store.GetLogin(c.r.Context(), username)
	if code := domain.ErrorCode(err); code == domain.EUNAVAILABLE || code == domain.EINTERNAL {
		return login, fmt.Errorf("%w: %w", account.ErrPlan, err)
	}
	good, err := s.cfg.Verifier.Verify(c.r.Context(), username, password, login.PasswordHash)
	if err != nil {
		return login, err
	}
	if !good {
		s.cfg.Bans.Fail(c.ip, bans.AuthFailure)
		return login, errUnauthorized
	}
	if login.IsSub() {
		return login, errSubAccount
	}
	return login, nil
}

func (s *Server) writeError(c *call, err error) {
	ae := asAPIError(err)
	if ae == nil {
		s.log.Error("internal error", "request_id", c.id, "method", c.r.Method, "path", c.r.URL.Path, "err", err)
		ae = newError(http.StatusInternalServerError, "Internal error (request id "+c.id+"). Please retry.")
	} else if ae.Status == http.StatusServiceUnavailable {
		s.log.Warn("store unavailable", "request_id", c.id, "path", c.r.URL.Path, "err", err)
	}
	h := c.w.Header()
	if ae.RetryAfter > 0 {
		h.Set("Retry-After", bans.RetryAfter(ae.RetryAfter))
	}
	if ae.Unauth {
		h.Set("WWW-Authenticate", `Basic realm="exitmesh"`)
	}
	if ae.Status == http.StatusMethodNotAllowed {
		h.Set("Allow", ae.Allow)
		c.w.WriteHeader(ae.Status) // API.md §3: a 405 has no body
		return
	}
	body := map[string]any{"error": ae.Message}
	if ae.Fields != nil {
		body["fields"] = ae.Fields
	}
	if ae.Status == http.StatusInternalServerError {
		body["request_id"] = c.id
	}
	writeJSON(c.w, ae.Status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func requestID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
