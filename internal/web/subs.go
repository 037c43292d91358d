package web

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/exitmesh/exitmesh/internal/account"
	"github.com/exitmesh/exitmesh/internal/domain"
)

// subView is a sub-account as the pages show it and its form takes it back: proxy servers by
// address (and by name, to read), IPs as text.
type subView struct {
	Username   string
	Active     bool
	Proxies    []string // addresses
	ProxyNames []string
	IPs        []string
	domain.Profile
	domain.Limits
	MonthlyGB, TotalGB string // the limits as the form takes them back
	UsedPeriod         int64  // bytes in the account's billing period (the list only)
}

func viewSub(sub domain.SubAccount, cat account.Catalogue) subView {
	ips := make([]string, len(sub.IPs))
	for i, ip := range sub.IPs {
		ips[i] = ip.String()
	}
	picked := cat.Pick(sub.Proxies)
	v := subView{Username: sub.Username, Active: sub.Active, IPs: ips, Profile: sub.Profile, Limits: sub.Limits,
		MonthlyGB: gbValue(sub.MonthlyLimit), TotalGB: gbValue(sub.TotalLimit)}
	for _, p := range picked {
		v.Proxies, v.ProxyNames = append(v.Proxies, p.Address), append(v.ProxyNames, p.Name)
	}
	return v
}

func (s *Server) subsPage(w http.ResponseWriter, r *http.Request, v *visitor) {
	s.showSubs(w, r, v, page{}, http.StatusOK)
}

func (s *Server) showSubs(w http.ResponseWriter, r *http.Request, v *visitor, p page, status int) {
	p.Title, p.Nav = "Sub-accounts", "subs"
	var rows []subView
	if c, st := s.read(r, v, &p, status); c == nil {
		status = st
	} else {
		subs, err := s.cfg.Accounts.SubsWithBandwidth(r.Context(), c)
		var cat account.Catalogue
		if err == nil {
			cat, err = s.cfg.Accounts.Catalogue(r.Context())
		}
		status = s.shown(&p, st, err)
		for _, sub := range subs {
			row := viewSub(sub.SubAccount, cat)
			row.UsedPeriod = sub.Used.Period
			rows = append(rows, row)
		}
	}
	p.Data = rows
	s.render(w, status, "subs", v, p)
}

// findSub finds the visitor's sub-account username; when it is not there (or not the visitor's), p
// says so with the status to answer.
func (s *Server) findSub(r *http.Request, v *visitor, p *page, username string) (subView, int) {
	c, status := s.read(r, v, p, http.StatusOK)
	if c == nil {
		return subView{}, status
	}
	sub, err := s.cfg.Accounts.Sub(r.Context(), c, username)
	var cat account.Catalogue
	if err == nil {
		cat, err = s.cfg.Accounts.Catalogue(r.Context())
	}
	if err != nil {
		return subView{}, s.refused(p, err)
	}
	return viewSub(sub, cat), status
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
func (s *Server) showSubForm(w http.ResponseWriter, r *http.Request, v *visitor, p page, status int, editing bool, sub *subView) {
	p.Nav = "subs"
	var mine []proxyServer
	var ips []string
	c, status := s.read(r, v, &p, status)
	if c != nil {
		var err error
		mine, _, err = s.proxyServers(r.Context(), c)
		status = s.shown(&p, status, err)
		for _, ip := range c.Account.IPs {
			ips = append(ips, ip.String())
		}
	}
	form := struct {
		Sub     subView
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
		form.Sub.MonthlyGB, form.Sub.TotalGB = "0", "0"
		for _, ps := range mine {
			form.Sub.Proxies = append(form.Sub.Proxies, ps.Address)
		}
	}
	for _, ps := range mine {
		form.Proxies = append(form.Proxies, choice{ps.Address, ps.Label + " " + ps.Address, slices.Contains(form.Sub.Proxies, ps.Address)})
	}
	for _, ip := range ips {
		form.IPs = append(form.IPs, choice{ip, ip, slices.Contains(form.Sub.IPs, ip)})
	}
	p.Data = form
	s.render(w, status, "sub_form", v, p)
}

// subsChange creates, edits, enables, disables or deletes a sub-account. A refused form is shown
// again as it was filled in.
func (s *Server) subsChange(w http.ResponseWriter, r *http.Request, v *visitor) {
	var p page
	var status int
	username := strings.TrimSpace(r.PostFormValue("username"))
	in := account.SubInput{Username: username}
	action := r.PostFormValue("action")
	switch action {
	case "create", "edit":
		if pw := r.PostFormValue("password"); pw != "" || action == "create" {
			in.Password = &pw
		}
		// With no box ticked the sub-account gets none.
		proxies, ips := r.PostForm["proxies"], r.PostForm["ips"]
		in.Proxies, in.IPs = &proxies, &ips
		in.Email, in.FirstName, in.LastName = formValue(r, "email"), formValue(r, "first_name"), formValue(r, "last_name")
		in.Monthly, in.Total = formValue(r, "monthly_bandwidth_limit"), formValue(r, "total_bandwidth_limit")
		entered := subView{Username: username, Proxies: proxies, IPs: ips, Active: true,
			Profile:   domain.Profile{Email: r.PostFormValue("email"), FirstName: r.PostFormValue("first_name"), LastName: r.PostFormValue("last_name")},
			MonthlyGB: r.PostFormValue("monthly_bandwidth_limit"), TotalGB: r.PostFormValue("total_bandwidth_limit")}
		if action == "edit" {
			entered.Active = r.PostFormValue("active") != ""
			in.Active = &entered.Active
		}
		status = s.change(r, v, &p, func(ctx context.Context, c *account.Caller) (string, error) {
			save := s.cfg.Accounts.CreateSub
			if action == "edit" {
				save = s.cfg.Accounts.EditSub
			}
			sub, err := save(ctx, c, in)
			return sub.Username + " is saved: " + activeSentence(sub.Active), err
		})
		if status != http.StatusOK {
			s.showSubForm(w, r, v, p, status, action == "edit", &entered)
			return
		}
	case "enable", "disable":
		active := action == "enable"
		in.Active = &active
		status = s.change(r, v, &p, func(ctx context.Context, c *account.Caller) (string, error) {
			sub, err := s.cfg.Accounts.EditSub(ctx, c, in)
			return sub.Username + " is " + action + "d: " + activeSentence(sub.Active), err
		})
	case "delete":
		status = s.change(r, v, &p, func(ctx context.Context, c *account.Caller) (string, error) {
			return username + " is deleted: its username and password no longer work.", s.cfg.Accounts.DeleteSub(ctx, c, username)
		})
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
