package account

import (
	"context"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// GB is the unit of bandwidth limits in the API (API.md §2.1): 10^9 bytes.
const GB = 1e9

// maxGB bounds a bandwidth limit: a petabyte is more than any plan sells.
const maxGB = 1e6

// ParseGB reads a bandwidth limit in GB (decimals allowed, 0 for none) into bytes, reporting a bad
// value under field.
func ParseGB(fe domain.FormErrors, field, v string) int64 {
	gb, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || math.IsNaN(gb) || gb < 0 || gb > maxGB {
		fe.Add(field, "Enter a size in GB, such as 5 or 0.5 (0 for no limit).")
		return 0
	}
	return int64(math.Round(gb * GB))
}

// optionalGB parses a limit that may be absent (nil).
func optionalGB(fe domain.FormErrors, field string, v *string) *int64 {
	if v == nil {
		return nil
	}
	n := ParseGB(fe, field, *v)
	return &n
}

// AccountView is an account as its owner sees it: the account, its plan, and what it used in its
// current billing period and for all time, sub-accounts included.
type AccountView struct {
	Account     domain.Account
	Plan        domain.Plan
	PeriodStart time.Time // the current billing period's first instant; it ends a month later
	Used        domain.Used
}

// Account returns the caller's account with its bandwidth figures, as the store has them (the nodes
// flush their counters every usage.flush_interval).
func (s *Service) Account(ctx context.Context, c *Caller) (AccountView, error) {
	b, err := s.cfg.Store.AccountBandwidth(ctx, c.Account.Username, s.cfg.Now())
	if err != nil {
		return AccountView{}, err
	}
	return AccountView{Account: c.Account, Plan: c.Plan, PeriodStart: b.PeriodStart, Used: b.Sum()}, nil
}

// LimitsInput is a change of bandwidth limits as typed, in GB; nil leaves a limit as it is.
type LimitsInput struct {
	Monthly, Total *string
}

// EditAccount changes the account's own bandwidth limits.
func (s *Service) EditAccount(ctx context.Context, c *Caller, in LimitsInput) (AccountView, error) {
	fe := domain.FormErrors{}
	u := domain.AccountUpdate{MonthlyLimit: optionalGB(fe, "monthly_bandwidth_limit", in.Monthly),
		TotalLimit: optionalGB(fe, "total_bandwidth_limit", in.Total)}
	if err := fe.Err(); err != nil {
		return AccountView{}, err
	}
	a, err := s.cfg.Store.UpdateAccount(ctx, c.Account.Username, u)
	if err != nil {
		return AccountView{}, err
	}
	s.changed(ctx)
	return s.Account(ctx, &Caller{Account: a, Plan: c.Plan})
}

// SubView is a sub-account with what it used in its account's current billing period and for all time.
type SubView struct {
	domain.SubAccount
	Used domain.Used
}

// SubsWithBandwidth lists the account's sub-accounts with their bandwidth figures.
func (s *Service) SubsWithBandwidth(ctx context.Context, c *Caller) ([]SubView, error) {
	subs, err := s.Subs(ctx, c)
	if err != nil {
		return nil, err
	}
	b, err := s.cfg.Store.AccountBandwidth(ctx, c.Account.Username, s.cfg.Now())
	if err != nil {
		return nil, err
	}
	out := make([]SubView, len(subs))
	for i, sub := range subs {
		out[i] = SubView{SubAccount: sub, Used: b.Logins[sub.ID]}
	}
	return out, nil
}
