package sqldb

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

const (
	dayLayout   = "2006-01-02"
	monthLayout = "2006-01"
)

// batchMemory is how long applied batch ids are remembered: far longer than any retry of a flush.
const batchMemory = 7 * 24 * time.Hour

// AddUsage adds the deltas to the usage counters and the accounts' month totals in one transaction,
// once per batch id: a batch whose id was applied before (its first attempt committed though the
// caller saw an error) is skipped. It does not change the store version: usage is not part of
// Snapshot.
func (db *DB) AddUsage(ctx context.Context, batch string, deltas map[domain.UsageKey]domain.UsageCounts) error {
	if batch == "" {
		return fmt.Errorf("add usage: empty batch id")
	}
	days, exits := map[domain.UsageKey]domain.UsageCounts{}, map[domain.UsageKey]domain.UsageCounts{}
	for k, c := range deltas {
		if _, err := time.Parse(dayLayout, k.Day); err != nil {
			return fmt.Errorf("add usage: day %q is not YYYY-MM-DD", k.Day)
		}
		if c == (domain.UsageCounts{}) {
			continue
		}
		if k.Exit.IsValid() {
			exits[k] = c
		}
		dk := k
		dk.Exit, dk.Hour = netip.Addr{}, 0
		sum := days[dk]
		sum.Add(c)
		days[dk] = sum
	}
	if len(days) == 0 {
		return nil
	}
	deltas = days
	// One order for every writer, so that concurrent flushes from many nodes cannot deadlock.
	keys := slices.SortedFunc(maps.Keys(days), compareUsageKeys)
	err := db.inTx(ctx, nil, func(tx *sql.Tx) error {
		now := db.now()
		first, err := rowsAffected(tx.ExecContext(ctx, `INSERT INTO usage_batches (id, applied_at) VALUES ($1, $2)
			ON CONFLICT (id) DO NOTHING`, batch, now.Unix()))
		if err != nil || first == 0 {
			return err // first == 0: applied already
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM usage_batches WHERE applied_at < $1`, now.Add(-batchMemory).Unix()); err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO usage (account_id, sub_id, proxy, day, bytes_in, bytes_out, requests, tunnels)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (account_id, sub_id, proxy, day) DO UPDATE SET
				bytes_in = usage.bytes_in + excluded.bytes_in, bytes_out = usage.bytes_out + excluded.bytes_out,
				requests = usage.requests + excluded.requests, tunnels = usage.tunnels + excluded.tunnels`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, k := range keys {
			c := deltas[k]
			if _, err := stmt.ExecContext(ctx, k.AccountID, k.SubID, k.Proxy, k.Day,
				c.BytesIn, c.BytesOut, c.Requests, c.Tunnels); err != nil {
				return err
			}
		}
		if err := addMonthBytes(ctx, tx, keys, deltas); err != nil {
			return err
		}
		if err := addLedgerBytes(ctx, tx, now, keys, deltas); err != nil {
			return err
		}
		return addExitUsage(ctx, tx, exits)
	})
	if err != nil {
		return fmt.Errorf("add usage (%d counters): %w", len(keys), err)
	}
	return nil
}

// addMonthBytes adds the deltas' bytes to the accounts' month totals (usage_months), after the usage
// rows and in (month, account) order, so that writers lock rows in one order and cannot deadlock.
func addMonthBytes(ctx context.Context, tx *sql.Tx, keys []domain.UsageKey, deltas map[domain.UsageKey]domain.UsageCounts) error {
	type monthKey struct {
		month   string
		account int64
	}
	sums := map[monthKey]int64{}
	for _, k := range keys {
		if c := deltas[k]; c.BytesIn+c.BytesOut != 0 {
			sums[monthKey{domain.MonthOf(k.Day), k.AccountID}] += c.BytesIn + c.BytesOut
		}
	}
	order := slices.SortedFunc(maps.Keys(sums), func(a, b monthKey) int {
		return cmp.Or(strings.Compare(a.month, b.month), cmp.Compare(a.account, b.account))
	})
	for _, k := range order {
		if _, err := tx.ExecContext(ctx, `INSERT INTO usage_months (month, account_id, bytes) VALUES ($1, $2, $3)
			ON CONFLICT (month, account_id) DO UPDATE SET bytes = usage_months.bytes + excluded.bytes`,
			k.month, k.account, sums[k]); err != nil {
			return fmt.Errorf("month total: %w", err)
		}
	}
	return nil
}

// addLedgerBytes adds the deltas' bytes to the logins' billing-period and all-time totals
// (usage_periods, usage_totals), in key order, as addMonthBytes does. A day's bytes go to the billing
// period holding that day for its account's billing day (1 for an account that is gone). It then
// records the bandwidth events of the limits the totals crossed.
func addLedgerBytes(ctx context.Context, tx *sql.Tx, now time.Time, keys []domain.UsageKey, deltas map[domain.UsageKey]domain.UsageCounts) error {
	days, err := billingDays(ctx, tx, keys)
	if err != nil {
		return err
	}
	periods, totals := map[domain.BandwidthKey]int64{}, map[domain.BandwidthKey]int64{}
	for _, k := range keys {
		if c := deltas[k]; c.BytesIn+c.BytesOut != 0 {
			login := domain.BandwidthKey{AccountID: k.AccountID, SubID: k.SubID}
			totals[login] += c.BytesIn + c.BytesOut
			login.Period = domain.PeriodOf(days[k.AccountID], k.Day)
			periods[login] += c.BytesIn + c.BytesOut
		}
	}
	grown := ledgerGrowth{}
	for _, k := range slices.SortedFunc(maps.Keys(periods), compareBandwidthKeys) {
		var after int64
		if err := tx.QueryRowContext(ctx, `INSERT INTO usage_periods (account_id, sub_id, period, bytes) VALUES ($1, $2, $3, $4)
			ON CONFLICT (account_id, sub_id, period) DO UPDATE SET bytes = usage_periods.bytes + excluded.bytes
			RETURNING bytes`, k.AccountID, k.SubID, k.Period, periods[k]).Scan(&after); err != nil {
			return fmt.Errorf("period total: %w", err)
		}
		grown[k] = growth{added: periods[k], after: after}
	}
	for _, k := range slices.SortedFunc(maps.Keys(totals), compareBandwidthKeys) {
		var after int64
		if err := tx.QueryRowContext(ctx, `INSERT INTO usage_totals (account_id, sub_id, bytes) VALUES ($1, $2, $3)
			ON CONFLICT (account_id, sub_id) DO UPDATE SET bytes = usage_totals.bytes + excluded.bytes
			RETURNING bytes`, k.AccountID, k.SubID, totals[k]).Scan(&after); err != nil {
			return fmt.Errorf("all-time total: %w", err)
		}
		grown[k] = growth{added: totals[k], after: after}
	}
	return recordBandwidthEvents(ctx, tx, now, grown)
}

func compareBandwidthKeys(a, b domain.BandwidthKey) int {
	return cmp.Or(cmp.Compare(a.AccountID, b.AccountID), cmp.Compare(a.SubID, b.SubID), strings.Compare(a.Period, b.Period))
}

// billingDays returns the billing day of each account the keys name that still exists.
func billingDays(ctx context.Context, tx *sql.Tx, keys []domain.UsageKey) (map[int64]int, error) {
	var ids []int64
	for _, k := range keys {
		if len(ids) == 0 || ids[len(ids)-1] != k.AccountID { // keys are sorted by account
			ids = append(ids, k.AccountID)
		}
	}
	days := make(map[int64]int, len(ids))
	for chunk := range slices.Chunk(ids, 500) {
		in, args := inList(chunk)
		err := queryEach(ctx, tx, `SELECT id, billing_day FROM accounts WHERE id IN `+in, args, func(r *sql.Rows) error {
			var id int64
			var day int
			err := r.Scan(&id, &day)
			days[id] = day
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("read billing days: %w", err)
		}
	}
	return days, nil
}

// Bandwidth reads the logins' bytes in the billing periods starting on the days in periods and for
// all time, and whether batch was applied, in one read transaction.
func (db *DB) Bandwidth(ctx context.Context, periods []string, batch string) (domain.BandwidthFigures, error) {
	for _, p := range periods {
		if _, err := time.Parse(dayLayout, p); err != nil {
			return domain.BandwidthFigures{}, fmt.Errorf("bandwidth: %w", domain.Errorf(domain.EINVALID, "The period %q must be YYYY-MM-DD.", p))
		}
	}
	f := domain.BandwidthFigures{Bytes: map[domain.BandwidthKey]int64{}}
	err := db.read(ctx, func(tx *sql.Tx) error {
		if batch != "" {
			n, err := count(ctx, tx, `SELECT COUNT(*) FROM usage_batches WHERE id = $1`, batch)
			if err != nil {
				return fmt.Errorf("look up batch: %w", err)
			}
			f.Applied = n > 0
		}
		scan := func(period bool) func(r *sql.Rows) error {
			return func(r *sql.Rows) error {
				var k domain.BandwidthKey
				var bytes int64
				dest := []any{&k.AccountID, &k.SubID, &bytes}
				if period {
					dest = append(dest, &k.Period)
				}
				err := r.Scan(dest...)
				f.Bytes[k] = bytes
				return err
			}
		}
		if len(periods) > 0 {
			in := make([]string, len(periods))
			args := make([]any, len(periods))
			for i, p := range periods {
				in[i], args[i] = "$"+strconv.Itoa(i+1), p
			}
			if err := queryEach(ctx, tx, `SELECT account_id, sub_id, bytes, period FROM usage_periods WHERE period IN (`+
				strings.Join(in, ", ")+`)`, args, scan(true)); err != nil {
				return fmt.Errorf("read period totals: %w", err)
			}
		}
		if err := queryEach(ctx, tx, `SELECT account_id, sub_id, bytes FROM usage_totals`, nil, scan(false)); err != nil {
			return fmt.Errorf("read all-time totals: %w", err)
		}
		return nil
	})
	if err != nil {
		return domain.BandwidthFigures{}, fmt.Errorf("bandwidth: %w", err)
	}
	return f, nil
}

// AccountBandwidth reads the account's logins' bytes in its current billing period and for all time.
func (db *DB) AccountBandwidth(ctx context.Context, account string, now time.Time) (domain.AccountBandwidth, error) {
	out := domain.AccountBandwidth{Logins: map[int64]domain.Used{}}
	err := db.read(ctx, func(tx *sql.Tx) error {
		var id int64
		var day int
		err := tx.QueryRowContext(ctx, `SELECT id, billing_day FROM accounts WHERE username = $1`, account).Scan(&id, &day)
		if errors.Is(err, sql.ErrNoRows) {
			return errAccountNotFound(account)
		}
		if err != nil {
			return err
		}
		out.PeriodStart = domain.PeriodStart(day, now)
		add := func(period bool) func(r *sql.Rows) error {
			return func(r *sql.Rows) error {
				var sub, n int64
				err := r.Scan(&sub, &n)
				u := out.Logins[sub]
				if period {
					u.Period += n
				} else {
					u.Total += n
				}
				out.Logins[sub] = u
				return err
			}
		}
		if err := queryEach(ctx, tx, `SELECT sub_id, bytes FROM usage_periods WHERE account_id = $1 AND period = $2`,
			[]any{id, out.PeriodStart.Format(dayLayout)}, add(true)); err != nil {
			return err
		}
		return queryEach(ctx, tx, `SELECT sub_id, bytes FROM usage_totals WHERE account_id = $1`, []any{id}, add(false))
	})
	if err != nil {
		return domain.AccountBandwidth{}, fmt.Errorf("bandwidth of %q: %w", account, err)
	}
	return out, nil
}

// MonthBandwidth reads the accounts' totals for month and whether batch was applied in one read
// transaction: one snapshot, so a batch is either in the totals and reported applied, or neither.
func (db *DB) MonthBandwidth(ctx context.Context, month, batch string) (domain.MonthBandwidth, error) {
	if _, err := time.Parse(monthLayout, month); err != nil {
		return domain.MonthBandwidth{}, fmt.Errorf("month bandwidth: %w",
			domain.Errorf(domain.EINVALID, "The month %q must be YYYY-MM.", month))
	}
	mb := domain.MonthBandwidth{Month: month, Bytes: map[int64]int64{}}
	err := db.read(ctx, func(tx *sql.Tx) error {
		if batch != "" {
			n, err := count(ctx, tx, `SELECT COUNT(*) FROM usage_batches WHERE id = $1`, batch)
			if err != nil {
				return fmt.Errorf("look up batch: %w", err)
			}
			mb.Applied = n > 0
		}
		return queryEach(ctx, tx, `SELECT account_id, bytes FROM usage_months WHERE month = $1`, []any{month},
			func(r *sql.Rows) error {
				var id, bytes int64
				err := r.Scan(&id, &bytes)
				mb.Bytes[id] = bytes
				return err
			})
	})
	if err != nil {
		return domain.MonthBandwidth{}, fmt.Errorf("month bandwidth: %w", err)
	}
	return mb, nil
}

func compareUsageKeys(a, b domain.UsageKey) int {
	return cmp.Or(cmp.Compare(a.AccountID, b.AccountID), cmp.Compare(a.SubID, b.SubID),
		strings.Compare(a.Proxy, b.Proxy), strings.Compare(a.Day, b.Day))
}

// addExitUsage adds the exits' hourly counters (abuse attribution), in (exit, hour, proxy, login)
// order, the rows' key order, so that writers cannot deadlock.
func addExitUsage(ctx context.Context, tx *sql.Tx, exits map[domain.UsageKey]domain.UsageCounts) error {
	if len(exits) == 0 {
		return nil
	}
	keys := slices.SortedFunc(maps.Keys(exits), func(a, b domain.UsageKey) int {
		return cmp.Or(strings.Compare(a.Exit.String(), b.Exit.String()), cmp.Compare(a.Hour, b.Hour),
			strings.Compare(a.Proxy, b.Proxy), cmp.Compare(a.AccountID, b.AccountID), cmp.Compare(a.SubID, b.SubID))
	})
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO exit_usage (exit_ip, hour, proxy, account_id, sub_id, bytes_in, bytes_out, requests, tunnels)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (exit_ip, hour, proxy, account_id, sub_id) DO UPDATE SET
			bytes_in = exit_usage.bytes_in + excluded.bytes_in, bytes_out = exit_usage.bytes_out + excluded.bytes_out,
			requests = exit_usage.requests + excluded.requests, tunnels = exit_usage.tunnels + excluded.tunnels`)
	if err != nil {
		return fmt.Errorf("exit usage: %w", err)
	}
	defer stmt.Close()
	for _, k := range keys {
		c := exits[k]
		if _, err := stmt.ExecContext(ctx, k.Exit.String(), k.Hour, k.Proxy, k.AccountID, k.SubID,
			c.BytesIn, c.BytesOut, c.Requests, c.Tunnels); err != nil {
			return fmt.Errorf("exit usage: %w", err)
		}
	}
	return nil
}

// WhoUsedExit implements domain.Store.
func (db *DB) WhoUsedExit(ctx context.Context, exit netip.Addr, from, to time.Time) ([]domain.ExitUse, error) {
	if !exit.IsValid() || !from.Before(to) {
		return nil, domain.Errorf(domain.EINVALID, "Give an exit IP and a time window that is not empty.")
	}
	first := from.Unix() - from.Unix()%3600 // the hour holding from
	var uses []domain.ExitUse
	err := db.read(ctx, func(tx *sql.Tx) error {
		return queryEach(ctx, tx, `SELECT e.hour, e.proxy, a.username, e.sub_id, s.username,
				e.bytes_in, e.bytes_out, e.requests, e.tunnels
			FROM exit_usage e JOIN accounts a ON a.id = e.account_id LEFT JOIN sub_accounts s ON s.id = e.sub_id
			WHERE e.exit_ip = $1 AND e.hour >= $2 AND e.hour < $3
			ORDER BY e.hour, a.username, e.sub_id, e.proxy`,
			[]any{exit.Unmap().String(), first, to.Unix()}, func(r *sql.Rows) error {
				u := domain.ExitUse{Exit: exit.Unmap()}
				var hour, subID int64
				var sub sql.NullString
				err := r.Scan(&hour, &u.Proxy, &u.Username, &subID, &sub, &u.BytesIn, &u.BytesOut, &u.Requests, &u.Tunnels)
				switch {
				case sub.Valid:
					u.SubAccount = sub.String
				case subID != 0:
					u.SubAccount = fmt.Sprintf("(deleted #%d)", subID)
				}
				u.Hour = time.Unix(hour, 0).UTC()
				uses = append(uses, u)
				return err
			})
	})
	if err != nil {
		return nil, fmt.Errorf("who used exit %s: %w", exit, err)
	}
	return uses, nil
}

// PruneExitUsage implements domain.Store.
func (db *DB) PruneExitUsage(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := db.inTx(ctx, nil, func(tx *sql.Tx) error {
		var err error
		// An hour ends 3600 s after its start: it is gone once its end is not after before.
		n, err = rowsAffected(tx.ExecContext(ctx, `DELETE FROM exit_usage WHERE hour + 3600 <= $1`, before.Unix()))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune exit usage: %w", err)
	}
	return n, nil
}

// Usage returns the usage counters matching f, ordered by day, username, sub-account and proxy
// server. Usage of a deleted sub-account is reported as "(deleted #ID)".
func (db *DB) Usage(ctx context.Context, f domain.UsageFilter) ([]domain.UsageRow, error) {
	if err := checkUsageFilter(f); err != nil {
		return nil, fmt.Errorf("usage: %w", err)
	}
	var rows []domain.UsageRow
	err := db.read(ctx, func(tx *sql.Tx) error {
		var where []string
		var args []any
		add := func(cond string, arg any) {
			args = append(args, arg)
			where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
		}
		if f.Username != "" {
			ref, err := lookupAccount(ctx, tx, f.Username)
			if err != nil {
				return err
			}
			add("u.account_id = ?", ref.id)
		}
		if f.From != "" {
			add("u.day >= ?", f.From)
		}
		if f.To != "" {
			add("u.day <= ?", f.To)
		}
		var err error
		rows, err = readUsage(ctx, tx, strings.Join(where, " AND "), args)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("usage: %w", err)
	}
	return rows, nil
}

func checkUsageFilter(f domain.UsageFilter) error {
	for _, d := range []struct{ name, value string }{{"from", f.From}, {"to", f.To}} {
		if _, err := time.Parse(dayLayout, d.value); d.value != "" && err != nil {
			return domain.Errorf(domain.EINVALID, "The %s date %q must be YYYY-MM-DD.", d.name, d.value)
		}
	}
	if f.From != "" && f.To != "" && f.From > f.To {
		return domain.Errorf(domain.EINVALID, "The from date must not be after the to date.")
	}
	return nil
}

func readUsage(ctx context.Context, tx *sql.Tx, where string, args []any) ([]domain.UsageRow, error) {
	rows := []domain.UsageRow{}
	err := queryEach(ctx, tx, `SELECT a.username, u.sub_id, s.username, u.proxy, u.day,
			u.bytes_in, u.bytes_out, u.requests, u.tunnels
		FROM usage u JOIN accounts a ON a.id = u.account_id LEFT JOIN sub_accounts s ON s.id = u.sub_id`+whereClause(where),
		args, func(r *sql.Rows) error {
			var row domain.UsageRow
			var subID int64
			var sub sql.NullString
			err := r.Scan(&row.Username, &subID, &sub, &row.Proxy, &row.Day,
				&row.BytesIn, &row.BytesOut, &row.Requests, &row.Tunnels)
			switch {
			case sub.Valid:
				row.SubAccount = sub.String
			case subID != 0:
				row.SubAccount = fmt.Sprintf("(deleted #%d)", subID)
			}
			rows = append(rows, row)
			return err
		})
	if err != nil {
		return nil, fmt.Errorf("read usage: %w", err)
	}
	slices.SortFunc(rows, func(a, b domain.UsageRow) int {
		return cmp.Or(strings.Compare(a.Day, b.Day), strings.Compare(a.Username, b.Username),
			strings.Compare(a.SubAccount, b.SubAccount), strings.Compare(a.Proxy, b.Proxy))
	})
	return rows, nil
}
