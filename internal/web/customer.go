package web

import (
	"context"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/internal/account"
	"github.com/exitmesh/exitmesh/internal/domain"
)

func (s *Server) routeCustomer() {
	s.mux.HandleFunc("GET /account", s.signedIn(s.accountPage))
	s.mux.HandleFunc("POST /account", s.signedIn(s.accountChange))
	s.mux.HandleFunc("POST /account/webhook", s.signedIn(s.webhookChange))
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
	s.showAccount(w, r, v, page{}, http.StatusOK, accountForms{})
}

// accountChange saves the account's own bandwidth limits; a refused form is shown as it was sent.
func (s *Server) accountChange(w http.ResponseWriter, r *http.Request, v *visitor) {
	var p page
	in := account.LimitsInput{Monthly: formValue(r, "monthly_bandwidth_limit"), Total: formValue(r, "total_bandwidth_limit")}
	status := s.change(r, v, &p, func(ctx context.Context, c *account.Caller) (string, error) {
		_, err := s.cfg.Accounts.EditAccount(ctx, c, in)
		return "Your bandwidth limits are saved: every node applies them within a second.", err
	})
	var sent *account.LimitsInput
	if status != http.StatusOK {
		sent = &in
	}
	s.showAccount(w, r, v, p, status, accountForms{limits: sent})
}

// webhookChange sets or removes the account's webhook; a refused URL is shown as it was sent.
func (s *Server) webhookChange(w http.ResponseWriter, r *http.Request, v *visitor) {
	var p page
	url := strings.TrimSpace(r.PostFormValue("url"))
	status := s.change(r, v, &p, func(ctx context.Context, c *account.Caller) (string, error) {
		_, err := s.cfg.Accounts.SetWebhook(ctx, c, url)
		if url == "" {
			return "Your webhook is removed: no more events are sent.", err
		}
		return "Your webhook is saved: events are signed with the secret shown.", err
	})
	var sent *string
	if status != http.StatusOK {
		sent = &url
	}
	s.showAccount(w, r, v, p, status, accountForms{webhookURL: sent})
}

// formValue returns a posted field, nil when the form did not send it.
func formValue(r *http.Request, name string) *string {
	if _, ok := r.PostForm[name]; !ok {
		return nil
	}
	v := r.PostFormValue(name)
	return &v
}

// gbValue renders bytes in GB as the forms take them back: "2.5", "0".
func gbValue(bytes int64) string {
	return strconv.FormatFloat(float64(bytes)/account.GB, 'f', -1, 64)
}

// accountForms are the account page's forms as sent, when refused, to show them again; nil: as saved.
type accountForms struct {
	limits     *account.LimitsInput
	webhookURL *string
}

func (s *Server) showAccount(w http.ResponseWriter, r *http.Request, v *visitor, p page, status int, sent accountForms) {
	p.Title, p.Nav = "Account", "account"
	c, status := s.read(r, v, &p, status)
	if c == nil {
		s.renderError(w, r, v, status, p.Error)
		return
	}
	view, err := s.cfg.Accounts.Account(r.Context(), c)
	status = s.shown(&p, status, err)
	hook, err := s.cfg.Accounts.Webhook(r.Context(), c)
	status = s.shown(&p, status, err)
	type bandwidth struct{ Used, Limit int64 }
	data := struct {
		account.AccountView
		PeriodStart, PeriodEnd string
		Period                 bandwidth
		MonthlyGB, TotalGB     string
		Webhook                domain.AccountWebhook
		WebhookURL             string // as typed, when refused
		WebhookEvents          []string
	}{AccountView: view, Webhook: hook, WebhookURL: hook.URL, WebhookEvents: domain.CustomerEvents, MonthlyGB: gbValue(c.Account.MonthlyLimit), TotalGB: gbValue(c.Account.TotalLimit),
		Period: bandwidth{view.Used.Period, c.Plan.MonthlyBandwidth}}
	data.Account, data.Plan = c.Account, c.Plan
	if !view.PeriodStart.IsZero() {
		data.PeriodStart, data.PeriodEnd = view.PeriodStart.Format(time.DateOnly), view.PeriodStart.AddDate(0, 1, 0).Format(time.DateOnly)
	}
	data.WebhookURL = deref(sent.webhookURL, data.WebhookURL)
	if sent.limits != nil {
		data.MonthlyGB, data.TotalGB = deref(sent.limits.Monthly, data.MonthlyGB), deref(sent.limits.Total, data.TotalGB)
	}
	p.Data = data
	s.render(w, status, "account", v, p)
}

// deref returns *p, or def when p is nil.
func deref(p *string, def string) string {
	if p == nil {
		return def
	}
	return *p
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
