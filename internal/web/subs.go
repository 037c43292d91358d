package web

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/exitmesh/exitmesh/client"
)

func (s *Server) subsPage(w http.ResponseWriter, r *http.Request, v *visitor) {
	s.showSubs(w, r, v, page{}, http.StatusOK)
}

func (s *Server) showSubs(w http.ResponseWriter, r *http.Request, v *visitor, p page, status int) {
	p.Title, p.Nav = "Sub-accounts", "subs"
	var list struct{ Subs []client.SubAccount }
	status = s.read(r, v, &p, status, "/api/subs/", nil, &list)
	mine, _, status := s.proxyServers(r, v, &p, status)
	names := make(map[string]string, len(mine)) // address → name
	for _, ps := range mine {
		names[ps.Address] = ps.Name
	}
	type row struct {
		client.SubAccount
		ProxyNames []string
	}
	rows := make([]row, len(list.Subs))
	for i, sub := range list.Subs {
		rows[i].SubAccount = sub
		for _, addr := range sub.Proxies {
			rows[i].ProxyNames = append(rows[i].ProxyNames, cmp.Or(names[addr], addr))
		}
	}
	p.Data = rows
	s.render(w, status, "subs", v, p)
}

// findSub finds the visitor's sub-account username through the API; when it is not there, p says
// so and the status is 404.
func (s *Server) findSub(r *http.Request, v *visitor, p *page, username string) (client.SubAccount, int) {
	var list struct{ Subs []client.SubAccount }
	status := s.read(r, v, p, http.StatusOK, "/api/subs/", nil, &list)
	if i := slices.IndexFunc(list.Subs, func(sub client.SubAccount) bool { return sub.Username == username }); i >= 0 {
		return list.Subs[i], status
	}
	if p.Error == "" {
		p.Error, status = "Sub-account not found.", http.StatusNotFound
	}
	return client.SubAccount{}, status
}

func (s *Server) subNewPage(w http.ResponseWriter, r *http.Request, v *visitor) {
	s.showSubForm(w, r, v, page{}, http.StatusOK, false, nil)
}

func (s *Server) subEditPage(w http.ResponseWriter, r *http.Request, v *visitor) {
	var p page
	sub, status := s.findSub(r, v, &p, r.PathValue("username"))
	if status != http.StatusOK {
		s.showSubs(w, r, v, p, status)
		return
	}
	s.showSubForm(w, r, v, p, status, true, &sub)
}

func (s *Server) subDeletePage(w http.ResponseWriter, r *http.Request, v *visitor) {
	p := page{Title: "Delete a sub-account", Nav: "subs"}
	sub, status := s.findSub(r, v, &p, r.PathValue("username"))
	if status != http.StatusOK {
		s.showSubs(w, r, v, p, status)
		return
	}
	p.Data = sub
	s.render(w, status, "sub_delete", v, p)
}

// choice is a checkbox of the sub-account form.
type choice struct {
	Value, Label string
	Checked      bool
}

// showSubForm shows the form that creates a sub-account or edits one, filled in with sub: what a
// sub-account has of the account's proxy servers and IPs is ticked. With sub nil, the form is a new
// sub-account's, with every proxy server ticked.
func (s *Server) showSubForm(w http.ResponseWriter, r *http.Request, v *visitor, p page, status int, editing bool, sub *client.SubAccount) {
	p.Nav = "subs"
	mine, _, status := s.proxyServers(r, v, &p, status)
	var ips struct{ IPs []string }
	status = s.read(r, v, &p, status, "/api/ips/", nil, &ips)
	form := struct {
		Sub     client.SubAccount
		Editing bool
		Proxies []choice
		IPs     []choice
	}{Editing: editing}
	p.Title = "New sub-account"
	if editing {
		p.Title = "Edit " + sub.Username
	}
	if sub != nil {
		form.Sub = *sub
	} else {
		form.Sub.Active = true
		for _, ps := range mine {
			form.Sub.Proxies = append(form.Sub.Proxies, ps.Address)
		}
	}
	for _, ps := range mine {
		form.Proxies = append(form.Proxies, choice{ps.Address, ps.Label + " " + ps.Address, slices.Contains(form.Sub.Proxies, ps.Address)})
	}
	for _, ip := range ips.IPs {
		form.IPs = append(form.IPs, choice{ip, ip, slices.Contains(form.Sub.IPs, ip)})
	}
	p.Data = form
	s.render(w, status, "sub_form", v, p)
}

// subsChange creates, edits, enables, disables or deletes a sub-account through the API. A refused
// form is shown again as it was filled in.
func (s *Server) subsChange(w http.ResponseWriter, r *http.Request, v *visitor) {
	var p page
	var status int
	username := strings.TrimSpace(r.PostFormValue("username"))
	params := url.Values{"username": {username}}
	var result client.SubAccount
	action := r.PostFormValue("action")
	switch action {
	case "create", "edit":
		if pw := r.PostFormValue("password"); pw != "" || action == "create" {
			params.Set("password", pw)
		}
		// An empty value is an empty list: with no box ticked the sub-account gets none.
		params["proxies"] = append([]string{""}, r.PostForm["proxies"]...)
		params["ips"] = append([]string{""}, r.PostForm["ips"]...)
		entered := client.SubAccount{Username: username, Proxies: r.PostForm["proxies"], IPs: r.PostForm["ips"], Active: true}
		if action == "edit" {
			entered.Active = r.PostFormValue("active") != ""
			params.Set("active", strconv.FormatBool(entered.Active))
		}
		status = s.change(r, v, &p, "/api/sub/"+action+"/", params, &result,
			func() string { return result.Username + " is saved: " + activeSentence(result.Active) })
		if status != http.StatusOK {
			s.showSubForm(w, r, v, p, status, action == "edit", &entered)
			return
		}
	case "enable", "disable":
		params.Set("active", strconv.FormatBool(action == "enable"))
		status = s.change(r, v, &p, "/api/sub/edit/", params, &result,
			func() string { return result.Username + " is " + action + "d: " + activeSentence(result.Active) })
	case "delete":
		status = s.change(r, v, &p, "/api/sub/delete/", params, nil,
			func() string { return username + " is deleted: its username and password no longer work." })
	default:
		p.Error, status = "Choose what to do with the sub-account.", http.StatusBadRequest
	}
	s.showSubs(w, r, v, p, status)
}

func activeSentence(active bool) string {
	if active {
		return "it can use its proxy servers within a second."
	}
	return "the proxy servers refuse it within a second."
}
