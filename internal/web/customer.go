package web

import (
	"net/http"
	"net/url"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

func (s *Server) routeCustomer() {
	s.mux.HandleFunc("GET /account", s.signedIn(s.accountPage))
	s.mux.HandleFunc("GET /ips", s.signedIn(s.ipsPage))
	s.mux.HandleFunc("POST /ips", s.signedIn(s.ipsChange))
}

// bandwidth is the API's "bandwidth" object of /api/usage/.
type bandwidth struct {
	Month string `json:"month"`
	Used  int64  `json:"used"`
	Limit int64  `json:"limit"`
}

func (s *Server) accountPage(w http.ResponseWriter, r *http.Request, v *visitor) {
	p := page{Title: "Account", Nav: "account"}
	plan, err := s.cfg.Store.GetPlan(r.Context(), v.account.Plan)
	if err != nil {
		s.renderError(w, r, v, http.StatusServiceUnavailable, "Plan error: Unable to lookup subscription plan. Please try again in a few minutes.")
		return
	}
	var usage struct {
		Bandwidth bandwidth `json:"bandwidth"`
	}
	if e := s.cfg.API.Do(r, v.account.Username, "/api/usage/", url.Values{"from": {time.Now().UTC().Format("2006-01-02")}}, &usage); e != nil {
		refused(&p, e)
	}
	p.Data = struct {
		Account   domain.Account
		Plan      domain.Plan
		Bandwidth bandwidth
	}{v.account, plan, usage.Bandwidth}
	s.render(w, http.StatusOK, "account", v, p)
}

func (s *Server) ipsPage(w http.ResponseWriter, r *http.Request, v *visitor) {
	s.showIPs(w, r, v, page{}, http.StatusOK)
}

// ipsChange adds (the given IP, or the browser's own) or deletes an authorized IP through the API.
func (s *Server) ipsChange(w http.ResponseWriter, r *http.Request, v *visitor) {
	var p page
	status := http.StatusOK
	ip := r.PostFormValue("ip")
	switch r.PostFormValue("action") {
	case "delete":
		if e := s.cfg.API.Do(r, v.account.Username, "/api/ip/delete/", url.Values{"ip": {ip}}, nil); e != nil {
			status = refused(&p, e)
		} else {
			p.Notice = ip + " is no longer authorized."
		}
	default:
		params := url.Values{}
		if ip != "" {
			params.Set("ip", ip)
		}
		var added struct{ IP string }
		if e := s.cfg.API.Do(r, v.account.Username, "/api/ip/add/", params, &added); e != nil {
			status = refused(&p, e)
		} else {
			p.Notice = added.IP + " is authorized: requests from it need no password."
		}
	}
	s.showIPs(w, r, v, p, status)
}

func (s *Server) showIPs(w http.ResponseWriter, r *http.Request, v *visitor, p page, status int) {
	p.Title, p.Nav = "Authorized IPs", "ips"
	var list struct{ IPs []string }
	if e := s.cfg.API.Do(r, v.account.Username, "/api/ips/", nil, &list); e != nil && p.Error == "" {
		status = refused(&p, e)
	}
	p.Data = struct {
		IPs []string
		You string
	}{list.IPs, clientIP(r).String()}
	s.render(w, status, "ips", v, p)
}
