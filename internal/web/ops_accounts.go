package web

import (
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/operator"
)

// opsListMax is how many accounts, or bans, one page lists; the next page follows a link.
const opsListMax = 200

// opsAccountRow is one account as the accounts page lists it.
type opsAccountRow struct {
	domain.Account
	Status    string // active, unconfirmed or disabled
	Bandwidth string // this month against the plan's: "1.2 GB of 10 GB"
}

// opsChoice is a proxy server in the create form's list, ticked or not.
type opsChoice struct {
	Name    string
	Checked bool
}

// opsAccountForm is the create form as it was sent, to show again when the store refuses it.
type opsAccountForm struct {
	Username, Plan, IPs string
	Proxies             []string
	Confirmed           bool
}

func (s *Server) opsAccountsPage(w http.ResponseWriter, r *http.Request, v *visitor) {
	s.showOpsAccounts(w, r, v, page{}, http.StatusOK, opsAccountForm{Confirmed: true})
}

// opsAccountsChange creates an account, or confirms, disables, enables one or moves it to another
// plan, with the store's checks: the same as exitmesh admin account create|confirm|disable|enable|set-plan.
func (s *Server) opsAccountsChange(w http.ResponseWriter, r *http.Request, v *visitor) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	ctx := r.Context()
	var p page
	status := http.StatusOK
	form := opsAccountForm{Confirmed: true}
	username := strings.TrimSpace(r.PostFormValue("username"))
	action := r.PostFormValue("action")
	update := func(u domain.AccountUpdate, notice string) {
		if _, err := s.cfg.Store.UpdateAccount(ctx, username, u); err != nil {
			status = s.opsFailed(&p, err)
			return
		}
		s.changed(ctx)
		s.opsDone(&p, v, action, username, notice)
	}
	yes, no := true, false
	switch action {
	case "create":
		form = opsAccountForm{Username: username, Plan: r.PostFormValue("plan"), IPs: r.PostFormValue("ips"),
			Proxies: r.PostForm["proxy"], Confirmed: r.PostFormValue("confirmed") != ""}
		acct, err := s.createAccount(r, form, r.PostFormValue("password"))
		if err != nil {
			status = s.opsFailed(&p, err)
			break
		}
		s.changed(ctx)
		s.opsDone(&p, v, action, acct.Username, "Account "+acct.Username+" created on plan "+acct.Plan+".")
		form = opsAccountForm{Confirmed: true}
	case "confirm":
		update(domain.AccountUpdate{Confirmed: &yes}, username+" is confirmed.")
	case "disable":
		if username == v.account.Username { // the page would lock its only user out at once
			p.Error, status = "You cannot disable the account you are signed in with.", http.StatusBadRequest
			break
		}
		update(domain.AccountUpdate{Disabled: &yes}, username+" is disabled: the proxies and the API refuse it, on every node within a sync interval.")
	case "enable":
		update(domain.AccountUpdate{Disabled: &no}, username+" is enabled again.")
	case "set-plan":
		plan := r.PostFormValue("plan")
		update(domain.AccountUpdate{Plan: &plan}, username+" is on plan "+plan+" now.")
	default:
		p.Error, status = "Unknown action.", http.StatusBadRequest
	}
	s.showOpsAccounts(w, r, v, p, status, form)
}

// createAccount checks and hashes the password and creates the account, as admin account create does.
func (s *Server) createAccount(r *http.Request, f opsAccountForm, password string) (domain.Account, error) {
	var ips []netip.Addr
	for field := range strings.FieldsFuncSeq(f.IPs, func(c rune) bool { return c == ',' || c == ' ' }) {
		ip, err := netip.ParseAddr(field)
		if err != nil {
			return domain.Account{}, domain.Errorf(domain.EINVALID, "%q is not an IP address.", field)
		}
		ips = append(ips, ip)
	}
	if f.Plan == "" {
		return domain.Account{}, domain.Errorf(domain.EINVALID, "Choose a plan.")
	}
	hash, err := operator.PasswordHash(password)
	if err != nil {
		return domain.Account{}, err
	}
	return s.cfg.Store.CreateAccount(r.Context(), domain.NewAccount{Username: f.Username, PasswordHash: hash,
		Plan: f.Plan, Confirmed: f.Confirmed, Proxies: f.Proxies, IPs: ips})
}

// showOpsAccounts renders a page of the accounts whose username starts with the search q (any case),
// from after the username in after.
func (s *Server) showOpsAccounts(w http.ResponseWriter, r *http.Request, v *visitor, p page, status int, form opsAccountForm) {
	ctx := r.Context()
	p.Title, p.Nav = "Accounts", "ops-accounts"
	q := strings.TrimSpace(r.FormValue("q"))
	after := r.FormValue("after")
	accts, err := s.cfg.Store.ListAccounts(ctx, domain.AccountQuery{Prefix: q, After: after, Limit: opsListMax})
	var plans []domain.Plan
	if err == nil {
		plans, err = s.cfg.Store.ListPlans(ctx)
	}
	var catalogue []domain.ProxyServer
	if err == nil {
		catalogue, err = s.cfg.Store.ListProxyServers(ctx)
	}
	var month domain.MonthBandwidth
	if err == nil {
		month, err = operator.MonthBandwidth(ctx, s.cfg.Store, time.Now())
	}
	if err != nil {
		s.opsPageFailed(w, r, v, err)
		return
	}
	limits := make(map[string]int64, len(plans))
	for _, pl := range plans {
		limits[pl.Name] = pl.MonthlyBandwidth
	}
	var rows []opsAccountRow
	for _, a := range accts.Accounts {
		rows = append(rows, opsAccountRow{Account: a, Status: operator.AccountStatus(a),
			Bandwidth: operator.BandwidthUsed(month.Bytes[a.ID], limits[a.Plan])})
	}
	choices := make([]opsChoice, len(catalogue))
	for i, ps := range catalogue {
		choices[i] = opsChoice{Name: ps.Name, Checked: slices.Contains(form.Proxies, ps.Name)}
	}
	p.Data = struct {
		Query, After string
		Accounts     []opsAccountRow
		Next         string
		Month        string
		Plans        []domain.Plan
		Proxies      []opsChoice
		Form         opsAccountForm
		MinPassword  int
	}{q, after, rows, accts.Next, month.Month, plans, choices, form, domain.MinPasswordLength}
	s.render(w, status, "ops_accounts", v, p)
}
