package web

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/operator"
)

// opsListMax is how many accounts, or bans, one page lists; the next page follows a link.
const opsListMax = 200

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
// plan, as exitmesh admin account create|confirm|disable|enable|set-plan does.
func (s *Server) opsAccountsChange(w http.ResponseWriter, r *http.Request, v *visitor) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	ctx, ops := r.Context(), s.cfg.Operator
	var p page
	status := http.StatusOK
	form := opsAccountForm{Confirmed: true}
	username := strings.TrimSpace(r.PostFormValue("username"))
	action := r.PostFormValue("action")
	var err error
	var notice string
	switch action {
	case "create":
		form = opsAccountForm{Username: username, Plan: r.PostFormValue("plan"), IPs: r.PostFormValue("ips"),
			Proxies: r.PostForm["proxy"], Confirmed: r.PostFormValue("confirmed") != ""}
		var acct domain.Account
		acct, err = ops.CreateAccount(ctx, operator.NewAccount{Username: form.Username, Password: r.PostFormValue("password"),
			Plan: form.Plan, Confirmed: form.Confirmed, Proxies: form.Proxies,
			IPs: strings.FieldsFunc(form.IPs, func(c rune) bool { return c == ',' || c == ' ' })})
		if err == nil {
			username, notice = acct.Username, "Account "+acct.Username+" created on plan "+acct.Plan+"."
			form = opsAccountForm{Confirmed: true}
		}
	case "confirm":
		_, err = ops.Confirm(ctx, username)
		notice = username + " is confirmed."
	case "disable":
		if username == v.account.Username { // the page would lock its only user out at once
			err = domain.Errorf(domain.EINVALID, "You cannot disable the account you are signed in with.")
			break
		}
		_, err = ops.Disable(ctx, username)
		notice = username + " is disabled: the proxies and the API refuse it, on every node within a sync interval."
	case "enable":
		_, err = ops.Enable(ctx, username)
		notice = username + " is enabled again."
	case "set-plan":
		plan := r.PostFormValue("plan")
		_, err = ops.SetPlan(ctx, username, plan)
		notice = username + " is on plan " + plan + " now."
	case "set-billing-day":
		day, convErr := strconv.Atoi(r.PostFormValue("billing_day"))
		if convErr != nil {
			day = 0 // the service refuses it with its sentence
		}
		_, err = ops.SetBillingDay(ctx, username, day)
		notice = fmt.Sprintf("%s bills from day %d of each month now: its monthly limits count from then.", username, day)
	default:
		err = domain.Errorf(domain.EINVALID, "Unknown action.")
	}
	if err != nil {
		status = s.opsFailed(&p, err)
	} else {
		s.opsDone(&p, v, action, username, notice)
	}
	s.showOpsAccounts(w, r, v, p, status, form)
}

// showOpsAccounts renders a page of the accounts whose username starts with the search q (any case),
// from after the username in after.
func (s *Server) showOpsAccounts(w http.ResponseWriter, r *http.Request, v *visitor, p page, status int, form opsAccountForm) {
	ctx := r.Context()
	p.Title, p.Nav = "Accounts", "ops-accounts"
	q := strings.TrimSpace(r.FormValue("q"))
	after := r.FormValue("after")
	accts, err := s.cfg.Operator.AccountsPage(ctx, domain.AccountQuery{Prefix: q, After: after, Limit: opsListMax})
	var catalogue []domain.ProxyServer
	if err == nil {
		catalogue, err = s.cfg.Operator.ProxyServers(ctx)
	}
	if err != nil {
		s.opsPageFailed(w, r, v, err)
		return
	}
	choices := make([]opsChoice, len(catalogue))
	for i, ps := range catalogue {
		choices[i] = opsChoice{Name: ps.Name, Checked: slices.Contains(form.Proxies, ps.Name)}
	}
	p.Data = struct {
		Query, After string
		Accounts     []operator.AccountRow
		Next         string
		Month        string
		Plans        []domain.Plan
		Proxies      []opsChoice
		Form         opsAccountForm
		MinPassword  int
		Days         []int // the billing days to choose from
	}{q, after, accts.Accounts, accts.Next, accts.Month, accts.Plans, choices, form, domain.MinPasswordLength, billingDays}
	s.render(w, status, "ops_accounts", v, p)
}

// billingDays are the days an account's billing period may start on.
var billingDays = func() []int {
	days := make([]int, domain.MaxBillingDay)
	for i := range days {
		days[i] = i + 1
	}
	return days
}()
