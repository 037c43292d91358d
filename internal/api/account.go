package api

import (
	"time"

	"github.com/exitmesh/exitmesh/internal/account"
)

// gb renders bytes in the API's unit for bandwidth (API.md §2.1).
func gb(bytes int64) float64 { return float64(bytes) / account.GB }

type planLimitsJSON struct {
	Proxies          int     `json:"proxies"`
	Subs             int     `json:"subs"`
	IPs              int     `json:"ips"`
	Hostnames        int     `json:"hostnames"`
	Tokens           int     `json:"tokens"`
	MonthlyBandwidth float64 `json:"monthly_bandwidth"` // GB per billing period; 0 = unlimited
}

type accountBandwidthJSON struct {
	PeriodStart string  `json:"period_start"` // RFC 3339, 00:00 UTC on the billing day
	PeriodEnd   string  `json:"period_end"`
	PeriodUsed  float64 `json:"period_used"` // GB, sub-accounts included, as the nodes have flushed it
	TotalUsed   float64 `json:"total_used"`
}

type accountJSON struct {
	Username              string               `json:"username"`
	Plan                  string               `json:"plan"`
	Limits                planLimitsJSON       `json:"limits"`
	MonthlyBandwidthLimit float64              `json:"monthly_bandwidth_limit"`
	TotalBandwidthLimit   float64              `json:"total_bandwidth_limit"`
	BillingDay            int                  `json:"billing_day"`
	Bandwidth             accountBandwidthJSON `json:"bandwidth"`
}

func accountOut(v account.AccountView) accountJSON {
	p, a := v.Plan, v.Account
	return accountJSON{
		Username: a.Username, Plan: p.Name,
		Limits: planLimitsJSON{Proxies: p.MaxProxies, Subs: p.MaxSubs, IPs: p.MaxIPs, Hostnames: p.MaxHostnames,
			Tokens: p.MaxTokens, MonthlyBandwidth: gb(p.MonthlyBandwidth)},
		MonthlyBandwidthLimit: gb(a.MonthlyLimit), TotalBandwidthLimit: gb(a.TotalLimit), BillingDay: a.BillingDay,
		Bandwidth: accountBandwidthJSON{PeriodStart: v.PeriodStart.Format(time.RFC3339),
			PeriodEnd: v.PeriodStart.AddDate(0, 1, 0).Format(time.RFC3339), PeriodUsed: gb(v.Used.Period), TotalUsed: gb(v.Used.Total)},
	}
}

func (s *Server) showAccount(c *call) (any, error) {
	v, err := s.cfg.Accounts.Account(c.r.Context(), c.caller)
	if err != nil {
		return nil, err
	}
	return accountOut(v), nil
}

func (s *Server) editAccount(c *call) (any, error) {
	v, err := s.cfg.Accounts.EditAccount(c.r.Context(), c.caller, limitsInput(c))
	if err != nil {
		return nil, err
	}
	return accountOut(v), nil
}

// limitsInput reads the bandwidth limit parameters, in GB.
func limitsInput(c *call) account.LimitsInput {
	return account.LimitsInput{Monthly: c.params.optional("monthly_bandwidth_limit"), Total: c.params.optional("total_bandwidth_limit")}
}
