package api

import (
	"github.com/exitmesh/exitmesh/internal/account"
	"github.com/exitmesh/exitmesh/internal/domain"
)

type subJSON struct {
	Username              string            `json:"username"`
	Proxies               []string          `json:"proxies"` // addresses, as /api/proxies/ lists them
	IPs                   []string          `json:"ips"`
	Active                bool              `json:"active"`
	Email                 string            `json:"email"`
	FirstName             string            `json:"first_name"`
	LastName              string            `json:"last_name"`
	MonthlyBandwidthLimit float64           `json:"monthly_bandwidth_limit"` // GB; 0 = none
	TotalBandwidthLimit   float64           `json:"total_bandwidth_limit"`
	Bandwidth             *subBandwidthJSON `json:"bandwidth,omitempty"` // in the list only
}

type subBandwidthJSON struct {
	PeriodUsed float64 `json:"period_used"` // GB, in the account's billing period
	TotalUsed  float64 `json:"total_used"`
}

func subOut(sub domain.SubAccount, cat account.Catalogue) subJSON {
	return subJSON{Username: sub.Username, Proxies: cat.Addresses(sub.Proxies), IPs: addrStrings(sub.IPs), Active: sub.Active,
		Email: sub.Email, FirstName: sub.FirstName, LastName: sub.LastName,
		MonthlyBandwidthLimit: gb(sub.MonthlyLimit), TotalBandwidthLimit: gb(sub.TotalLimit)}
}

func (s *Server) listSubs(c *call) (any, error) {
	subs, err := s.cfg.Accounts.SubsWithBandwidth(c.r.Context(), c.caller)
	if err != nil {
		return nil, err
	}
	cat, err := s.cfg.Accounts.Catalogue(c.r.Context())
	if err != nil {
		return nil, err
	}
	out := make([]subJSON, len(subs))
	for i, sub := range subs {
		out[i] = subOut(sub.SubAccount, cat)
		out[i].Bandwidth = &subBandwidthJSON{PeriodUsed: gb(sub.Used.Period), TotalUsed: gb(sub.Used.Total)}
	}
	return map[string][]subJSON{"subs": out}, nil
}

// subInput reads the fields of sub/create and sub/edit.
func subInput(c *call) (account.SubInput, error) {
	active, err := c.params.boolean("active")
	return account.SubInput{
		Username:    c.params.one("username"),
		Password:    c.params.optional("password"),
		Proxies:     c.params.optionalList("proxies"),
		IPs:         c.params.optionalList("ips"),
		Active:      active,
		Email:       c.params.optional("email"),
		FirstName:   c.params.optional("first_name"),
		LastName:    c.params.optional("last_name"),
		LimitsInput: limitsInput(c),
	}, err
}

func (s *Server) createSub(c *call) (any, error) {
	in, err := subInput(c)
	if err != nil {
		return nil, err
	}
	sub, err := s.cfg.Accounts.CreateSub(c.r.Context(), c.caller, in)
	return s.subResult(c, sub, err)
}

func (s *Server) editSub(c *call) (any, error) {
	in, err := subInput(c)
	if err != nil {
		if _, notOurs := s.cfg.Accounts.Sub(c.r.Context(), c.caller, in.Username); notOurs != nil {
			return nil, notOurs // rows 10 and 11 answer before row 12
		}
		return nil, err
	}
	sub, err := s.cfg.Accounts.EditSub(c.r.Context(), c.caller, in)
	return s.subResult(c, sub, err)
}

func (s *Server) subResult(c *call, sub domain.SubAccount, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	cat, err := s.cfg.Accounts.Catalogue(c.r.Context())
	if err != nil {
		return nil, err
	}
	return subOut(sub, cat), nil
}

func (s *Server) deleteSub(c *call) (any, error) {
	return nil, s.cfg.Accounts.DeleteSub(c.r.Context(), c.caller, c.params.one("username"))
}
