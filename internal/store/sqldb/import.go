package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// ImportAccounts creates many accounts with their sub-accounts, each within its plan's limits, in
// transactions of importBatch accounts: one version and one feed entry per account for each. A batch
// is checked whole in memory first (names, passwords, plans, limits, sub-accounts' subsets), then
// written with one multi-row statement per table, so that a million accounts do not cost millions of
// round trips. A batch that fails is rolled back whole and ends the import; the batches before it
// stay.
func (db *DB) ImportAccounts(ctx context.Context, accounts []domain.BulkAccount) error {
	for start := 0; start < len(accounts); start += importBatch {
		batch := accounts[start:min(start+importBatch, len(accounts))]
		err := db.write(ctx, func(tx *sql.Tx, feed *changeLog) error { return db.importBatch(ctx, tx, feed, batch) })
		if err != nil {
			return fmt.Errorf("import accounts %d to %d: %w", start+1, start+len(batch), err)
		}
	}
	if db.dialect.Analyze != "" && len(accounts) >= importBatch {
		// Until the planner learns the tables grew, it may scan them whole for one account.
		if _, err := db.sql.ExecContext(ctx, db.dialect.Analyze); err != nil {
			return fmt.Errorf("import accounts: analyze: %w", db.classify(err))
		}
	}
	return nil
}

// importBatch is how many accounts one transaction of ImportAccounts creates: large enough for the
// database to write fast, small enough not to hold the write lock for long.
const importBatch = 1000

// importRow is a bulk account checked and resolved against the store.
type importRow struct {
	b       domain.BulkAccount
	planID  int64
	proxies []int64
	ips     []netip.Addr
	subs    []importSub
}

type importSub struct {
	s       domain.NewSubAccount
	proxies []int64
	ips     []netip.Addr
}

func (db *DB) importBatch(ctx context.Context, tx *sql.Tx, feed *changeLog, batch []domain.BulkAccount) error {
	rows, err := checkImport(ctx, tx, batch)
	if err != nil {
		return err
	}
	now := db.now().Unix()
	var logins, accts [][]any
	for _, r := range rows {
		logins = append(logins, []any{r.b.Account.Username})
		for _, s := range r.subs {
			logins = append(logins, []any{s.s.Username})
		}
		accts = append(accts, []any{r.b.Account.Username, r.b.Account.PasswordHash, r.planID, r.b.Account.Confirmed, false, now})
	}
	if err := db.insertRows(ctx, tx, "logins (username)", logins, nil); err != nil {
		return err
	}
	ids := make(map[string]int64, len(rows))
	err = db.insertRows(ctx, tx, "accounts (username, password_hash, plan_id, confirmed, disabled, created_at)", accts,
		func(r *sql.Rows) error {
			var id int64
			var name string
			err := r.Scan(&id, &name)
			ids[name] = id
			return err
		})
	if err != nil {
		return err
	}
	var proxies, ips, subs [][]any
	for _, r := range rows {
		id := ids[r.b.Account.Username]
		feed.account(id)
		for _, p := range r.proxies {
			proxies = append(proxies, []any{id, p})
		}
		for _, ip := range r.ips {
			ips = append(ips, []any{id, ip.String()})
		}
		for _, s := range r.subs {
			subs = append(subs, []any{id, s.s.Username, s.s.PasswordHash, true, now})
		}
	}
	if err := db.insertRows(ctx, tx, "account_proxies (account_id, proxy_id)", proxies, nil); err != nil {
		return err
	}
	if err := db.insertRows(ctx, tx, "account_ips (account_id, ip)", ips, nil); err != nil {
		return err
	}
	return db.importSubs(ctx, tx, rows, subs)
}

// importSubs writes the batch's sub-accounts and their proxy servers and IPs.
func (db *DB) importSubs(ctx context.Context, tx *sql.Tx, rows []importRow, subs [][]any) error {
	subIDs := make(map[string]int64, len(subs))
	err := db.insertRows(ctx, tx, "sub_accounts (account_id, username, password_hash, active, created_at)", subs,
		func(r *sql.Rows) error {
			var id int64
			var name string
			err := r.Scan(&id, &name)
			subIDs[name] = id
			return err
		})
	if err != nil {
		return err
	}
	var proxies, ips [][]any
	for _, r := range rows {
		for _, s := range r.subs {
			id := subIDs[s.s.Username]
			for _, p := range s.proxies {
				proxies = append(proxies, []any{id, p})
			}
			for _, ip := range s.ips {
				ips = append(ips, []any{id, ip.String()})
			}
		}
	}
	if err := db.insertRows(ctx, tx, "sub_account_proxies (sub_id, proxy_id)", proxies, nil); err != nil {
		return err
	}
	return db.insertRows(ctx, tx, "sub_account_ips (sub_id, ip)", ips, nil)
}

