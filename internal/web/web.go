// Package web is the dashboard: customers manage their account, and operators their network, in a
// browser. It is served by the API listener over HTTPS and embedded in the binary. Every customer
// page calls the account service the API calls, and shows its refusals with the API's statuses and
// sentences, so the dashboard and the API accept, refuse and word their errors alike.
package web

import (
	"context"
	"embed"
	"github.com/exitmesh/exitmesh/internal/config"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/exitmesh/exitmesh/internal/account"
	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/bans"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/operator"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Store is what the dashboard reads and writes itself: sign-in sessions, self sign-up and email
// confirmation. The customer and operator pages go through their services.
type Store interface {
	GetLogin(ctx context.Context, username string) (domain.Login, error)
	GetAccount(ctx context.Context, username string) (domain.Account, error)
	GetPlan(ctx context.Context, name string) (domain.Plan, error)
	CreateAccount(ctx context.Context, a domain.NewAccount) (domain.Account, error)
	CreateWebSession(ctx context.Context, s domain.WebSession) error
	GetWebSession(ctx context.Context, id string) (domain.WebSession, error)
	DeleteWebSession(ctx context.Context, id string) error
	CreateConfirmToken(ctx context.Context, t domain.ConfirmToken) error
	ConfirmAccount(ctx context.Context, id string) (domain.Account, error)
}

// Config is what the dashboard needs. Zero values take the defaults noted.
type Config struct {
	Store      Store
	Accounts   *account.Service  // the account rules the customer pages apply, shared with the API
	Verifier   *auth.Verifier    // shared with the API and the proxies; nil: a new one
	Bans       *bans.Tracker     // the node's: failed sign-ins count like failed API logins; nil: none
	Operators  []string          // accounts that also see the operator pages
	Operator   *operator.Service // carries out what the operator pages ask
	SessionTTL time.Duration     // default 12h
	Log        *slog.Logger
	Now        func() time.Time
	Signup     Signup // self sign-up and email confirmation; the zero value has sign-up off
}

// Server serves the dashboard.
type Server struct {
	cfg   Config
	log   *slog.Logger
	pages map[string]*template.Template
	mux   *http.ServeMux
}

// New returns the dashboard handler.
func New(cfg Config) *Server {
	if cfg.Verifier == nil {
		cfg.Verifier = auth.NewVerifier()
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = config.Default().Dashboard.SessionTTL.D()
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, log: cfg.Log.With("component", "dashboard"), pages: parsePages(), mux: http.NewServeMux()}
	s.routes()
	return s
}

// routes registers every page; each group of pages registers its own.
func (s *Server) routes() {
	static, _ := fs.Sub(staticFS, "static")
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", cacheForever(http.FileServerFS(static))))
	s.mux.HandleFunc("GET /{$}", s.home)
	s.routeSession()
	s.routeCustomer()
	s.routeSignup()
	s.routeOps()
}

// ServeHTTP serves one dashboard request with the headers every page carries.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Everything is served from here: no inline script, no framing, no referrer leaking page names.
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	s.mux.ServeHTTP(w, r)
}

func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.session(r); ok {
		http.Redirect(w, r, "/account", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

func (s *Server) isOperator(username string) bool { return slices.Contains(s.cfg.Operators, username) }

// cacheForever lets browsers keep the embedded assets for an hour: they change only with the binary.
func cacheForever(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}
