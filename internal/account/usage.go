package account

import (
	"context"
	"slices"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// Bandwidth is the account's bandwidth in a calendar month (UTC) against its plan's.
type Bandwidth struct {
	Month string // YYYY-MM
	Used  int64  // bytes in + bytes out, sub-accounts included, as flushed by the nodes
	Limit int64  // the plan's monthly bandwidth; 0 = unlimited
}

// UsageReport is the traffic of an account, or of one of its sub-accounts, per day and proxy server.
type UsageReport struct {
	Rows      []domain.UsageRow
	Bandwidth Bandwidth
}

// Usage reports the traffic from one day to another (YYYY-MM-DD, inclusive; "" leaves that end
// open) of the account and its sub-accounts, or of its sub-account sub only, with the account's
// bandwidth this month.
func (s *Service) Usage(ctx context.Context, c *Caller, sub, from, to string) (UsageReport, error) {
	t, err := s.target(ctx, c, sub)
	if err != nil {
		return UsageReport{}, err
	}
	fe := domain.FormErrors{}
	for _, d := range []struct{ field, v string }{{"from", from}, {"to", to}} {
		if _, err := time.Parse(time.DateOnly, d.v); d.v != "" && err != nil {
			fe.Add(d.field, "Enter a date as YYYY-MM-DD.")
		}
	}
	if err := fe.Err(); err != nil {
		return UsageReport{}, err
	}
	rows, err := s.cfg.Store.Usage(ctx, domain.UsageFilter{Username: c.Account.Username, From: from, To: to})
	if err != nil {
		return UsageReport{}, err
	}
	if t.sub != nil {
		rows = slices.DeleteFunc(rows, func(r domain.UsageRow) bool { return r.SubAccount != t.sub.Username })
	}
	bw, err := s.monthBandwidth(ctx, c, s.cfg.Now().UTC())
	if err != nil {
		return UsageReport{}, err
	}
	return UsageReport{Rows: rows, Bandwidth: bw}, nil
}

// monthBandwidth sums the account's usage rows of the month of now.
func (s *Service) monthBandwidth(ctx context.Context, c *Caller, now time.Time) (Bandwidth, error) {
	first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	rows, err := s.cfg.Store.Usage(ctx, domain.UsageFilter{Username: c.Account.Username,
		From: first.Format(time.DateOnly), To: first.AddDate(0, 1, -1).Format(time.DateOnly)})
	if err != nil {
		return Bandwidth{}, err
	}
	bw := Bandwidth{Month: first.Format("2006-01"), Limit: c.Plan.MonthlyBandwidth}
	for _, r := range rows {
		bw.Used += r.BytesIn + r.BytesOut
	}
	return bw, nil
}
