package web

import (
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/httperr"
)

// The operator pages, under /ops/: accounts, plans, proxy servers with their exits' health, bans,
// and the network's usage. They read their form, call the operator service (the one `exitmesh
// admin` calls, with its checks and sentences) and render its answer, and they are for the
// accounts in dashboard.operators only.

func (s *Server) routeOps() {
	s.mux.HandleFunc("GET /ops/{$}", s.operatorOnly(func(w http.ResponseWriter, r *http.Request, _ *visitor) {
		http.Redirect(w, r, "/ops/accounts", http.StatusSeeOther)
	}))
	s.mux.HandleFunc("GET /ops/accounts", s.operatorOnly(s.opsAccountsPage))
	s.mux.HandleFunc("POST /ops/accounts", s.operatorOnly(s.opsAccountsChange))
	s.mux.HandleFunc("GET /ops/plans", s.operatorOnly(s.opsPlansPage))
	s.mux.HandleFunc("POST /ops/plans", s.operatorOnly(s.opsPlansChange))
	s.mux.HandleFunc("GET /ops/proxies", s.operatorOnly(s.opsProxiesPage))
	s.mux.HandleFunc("GET /ops/bans", s.operatorOnly(s.opsBansPage))
	s.mux.HandleFunc("POST /ops/bans", s.operatorOnly(s.opsBansChange))
	s.mux.HandleFunc("GET /ops/usage", s.operatorOnly(s.opsUsagePage))
	s.mux.HandleFunc("GET /ops/who", s.operatorOnly(s.opsWhoPage))
	s.mux.HandleFunc("GET /ops/webhooks", s.operatorOnly(s.opsWebhooksPage))
}

// operatorOnly wraps an operator page: signed in (and, for a POST, the CSRF token checked) as an
// account listed in dashboard.operators. Any other account gets 403 with no operator data: the
// pages exist in every exitmesh, so hiding them behind a 404 would protect nothing and only
// puzzle an operator whose name is missing from the config.
func (s *Server) operatorOnly(h func(http.ResponseWriter, *http.Request, *visitor)) http.HandlerFunc {
	return s.signedIn(func(w http.ResponseWriter, r *http.Request, v *visitor) {
		if !v.operator {
			s.renderError(w, r, v, http.StatusForbidden, "This page is for the network's operators.")
			return
		}
		h(w, r, v)
	})
}

// opsDone records an operator's change in the log and on the page.
func (s *Server) opsDone(p *page, v *visitor, action, target, notice string) {
	s.log.Info("operator change", "operator", v.account.Username, "action", action, "target", target)
	p.Notice = notice
}

// opsFailed puts a refused or failed service call on the page and returns the status to answer
// with (the one table of internal/httperr): the service's own sentence for a refusal (the one
// `exitmesh admin` prints), with the message of each field it could not read, a plain one for an
// outage, and nothing internal.
func (s *Server) opsFailed(p *page, err error) int {
	status, de, ok := httperr.Status(err)
	switch {
	case !ok:
		s.log.Error("operator page failed", "err", err)
		p.Error = "Internal error. Please retry."
		return status
	case de.Code == domain.EUNAVAILABLE:
		p.Error = "The store is temporarily unavailable. Please try again in a few minutes."
		return status
	}
	p.Error, p.Fields = de.Message, de.Fields
	if len(de.Fields) > 0 {
		var msgs []string
		for _, name := range slices.Sorted(maps.Keys(de.Fields)) {
			msgs = append(msgs, de.Fields[name]...)
		}
		p.Error = strings.Join(msgs, " ")
	}
	return status
}

// opsPageFailed answers with an error page when a page cannot read what it shows.
func (s *Server) opsPageFailed(w http.ResponseWriter, r *http.Request, v *visitor, err error) {
	var p page
	status := s.opsFailed(&p, err)
	s.renderError(w, r, v, status, p.Error)
}
