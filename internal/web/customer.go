package web

import (
	"context"
	"net/http"
	"net/netip"
	"time"

	"github.com/exitmesh/exitmesh/internal/account"
	"github.com/exitmesh/exitmesh/internal/domain"
)

func (s *Server) routeCustomer() {
	s.mux.HandleFunc("GET /account", s.signedIn(s.accountPage))
	s.mux.HandleFunc("GET /ips", s.signedIn(s.ipsPage))
	s.mux.HandleFunc("POST /ips", s.signedIn(s.ipsChange))
	s.mux.HandleFunc("GET /hostnames", s.signedIn(s.hostnamesPage))
	s.mux.HandleFunc("POST /hostnames", s.signedIn(s.hostnamesChange))
	s.mux.HandleFunc("GET /proxies", s.signedIn(s.proxiesPage))
	s.mux.HandleFunc("POST /proxies", s.signedIn(s.proxiesChange))
	s.mux.HandleFunc("GET /subs", s.signedIn(s.subsPage))
	s.mux.HandleFunc("POST /subs", s.signedIn(s.subsChange))
	s.mux.HandleFunc("GET /subs/new", s.signedIn(s.subNewPage))
	s.mux.HandleFunc("GET /subs/{username}/edit", s.signedIn(s.subEditPage))
	s.mux.HandleFunc("GET /subs/{username}/delete", s.signedIn(s.subDeletePage))
	s.mux.HandleFunc("GET /usage", s.signedIn(s.usagePage))
	s.mux.HandleFunc("GET /tokens", s.signedIn(s.tokensPage))
	s.mux.HandleFunc("POST /tokens", s.signedIn(s.tokensChange))
}

// change makes one change as the visitor through the account service and puts its outcome on p:
// fn's notice when it is made, the contract's sentence when it is refused. A change counts toward
// an unconfirmed account's allowance, as through the API. It returns the status to answer with.
func (s *Server) change(r *http.Request, v *visitor, p *page, fn func(ctx context.Context, c *account.Caller) (notice string, err error)) int {
	c, err := s.cfg.Accounts.Open(r.Context(), v.account.Username, false)
	notice := ""
	if err == nil {
		notice, err = fn(r.Context(), c)
	}
	if err != nil {
		return s.refused(p, err)
	}
	p.Notice = notice
	return http.StatusOK
}

// read opens the visitor's account, as it is now, to show a page: reading is not counted toward an
// unconfirmed account's allowance. A refusal shows, unless the outcome of a change already does; the
// caller is nil then.
func (s *Server) read(r *http.Request, v *visitor, p *page, status int) (*account.Caller, int) {
	c, err := s.cfg.Accounts.Open(r.Context(), v.account.Username, true)
	if err != nil {
		return nil, s.shown(p, status, err)
	}
	return c, status
}

// shown puts a refused read on p unless p already shows an outcome; it returns the status.
func (s *Server) shown(p *page, status int, err error) int {
	if err == nil || p.Error != "" {
		return status
	}
	return s.refused(p, err)
}

func (s *Server) accountPage(w http.ResponseWriter, r *http.Request, v *visitor) {
	p := page{Title: "Account", Nav: "account"}
	c, status := s.read(r, v, &p, http.StatusOK)
	if c == nil {
		s.renderError(w, r, v, status, p.Error)
		return
	}
	report, err := s.cfg.Accounts.Usage(r.Context(), c, "", time.Now().UTC().Format(time.DateOnly), "")
	status = s.shown(&p, status, err)
	p.Data = struct {
		Account   domain.Account
		Plan      domain.Plan
		Bandwidth account.Bandwidth
	}{c.Account, c.Plan, report.Bandwidth}
	s.render(w, status, "account", v, p)
}

func (s *Server) ipsPage(w http.ResponseWriter, r *http.Request, v *visitor) {
	s.showIPs(w, r, v, page{}, http.StatusOK)
}

// ipsChange adds (the given IP, or the browser's own) or deletes an authorized IP.
func (s *Server) ipsChange(w http.ResponseWriter, r *http.Request, v *visitor) {
	var p page
	ip := r.PostFormValue("ip")
	status := s.change(r, v, &p, func(ctx context.Context, c *account.Caller) (string, error) {
		if r.PostFormValue("action") == "delete" {
			return ip + " is no longer authorized.", s.cfg.Accounts.RemoveIP(ctx, c, "", ip)
		}
		added, err := s.cfg.Accounts.AddIP(ctx, c, "", ip, clientIP(r))
		return added.String() + " is authorized: requests from it need no password.", err
	})
	s.showIPs(w, r, v, p, status)
}

func (s *Server) showIPs(w http.ResponseWriter, r *http.Request, v *visitor, p page, status int) {
	p.Title, p.Nav = "Authorized IPs", "ips"
	c, status := s.read(r, v, &p, status)
	var ips []netip.Addr
	if c != nil {
		ips = c.Account.IPs
	}
	p.Data = struct {
		IPs []netip.Addr
		You string
	}{ips, clientIP(r).String()}
	s.render(w, status, "ips", v, p)
}
