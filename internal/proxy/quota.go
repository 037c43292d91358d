package proxy

import (
	"fmt"
	"net/http"
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/usage"
)

// StatusBandwidthExceeded is ProxyMesh's answer to a login whose bandwidth is spent, which its
// customers' scripts check (SPEC §2.11).
const StatusBandwidthExceeded = 509

// usageLogin is whose bytes a principal's traffic counts as.
func usageLogin(p *auth.Principal) usage.Login {
	return usage.Login{AccountID: p.AccountID, SubID: p.SubID, BillingDay: p.BillingDay}
}

// checkBandwidth refuses a principal a limit covering it has spent: its plan's monthly bandwidth,
// its account's own monthly or total limit, or, for a sub-account, its own. It runs before each
// request and each CONNECT, and while a tunnel or a streamed answer runs, against the figures the
// node keeps in memory (no store access, no lock). Without a usage recorder nothing is counted, so
// nothing is refused.
func (s *Server) checkBandwidth(p *auth.Principal) *refusal {
	if s.cfg.Usage == nil {
		return nil
	}
	f := s.cfg.Usage.Figures(usageLogin(p))
	acct, sub := p.AccountLimits, p.SubLimits
	for _, l := range []struct {
		limit, used int64
		what        string
		monthly     bool
	}{
		{p.Bandwidth(), f.AccountPeriod, "the monthly bandwidth of the account's plan", true},
		{acct.MonthlyLimit, f.AccountPeriod, "the account's monthly bandwidth limit", true},
		{acct.TotalLimit, f.AccountTotal, "the account's total bandwidth limit", false},
		{sub.MonthlyLimit, f.Period, "this sub-account's monthly bandwidth limit", true},
		{sub.TotalLimit, f.Total, "this sub-account's total bandwidth limit", false},
	} {
		if l.limit > 0 && l.used >= l.limit {
			return errBandwidthExceeded(l.what, l.limit, l.monthly, p.BillingDay, time.Now())
		}
	}
	return nil
}

// errBandwidthExceeded answers a login with a spent limit of limit bytes: what, and when it resets
// (a monthly limit at the start of the next billing period; a total one when it is raised).
func errBandwidthExceeded(what string, limit int64, monthly bool, billingDay int, now time.Time) *refusal {
	msg := fmt.Sprintf("Bandwidth limit exceeded: %s, %s, is used up.", what, config.Size(limit).Human())
	if monthly {
		resets := domain.PeriodStart(billingDay, now).AddDate(0, 1, 0)
		msg += " It resets on " + resets.Format("2 January 2006") + " (00:00 UTC); raise the limit or upgrade the plan to continue before then."
	} else {
		msg += " It does not reset: raise the limit to continue."
	}
	return &refusal{Status: StatusBandwidthExceeded, Reason: "bandwidth-exceeded", Message: msg}
}

// statusText is the reason phrase of a status the proxy answers with.
func statusText(status int) string {
	switch status {
	case StatusBandwidthExceeded:
		return "Bandwidth Limit Exceeded"
	case errClientGone.Status:
		return "Client Closed Request"
	}
	return http.StatusText(status)
}