// checkImport checks a batch in memory against the rules CreateAccount and CreateSubAccount apply,
// reading each plan and proxy server once.
func checkImport(ctx context.Context, tx *sql.Tx, batch []domain.BulkAccount) ([]importRow, error) {
	type plan struct {
		id int64
		p  domain.Plan
	}
	plans := map[string]plan{}
	proxyIDOf := map[string]int64{}
	resolve := func(names []string) ([]int64, error) {
		ids := make([]int64, 0, len(names))
		for _, n := range uniqueSorted(names) {
			id, ok := proxyIDOf[n]
			if !ok {
				found, err := proxyIDs(ctx, tx, []string{n})
				if err != nil {
					return nil, err
				}
				id, proxyIDOf[n] = found[0], found[0]
			}
			ids = append(ids, id)
		}
		return ids, nil
	}
	rows := make([]importRow, len(batch))
	for i, b := range batch {
		r := importRow{b: b}
		var err error
		if r.ips, err = checkNewLogin(b.Account.Username, b.Account.PasswordHash, b.Account.IPs); err != nil {
			return nil, fmt.Errorf("account %q: %w", b.Account.Username, err)
		}
		pl, ok := plans[b.Account.Plan]
		if !ok {
			id, p, err := lookupPlan(ctx, tx, b.Account.Plan)
			if errors.Is(err, sql.ErrNoRows) {
				return nil, fmt.Errorf("account %q: %w", b.Account.Username, errUnknownPlan(b.Account.Plan))
			} else if err != nil {
				return nil, err
			}
			pl = plan{id, p}
			plans[b.Account.Plan] = pl
		}
		r.planID = pl.id
		if r.proxies, err = resolve(b.Account.Proxies); err != nil {
			return nil, fmt.Errorf("account %q: %w", b.Account.Username, err)
		}
		switch {
		case len(r.proxies) > pl.p.MaxProxies:
			err = errProxyLimit(pl.p)
		case len(r.ips) > pl.p.MaxIPs:
			err = errIPLimit(pl.p)
		case len(b.Subs) > pl.p.MaxSubs:
			err = errSubLimit(pl.p)
		}
		if err != nil {
			return nil, fmt.Errorf("account %q: %w", b.Account.Username, err)
		}
		for _, s := range b.Subs {
			sub, err := checkImportSub(s, r, resolve)
			if err != nil {
				return nil, fmt.Errorf("sub-account %q of %q: %w", s.Username, b.Account.Username, err)
			}
			r.subs = append(r.subs, sub)
		}
		rows[i] = r
	}
	return rows, nil
}

// checkImportSub checks a new sub-account against its new account: its proxy servers and IPs are a
// subset of the account's.
func checkImportSub(s domain.NewSubAccount, parent importRow, resolve func([]string) ([]int64, error)) (importSub, error) {
	ips, err := checkNewLogin(s.Username, s.PasswordHash, s.IPs)
	if err != nil {
		return importSub{}, err
	}
	proxies, err := resolve(s.Proxies)
	if err != nil {
		return importSub{}, err
	}
	for _, p := range proxies {
		if !slices.Contains(parent.proxies, p) {
			return importSub{}, domain.Errorf(domain.EINVALID, "A sub-account may use only its account's proxy servers.")
		}
	}
	for _, ip := range ips {
		if !slices.Contains(parent.ips, ip) {
			return importSub{}, domain.Errorf(domain.EINVALID, "IP address %s is not authorized for the account.", ip)
		}
	}
	return importSub{s: s, proxies: proxies, ips: ips}, nil
}

// maxParams bounds the parameters of one statement: SQLite allows 32,766, PostgreSQL 65,535.
const maxParams = 30_000

// insertRows inserts rows into table (written "name (columns)") with as few multi-row statements as
// the parameter limit allows. With scan set, the statements return each row's id and username
// (RETURNING id, username), which scan reads. A name or address already taken is a conflict.
func (db *DB) insertRows(ctx context.Context, tx *sql.Tx, table string, rows [][]any, scan func(*sql.Rows) error) error {
	if len(rows) == 0 {
		return nil
	}
	width := len(rows[0])
	per := maxParams / width
	for chunk := range slices.Chunk(rows, per) {
		var q strings.Builder
		args := make([]any, 0, len(chunk)*width)
		q.WriteString("INSERT INTO " + table + " VALUES ")
		for i, row := range chunk {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteByte('(')
			for j, v := range row {
				if j > 0 {
					q.WriteString(", ")
				}
				args = append(args, v)
				q.WriteString("$" + strconv.Itoa(len(args)))
			}
			q.WriteByte(')')
		}
		var err error
		if scan == nil {
			_, err = tx.ExecContext(ctx, q.String(), args...)
		} else {
			err = queryEach(ctx, tx, q.String()+" RETURNING id, username", args, scan)
		}
		if db.dialect.IsUniqueViolation(err) {
			return domain.Errorf(domain.ECONFLICT, "A username or an IP address of this batch is already taken.")
		}
		if err != nil {
			return err
		}
	}
	return nil
}
