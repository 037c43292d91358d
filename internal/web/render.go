package web

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/exitmesh/exitmesh/internal/account"
	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/httperr"
)

// page is what every template gets: who is signed in, the outcome of the last change, and the
// page's own data.
type page struct {
	Title    string
	Nav      string // the menu entry to mark as current
	Username string // "" when signed out
	Operator bool
	CSRF     string
	Notice   string              // a change that succeeded
	Error    string              // the contract's sentence for a refused change
	Fields   map[string][]string // per-field messages of a refused form
	Data     any

	Signup      bool // self sign-up is open: the sign-in page offers it
	Unconfirmed bool // the signed-in account's email is not confirmed: the layout asks for it
}

// parsePages parses each page template with the layout; a broken template fails at start, in tests.
func parsePages() map[string]*template.Template {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	pages := make(map[string]*template.Template)
	for _, name := range names {
		base := path.Base(name)
		if base == "layout.html" {
			continue
		}
		t := template.New(base).Funcs(funcs)
		pages[strings.TrimSuffix(base, ".html")] = template.Must(t.ParseFS(templateFS, "templates/layout.html", name))
	}
	return pages
}

var funcs = template.FuncMap{
	"bytes": func(n int64) string { return config.Size(n).Human() },
	"limit": func(n int) string {
		if n == 0 {
			return "unlimited"
		}
		return fmt.Sprint(n)
	},
	"fieldErrors": func(fields map[string][]string, name string) []string { return fields[name] },
	"join":        strings.Join,
	"hasPrefix":   strings.HasPrefix,
}

// render writes the page called name with status; v is the signed-in visitor, or nil.
func (s *Server) render(w http.ResponseWriter, status int, name string, v *visitor, p page) {
	if v != nil {
		p.Username, p.Operator, p.CSRF = v.account.Username, v.operator, v.session.CSRF
	}
	p.Signup, p.Unconfirmed = s.cfg.Signup.Enabled, v != nil && !v.account.Confirmed
	t, ok := s.pages[name]
	if !ok {
		panic("no page template " + name)
	}
	var buf bytes.Buffer // render fully first: a template error must not leave half a page
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		s.log.Error("render failed", "page", name, "err", err)
		http.Error(w, "Internal error. Please retry.", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func (s *Server) renderSignin(w http.ResponseWriter, r *http.Request, status int, msg, username string) {
	s.render(w, status, "signin", nil, page{Title: "Sign in", Error: msg,
		Data: map[string]string{"Username": username, "Next": safeNext(r.URL.Query().Get("next"))}})
}

// renderError answers with a page that says only what went wrong.
func (s *Server) renderError(w http.ResponseWriter, _ *http.Request, v *visitor, status int, msg string) {
	s.render(w, status, "error", v, page{Title: http.StatusText(status), Error: msg})
}

// refused puts a refusal of the account rules on p, with the API's status and sentence, and returns
// the status to answer with. An internal error is logged with a request id that the page shows.
func (s *Server) refused(p *page, err error) int {
	status, de, ok := httperr.Status(err)
	var msg string
	var fields map[string][]string
	switch {
	case !ok:
		id := requestID()
		s.log.Error("internal error", "request_id", id, "err", err)
		msg = "Internal error (request id " + id + "). Please retry."
	case errors.Is(err, account.ErrPlan):
		msg = account.PlanErrorMessage
	case de.Code == domain.EUNAVAILABLE:
		s.log.Warn("store unavailable", "err", err)
		msg = "The service is temporarily unavailable. Please try again in a few minutes."
	default:
		msg, fields = de.Message, de.Fields
	}
	p.Error, p.Fields = msg, fields
	if len(fields) > 0 {
		var msgs []string
		for field, m := range fields {
			msgs = append(msgs, field+": "+strings.Join(m, " "))
		}
		slices.Sort(msgs)
		p.Error += ": " + strings.Join(msgs, "; ")
	}
	return status
}

func requestID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
