package operator

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// NewAccount is an account to create, as the operator typed it.
type NewAccount struct {
	Username  string
	Password  string // checked against the password rules; only its hash is stored
	Plan      string
	Confirmed bool     // false: the account waits for its email confirmation
	Proxies   []string // proxy servers to authorize
	IPs       []string // client IPs to authorize; space around an item and empty items are ignored
}

// CreateAccount checks and creates an account and returns it as stored. An IP that is not one
// and a missing plan are field errors ("ips", "plan"); the password rules, the username rules and
// the plan's limits refuse with the store's sentence.
func (s *Service) CreateAccount(ctx context.Context, a NewAccount) (domain.Account, error) {
	form := domain.FormErrors{}
	var ips []netip.Addr
	for _, text := range a.IPs {
		if text = strings.TrimSpace(text); text == "" {
			continue
		}
		ip, err := netip.ParseAddr(text)
		if err != nil {
			form.Add("ips", fmt.Sprintf("%q is not an IP address.", text))
			continue
		}
		ips = append(ips, ip)
	}
	if a.Plan == "" {
		form.Add("plan", "Choose a plan.")
	}
	if err := form.Err(); err != nil {
		return domain.Account{}, err
	}
	hash, err := passwordHash(a.Password)
	if err != nil {
		return domain.Account{}, err
	}
	acct, err := s.cfg.Store.CreateAccount(ctx, domain.NewAccount{Username: a.Username, PasswordHash: hash,
		Plan: a.Plan, Confirmed: a.Confirmed, Proxies: a.Proxies, IPs: ips})
	if err != nil {
		return domain.Account{}, err
	}
	s.cfg.Changed(ctx)
	return acct, nil
}

// AccountRow is an account as an operator reads it in a list.
type AccountRow struct {
	domain.Account
	Status    string // active, unconfirmed or disabled
	Bandwidth string // this month's against the plan's: "1.2 GB of 10 GB"
}

// AccountsPage is a page of accounts, described.
type AccountsPage struct {
	Accounts []AccountRow
	Next     string        // the username the next page starts after; "" after the last page
	Month    string        // the month of the bandwidth, YYYY-MM (UTC)
	Plans    []domain.Plan // every plan, by name: the accounts' limits, and the plans to move one to
}

// AccountsPage returns the page of accounts q selects, each with its status and its bandwidth this
// month against its plan's.
func (s *Service) AccountsPage(ctx context.Context, q domain.AccountQuery) (AccountsPage, error) {
	page, err := s.cfg.Store.ListAccounts(ctx, q)
	if err != nil {
		return AccountsPage{}, err
	}
	use, err := s.monthUse(ctx)
	if err != nil {
		return AccountsPage{}, err
	}
	rows := make([]AccountRow, len(page.Accounts))
	for i, a := range page.Accounts {
		rows[i] = use.row(a)
	}
	return AccountsPage{Accounts: rows, Next: page.Next, Month: use.month.Month, Plans: use.plans}, nil
}

// AccountDetail is one account with its sub-accounts.
type AccountDetail struct {
	AccountRow
	Subs  []domain.SubAccount
	Month string // the month of the bandwidth, YYYY-MM (UTC)
}

// Account describes the account called username (ENOTFOUND if there is none).
func (s *Service) Account(ctx context.Context, username string) (AccountDetail, error) {
	a, err := s.cfg.Store.GetAccount(ctx, username)
	if err != nil {
		return AccountDetail{}, err
	}
	subs, err := s.cfg.Store.ListSubAccounts(ctx, a.Username)
	if err != nil {
		return AccountDetail{}, err
	}
	use, err := s.monthUse(ctx)
	if err != nil {
		return AccountDetail{}, err
	}
	return AccountDetail{AccountRow: use.row(a), Subs: subs, Month: use.month.Month}, nil
}

// Confirm marks an account's email as confirmed, as its confirmation link would.
func (s *Service) Confirm(ctx context.Context, username string) (domain.Account, error) {
	return s.updateAccount(ctx, username, domain.AccountUpdate{Confirmed: new(true)})
}

// Disable makes the proxies and the API refuse an account, keeping everything it has.
func (s *Service) Disable(ctx context.Context, username string) (domain.Account, error) {
	return s.updateAccount(ctx, username, domain.AccountUpdate{Disabled: new(true)})
}

// Enable undoes Disable.
func (s *Service) Enable(ctx context.Context, username string) (domain.Account, error) {
	return s.updateAccount(ctx, username, domain.AccountUpdate{Disabled: new(false)})
}

// SetPlan moves an account to another plan. What it has beyond the new plan's limits stays; it
// cannot add more until it is within them.
func (s *Service) SetPlan(ctx context.Context, username, plan string) (domain.Account, error) {
	return s.updateAccount(ctx, username, domain.AccountUpdate{Plan: &plan})
}

// SetBillingDay makes the account's billing periods start on day (1-28) of each month, 00:00 UTC.
// Its usage in the new current period is counted again from the days' records, so its monthly
// limits apply to that period from now on.
func (s *Service) SetBillingDay(ctx context.Context, username string, day int) (domain.Account, error) {
	if day < 1 || day > domain.MaxBillingDay {
		return domain.Account{}, domain.FieldError("billing_day", fmt.Sprintf("The billing day must be from 1 to %d.", domain.MaxBillingDay))
	}
	return s.updateAccount(ctx, username, domain.AccountUpdate{BillingDay: &day})
}

// ResetPassword checks password against the password rules and makes it the account's.
func (s *Service) ResetPassword(ctx context.Context, username, password string) (domain.Account, error) {
	hash, err := passwordHash(password)
	if err != nil {
		return domain.Account{}, err
	}
	return s.updateAccount(ctx, username, domain.AccountUpdate{PasswordHash: &hash})
}

func (s *Service) updateAccount(ctx context.Context, username string, u domain.AccountUpdate) (domain.Account, error) {
	a, err := s.cfg.Store.UpdateAccount(ctx, username, u)
	if err != nil {
		return domain.Account{}, err
	}
	s.cfg.Changed(ctx)
	return a, nil
}

// monthUse is every account's bandwidth in the current month (UTC) with every plan's limit: what
// the nodes have flushed, which trails the proxies by up to usage.flush_interval.
type monthUse struct {
	month  domain.MonthBandwidth
	plans  []domain.Plan
	limits map[string]int64 // plan name → monthly bandwidth
}

func (s *Service) monthUse(ctx context.Context) (monthUse, error) {
	plans, err := s.cfg.Store.ListPlans(ctx)
	if err != nil {
		return monthUse{}, err
	}
	month, err := s.cfg.Store.MonthBandwidth(ctx, s.cfg.Now().UTC().Format("2006-01"), "")
	if err != nil {
		return monthUse{}, err
	}
	limits := make(map[string]int64, len(plans))
	for _, p := range plans {
		limits[p.Name] = p.MonthlyBandwidth
	}
	return monthUse{month: month, plans: plans, limits: limits}, nil
}

// row describes a.
func (m monthUse) row(a domain.Account) AccountRow {
	return AccountRow{Account: a, Status: accountStatus(a), Bandwidth: BandwidthUsed(m.month.Bytes[a.ID], m.limits[a.Plan])}
}
