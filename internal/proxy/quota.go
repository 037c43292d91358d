package proxy

import (
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
)

// checkBandwidth refuses a principal whose account has spent its plan's monthly bandwidth. It runs
// before each request and each CONNECT against the month-to-date figure the node keeps in memory
// (no store access, no lock): a request or tunnel in flight when the limit is crossed completes, as
// its size is not known in advance, and the next one is refused. Without a usage recorder nothing
// is counted, so nothing is refused.
func (s *Server) checkBandwidth(p *auth.Principal) *refusal {
	limit := p.Bandwidth()
	if limit <= 0 || s.cfg.Usage.MonthToDate(p.AccountID) < limit {
		return nil
	}
	return errBandwidthExceeded(limit, time.Now())
}
