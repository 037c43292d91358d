package operator

import (
	"context"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// PlanRow is a plan with the number of accounts on it.
type PlanRow struct {
	domain.Plan
	Accounts int
}

// Plans lists every plan, by name, with its accounts.
func (s *Service) Plans(ctx context.Context) ([]PlanRow, error) {
	plans, err := s.cfg.Store.ListPlans(ctx)
	if err != nil {
		return nil, err
	}
	onPlan, err := s.cfg.Store.CountAccountsByPlan(ctx)
	if err != nil {
		return nil, err
	}
	rows := make([]PlanRow, len(plans))
	for i, p := range plans {
		rows[i] = PlanRow{Plan: p, Accounts: onPlan[p.Name]}
	}
	return rows, nil
}

// CreatePlan creates plan p (ECONFLICT if one has its name).
func (s *Service) CreatePlan(ctx context.Context, p domain.Plan) error {
	if err := s.cfg.Store.CreatePlan(ctx, p); err != nil {
		return err
	}
	s.cfg.Changed(ctx)
	return nil
}

// PlanChange changes the limits that are non-nil; the others stay as they are.
type PlanChange struct {
	MaxProxies, MaxSubs, MaxIPs, MaxHostnames, MaxTokens *int
	MonthlyBandwidth                                     *int64 // bytes per calendar month (UTC); 0 = unlimited
	Rate, Connections                                    *int   // per account and node; 0 = none
	Speed                                                *int64 // bytes per second each way, per account and node; 0 = none
}

// LimitsOf is the change that gives a plan every limit of p.
func LimitsOf(p domain.Plan) PlanChange {
	return PlanChange{MaxProxies: &p.MaxProxies, MaxSubs: &p.MaxSubs, MaxIPs: &p.MaxIPs,
		MaxHostnames: &p.MaxHostnames, MaxTokens: &p.MaxTokens, MonthlyBandwidth: &p.MonthlyBandwidth,
		Rate: &p.Rate, Connections: &p.Connections, Speed: &p.Speed}
}

// Apply writes the limits c changes into p.
func (c PlanChange) Apply(p *domain.Plan) {
	for _, l := range []struct{ dst, v *int }{{&p.MaxProxies, c.MaxProxies}, {&p.MaxSubs, c.MaxSubs},
		{&p.MaxIPs, c.MaxIPs}, {&p.MaxHostnames, c.MaxHostnames}, {&p.MaxTokens, c.MaxTokens},
		{&p.Rate, c.Rate}, {&p.Connections, c.Connections}} {
		if l.v != nil {
			*l.dst = *l.v
		}
	}
	if c.MonthlyBandwidth != nil {
		p.MonthlyBandwidth = *c.MonthlyBandwidth
	}
	if c.Speed != nil {
		p.Speed = *c.Speed
	}
}

// EditPlan changes the limits c gives of the plan called name (ENOTFOUND if there is none) and
// returns the plan as it is now. A smaller limit applies to what accounts add next; what they
// have stays.
func (s *Service) EditPlan(ctx context.Context, name string, c PlanChange) (domain.Plan, error) {
	p, err := s.cfg.Store.GetPlan(ctx, name)
	if err != nil {
		return domain.Plan{}, err
	}
	c.Apply(&p)
	if err := s.cfg.Store.UpdatePlan(ctx, p); err != nil {
		return domain.Plan{}, err
	}
	s.cfg.Changed(ctx)
	return p, nil
}
