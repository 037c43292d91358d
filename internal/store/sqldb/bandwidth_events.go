package sqldb

import (
	"context"
	"database/sql"
	"maps"
	"slices"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// growth is how a ledger figure moved in one usage batch.
type growth struct{ added, after int64 }

// ledgerGrowth holds the figures a batch moved: per login and billing period, and per login for
// all time (Period "").
type ledgerGrowth map[domain.BandwidthKey]growth

// bandwidthEventData is what bandwidth.80 and bandwidth.100 events say.
type bandwidthEventData struct {
	Login      string `json:"login"`            // the account (its figure counts its sub-accounts) or a sub-account
	Limit      string `json:"limit"`            // "plan", "monthly" or "total"
	Percent    int    `json:"percent"`          // 80 or 100
	LimitBytes int64  `json:"limit_bytes"`      // the limit
	UsedBytes  int64  `json:"used_bytes"`       // the figure after the crossing
	Period     string `json:"period,omitempty"` // the billing period's first day, for plan and monthly limits
}

// crossing reports the thresholds (80%, 100% of limit) a figure passed going from after−added to
// after: each is passed by exactly one batch, whichever node wrote it, because the figure only grows
// and batches apply one after the other.
func crossing(limit int64, g growth) []int {
	if limit <= 0 {
		return nil
	}
	var out []int
	before := g.after - g.added
	for _, pct := range []int{80, 100} {
		at := (limit*int64(pct) + 99) / 100
		if before < at && g.after >= at {
			out = append(out, pct)
		}
	}
	return out
}

// recordBandwidthEvents records the bandwidth events of every limit a batch's growth crossed: the
// plan's and the account's own limits against the account's figures (sub-accounts included), and
// each sub-account's own limits against its figures. Only logins with a limit cost a query more.
func recordBandwidthEvents(ctx context.Context, tx *sql.Tx, now time.Time, grown ledgerGrowth) error {
	accounts, subs := map[int64]bool{}, map[int64]bool{}
	for k := range grown {
		accounts[k.AccountID] = true
		if k.SubID != 0 {
			subs[k.SubID] = true
		}
	}
	for _, ids := range chunks(slices.Sorted(maps.Keys(accounts)), 500) {
		if err := accountCrossings(ctx, tx, now, ids, grown); err != nil {
			return err
		}
	}
	for _, ids := range chunks(slices.Sorted(maps.Keys(subs)), 500) {
		if err := subCrossings(ctx, tx, now, ids, grown); err != nil {
			return err
		}
	}
	return nil
}

func chunks(ids []int64, n int) [][]int64 {
	var out [][]int64
	for len(ids) > 0 {
		m := min(n, len(ids))
		out = append(out, ids[:m])
		ids = ids[m:]
	}
	return out
}

// accountCrossings checks the account-wide limits of the accounts ids.
func accountCrossings(ctx context.Context, tx *sql.Tx, now time.Time, ids []int64, grown ledgerGrowth) error {
	type limited struct {
		id                   int64
		username             string
		plan, monthly, total int64
	}
	in, args := inList(ids)
	var ls []limited
	err := queryEach(ctx, tx, `SELECT a.id, a.username, p.monthly_bandwidth, a.monthly_limit, a.total_limit
		FROM accounts a JOIN plans p ON p.id = a.plan_id
		WHERE a.id IN `+in+` AND (p.monthly_bandwidth > 0 OR a.monthly_limit > 0 OR a.total_limit > 0)`, args,
		func(r *sql.Rows) error {
			var l limited
			if err := r.Scan(&l.id, &l.username, &l.plan, &l.monthly, &l.total); err != nil {
				return err
			}
			ls = append(ls, l)
			return nil
		})
	if err != nil {
		return err
	}
	for _, l := range ls {
		// The account's figures: the sum of its logins', whose growth in this batch is summed too.
		added := map[string]int64{}
		for k, g := range grown {
			if k.AccountID == l.id {
				added[k.Period] += g.added
			}
		}
		for _, period := range slices.Sorted(maps.Keys(added)) {
			var after int64
			q := `SELECT COALESCE(SUM(bytes), 0) FROM usage_totals WHERE account_id = $1`
			args := []any{l.id}
			if period != "" {
				q = `SELECT COALESCE(SUM(bytes), 0) FROM usage_periods WHERE account_id = $1 AND period = $2`
				args = append(args, period)
			}
			if err := tx.QueryRowContext(ctx, q, args...).Scan(&after); err != nil {
				return err
			}
			g := growth{added: added[period], after: after}
			limits := []struct {
				name  string
				bytes int64
			}{{"total", l.total}}
			if period != "" {
				limits = []struct {
					name  string
					bytes int64
				}{{"plan", l.plan}, {"monthly", l.monthly}}
			}
			for _, lim := range limits {
				if err := recordCrossings(ctx, tx, now, l.id, l.username, l.username, lim.name, lim.bytes, period, g); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// subCrossings checks the own limits of the sub-accounts ids.
func subCrossings(ctx context.Context, tx *sql.Tx, now time.Time, ids []int64, grown ledgerGrowth) error {
	type limited struct {
		id, accountID     int64
		username, account string
		monthly, total    int64
	}
	in, args := inList(ids)
	var ls []limited
	err := queryEach(ctx, tx, `SELECT s.id, s.account_id, s.username, a.username, s.monthly_limit, s.total_limit
		FROM sub_accounts s JOIN accounts a ON a.id = s.account_id
		WHERE s.id IN `+in+` AND (s.monthly_limit > 0 OR s.total_limit > 0)`, args, func(r *sql.Rows) error {
		var l limited
		if err := r.Scan(&l.id, &l.accountID, &l.username, &l.account, &l.monthly, &l.total); err != nil {
			return err
		}
		ls = append(ls, l)
		return nil
	})
	if err != nil {
		return err
	}
	for _, l := range ls {
		for k, g := range grown {
			if k.AccountID != l.accountID || k.SubID != l.id {
				continue
			}
			name, limit := "monthly", l.monthly
			if k.Period == "" {
				name, limit = "total", l.total
			}
			if err := recordCrossings(ctx, tx, now, l.accountID, l.account, l.username, name, limit, k.Period, g); err != nil {
				return err
			}
		}
	}
	return nil
}

// recordCrossings records one event per threshold of limit that g crossed.
func recordCrossings(ctx context.Context, tx *sql.Tx, now time.Time, accountID int64, account, login, name string,
	limit int64, period string, g growth) error {
	for _, pct := range crossing(limit, g) {
		typ := domain.EventBandwidth80
		if pct == 100 {
			typ = domain.EventBandwidth100
		}
		data := bandwidthEventData{Login: login, Limit: name, Percent: pct, LimitBytes: limit, UsedBytes: g.after, Period: period}
		if err := recordEvent(ctx, tx, now, typ, accountID, account, data); err != nil {
			return err
		}
	}
	return nil
}
