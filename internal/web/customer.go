package web

import (
	"net/http"
	"net/url"
	"time"

	"github.com/exitmesh/exitmesh/client"
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
}

// change runs one change through the account API for the visitor and puts its outcome on p:
// notice() when it is made, the contract's sentence when it is refused. It returns the status to
// answer with. notice runs after the call, so it may read out.
func (s *Server) change(r *http.Request, v *visitor, p *page, path string, params url.Values, out any, notice func() string) int {
	if e := s.cfg.API.Do(r, v.account.Username, path, params, out); e != nil {
		return refused(p, e)
	}
	p.Notice = notice()
	return http.StatusOK
}

// read runs a list endpoint for the page being shown. A refusal shows, unless the outcome of a
// change already does; it returns the status to answer with.
func (s *Server) read(r *http.Request, v *visitor, p *page, status int, path string, params url.Values, out any) int {
	if e := s.cfg.API.Do(r, v.account.Username, path, params, out); e != nil && p.Error == "" {
		return refused(p, e)
	}
	return status
}

func (s *Server) accountPage(w http.ResponseWriter, r *http.Request, v *visitor) {
	p := page{Title: "Account", Nav: "account"}
	plan, err := s.cfg.Store.GetPlan(r.Context(), v.account.Plan)
	if err != nil {
		s.renderError(w, r, v, http.StatusServiceUnavailable, "Plan error: Unable to lookup subscription plan. Please try again in a few minutes.")
		return
	}
	var usage client.UsageReport
	if e := s.cfg.API.Do(r, v.account.Username, "/api/usage/", url.Values{"from": {time.Now().UTC().Format("2006-01-02")}}, &usage); e != nil {
		refused(&p, e)
	}
	p.Data = struct {
		Account   domain.Account
		Plan      domain.Plan
		Bandwidth client.Bandwidth
	}{v.account, plan, usage.Bandwidth}
	s.render(w, http.StatusOK, "account", v, p)
}

func (s *Server) ipsPage(w http.ResponseWriter, r *http.Request, v *visitor) {
	s.showIPs(w, r, v, page{}, http.StatusOK)
}

// ipsChange adds (the given IP, or the browser's own) or deletes an authorized IP through the API.
func (s *Server) ipsChange(w http.ResponseWriter, r *http.Request, v *visitor) {
	var p page
	var status int
	ip := r.PostFormValue("ip")
	switch r.PostFormValue("action") {
	case "delete":
		status = s.change(r, v, &p, "/api/ip/delete/", url.Values{"ip": {ip}}, nil,
			func() string { return ip + " is no longer authorized." })
	default:
		params := url.Values{}
		if ip != "" {
			params.Set("ip", ip)
		}
		var added struct{ IP string }
		status = s.change(r, v, &p, "/api/ip/add/", params, &added,
			func() string { return added.IP + " is authorized: requests from it need no password." })
	}
	s.showIPs(w, r, v, p, status)
}

func (s *Server) showIPs(w http.ResponseWriter, r *http.Request, v *visitor, p page, status int) {
	p.Title, p.Nav = "Authorized IPs", "ips"
	var list struct{ IPs []string }
	status = s.read(r, v, &p, status, "/api/ips/", nil, &list)
	p.Data = struct {
		IPs []string
		You string
	}{list.IPs, clientIP(r).String()}
	s.render(w, status, "ips", v, p)
}
