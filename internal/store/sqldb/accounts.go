package sqldb

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// CreateAccount adds an account with its initial proxy servers and IP addresses, within its plan's
// limits, and returns it as stored.
func (db *DB) CreateAccount(ctx context.Context, a domain.NewAccount) (domain.Account, error) {
	acc, err := db.createAccount(ctx, a)
	if err != nil {
		return domain.Account{}, fmt.Errorf("create account %q: %w", a.Username, err)
	}
	return acc, nil
}

func (db *DB) createAccount(ctx context.Context, a domain.NewAccount) (domain.Account, error) {
	ips, err := checkNewLogin(a.Username, a.PasswordHash, a.IPs)
	if err != nil {
		return domain.Account{}, err
	}
	var acc domain.Account
	err = db.write(ctx, func(tx *sql.Tx, feed *changeLog) error {
		ref, err := db.insertAccount(ctx, tx, a, ips)
		if err != nil {
			return err
		}
		feed.account(ref.id)
		if acc, err = loadAccount(ctx, tx, ref.id); err != nil {
			return err
		}
		return recordEvent(ctx, tx, db.now(), domain.EventAccountCreated, ref.id, acc.Username, accountEventData{Plan: acc.Plan})
	})
	return acc, err
}

// insertAccount inserts a checked new account (ips are checkNewLogin's) within its plan's limits.
func (db *DB) insertAccount(ctx context.Context, tx *sql.Tx, a domain.NewAccount, ips []netip.Addr) (accountRef, error) {
	if err := db.insertLogin(ctx, tx, a.Username); err != nil {
		return accountRef{}, err
	}
	planID, plan, err := lookupPlan(ctx, tx, a.Plan)
	if errors.Is(err, sql.ErrNoRows) {
		return accountRef{}, errUnknownPlan(a.Plan)
	} else if err != nil {
		return accountRef{}, err
	}
	proxies, err := proxyIDs(ctx, tx, uniqueSorted(a.Proxies))
	if err != nil {
		return accountRef{}, err
	}
	if len(proxies) > plan.MaxProxies {
		return accountRef{}, errProxyLimit(plan)
	}
	if len(ips) > plan.MaxIPs {
		return accountRef{}, errIPLimit(plan)
	}
	ref := accountRef{plan: plan}
	err = tx.QueryRowContext(ctx, `INSERT INTO accounts (username, password_hash, plan_id, confirmed, disabled, created_at)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
		a.Username, a.PasswordHash, planID, a.Confirmed, false, db.now().Unix()).Scan(&ref.id)
	if err != nil {
		return accountRef{}, err
	}
	for _, p := range proxies {
		if err := insertAccountProxy(ctx, tx, ref.id, p); err != nil {
			return accountRef{}, err
		}
	}
	for _, ip := range ips {
		if err := db.insertAccountIP(ctx, tx, ref.id, ip); err != nil {
			return accountRef{}, err
		}
	}
	return ref, nil
}

// GetAccount returns the account called username.
func (db *DB) GetAccount(ctx context.Context, username string) (domain.Account, error) {
	var acc domain.Account
	err := db.read(ctx, func(tx *sql.Tx) error {
		as, err := loadAccounts(ctx, tx, nil, "a.username = $1", username)
		if err == nil && len(as) == 0 {
			return errAccountNotFound(username)
		}
		if err == nil {
			acc = as[0]
		}
		return err
	})
	if err != nil {
		return domain.Account{}, fmt.Errorf("get account %q: %w", username, err)
	}
	return acc, nil
}

// ListAccounts returns every account, sorted by username.
func (db *DB) ListAccounts(ctx context.Context, q domain.AccountQuery) (domain.AccountPage, error) {
	limit := q.Limit
	if limit <= 0 || limit > domain.MaxAccountPage {
		limit = domain.MaxAccountPage
	}
	// The page's ids come from the index on (lower(username), username), one more than asked to
	// know whether a next page follows; then the accounts are loaded whole.
	lower, name := "lower(username)"+db.dialect.ByteOrder, "username"+db.dialect.ByteOrder
	var conds []string
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	if q.After != "" {
		conds = append(conds, "("+lower+", "+name+") > ("+arg(strings.ToLower(q.After))+", "+arg(q.After)+")")
	}
	if p := strings.ToLower(q.Prefix); p != "" { // usernames are ASCII: nothing sorts above this
		conds = append(conds, lower+" >= "+arg(p), lower+" < "+arg(p+"\x7f"))
	}
	page := domain.AccountPage{Accounts: []domain.Account{}}
	err := db.read(ctx, func(tx *sql.Tx) error {
		var ids []int64
		err := queryEach(ctx, tx, `SELECT id FROM accounts`+whereClause(strings.Join(conds, " AND "))+
			` ORDER BY `+lower+`, `+name+` LIMIT `+strconv.Itoa(limit+1), args, func(r *sql.Rows) error {
			var id int64
			err := r.Scan(&id)
			ids = append(ids, id)
			return err
		})
		if err != nil || len(ids) == 0 {
			return err
		}
		more := len(ids) > limit
		in, inArgs := inList(ids[:min(len(ids), limit)])
		if page.Accounts, err = loadAccounts(ctx, tx, nil, "a.id IN "+in, inArgs...); err != nil {
			return err
		}
		slices.SortFunc(page.Accounts, func(x, y domain.Account) int {
			return cmp.Or(strings.Compare(strings.ToLower(x.Username), strings.ToLower(y.Username)), strings.Compare(x.Username, y.Username))
		})
		if more {
			page.Next = page.Accounts[len(page.Accounts)-1].Username
		}
		return nil
	})
	if err != nil {
		return domain.AccountPage{}, fmt.Errorf("list accounts: %w", err)
	}
	return page, nil
}

// CountAccountsByPlan returns how many accounts each plan has (plans without any are absent).
func (db *DB) CountAccountsByPlan(ctx context.Context) (map[string]int, error) {
	counts := map[string]int{}
	err := db.read(ctx, func(tx *sql.Tx) error {
		return queryEach(ctx, tx, `SELECT p.name, COUNT(*) FROM accounts a JOIN plans p ON p.id = a.plan_id GROUP BY p.name`,
			nil, func(r *sql.Rows) error {
				var name string
				var n int
				err := r.Scan(&name, &n)
				counts[name] = n
				return err
			})
	})
	if err != nil {
		return nil, fmt.Errorf("count accounts by plan: %w", err)
	}
	return counts, nil
}

// UpdateAccount changes the fields of u that are set and returns the account as stored. Moving to a
// smaller plan is allowed: what the account has stays, further additions are refused.
func (db *DB) UpdateAccount(ctx context.Context, username string, u domain.AccountUpdate) (domain.Account, error) {
	var acc domain.Account
	err := db.writeAccount(ctx, username, func(tx *sql.Tx, ref accountRef) error {
		if err := updateAccount(ctx, tx, ref.id, u, db.now()); err != nil {
			return err
		}
		var err error
		if acc, err = loadAccount(ctx, tx, ref.id); err != nil {
			return err
		}
		if u == (domain.AccountUpdate{}) {
			return errUnchanged
		}
		return nil
	})
	if err != nil {
		return domain.Account{}, fmt.Errorf("update account %q: %w", username, err)
	}
	return acc, nil
}

func updateAccount(ctx context.Context, tx *sql.Tx, id int64, u domain.AccountUpdate, now time.Time) error {
	set := func(column string, v any) error {
		_, err := tx.ExecContext(ctx, `UPDATE accounts SET `+column+` = $1 WHERE id = $2`, v, id)
		return err
	}
	if u.PasswordHash != nil {
		if err := checkPassword(*u.PasswordHash); err != nil {
			return err
		}
		if err := set("password_hash", *u.PasswordHash); err != nil {
			return err
		}
	}
	if u.Plan != nil {
		pid, plan, err := lookupPlan(ctx, tx, *u.Plan)
		if errors.Is(err, sql.ErrNoRows) {
			return errUnknownPlan(*u.Plan)
		}
		if err != nil {
			return err
		}
		if err := set("plan_id", pid); err != nil {
			return err
		}
		if err := trimTokens(ctx, tx, id, plan.MaxTokens); err != nil {
			return err
		}
	}
	if u.Confirmed != nil {
		if err := set("confirmed", *u.Confirmed); err != nil {
			return err
		}
	}
	if u.Disabled != nil {
		if err := setDisabled(ctx, tx, id, *u.Disabled, now); err != nil {
			return err
		}
	}
	if err := setLimits(set, u.MonthlyLimit, u.TotalLimit); err != nil {
		return err
	}
	if u.BillingDay != nil {
		if *u.BillingDay < 1 || *u.BillingDay > domain.MaxBillingDay {
			return domain.Errorf(domain.EINVALID, "The billing day must be from 1 to %d.", domain.MaxBillingDay)
		}
		if err := set("billing_day", *u.BillingDay); err != nil {
			return err
		}
		return recountPeriod(ctx, tx, id, *u.BillingDay, now)
	}
	return nil
}

// setLimits sets the bandwidth limits given (bytes, 0 = none) with set.
func setLimits(set func(column string, v any) error, monthly, total *int64) error {
	for _, l := range []struct {
		column string
		v      *int64
	}{{"monthly_limit", monthly}, {"total_limit", total}} {
		if l.v == nil {
			continue
		}
		if *l.v < 0 {
			return domain.Errorf(domain.EINVALID, "A bandwidth limit may not be negative (0 means none).")
		}
		if err := set(l.column, *l.v); err != nil {
			return err
		}
	}
	return nil
}

// recountPeriod counts an account's usage in its current billing period again, from the days' rows,
// after its billing day changed: what was counted under the old periods no longer applies.
func recountPeriod(ctx context.Context, tx *sql.Tx, accountID int64, billingDay int, now time.Time) error {
	start := domain.PeriodStart(billingDay, now).Format(time.DateOnly)
	if _, err := tx.ExecContext(ctx, `DELETE FROM usage_periods WHERE account_id = $1`, accountID); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO usage_periods (account_id, sub_id, period, bytes)
		SELECT account_id, sub_id, $2, SUM(bytes_in + bytes_out) FROM usage WHERE account_id = $1 AND day >= $2
		GROUP BY account_id, sub_id HAVING SUM(bytes_in + bytes_out) > 0`, accountID, start)
	return err
}

// AuthorizeProxy adds a proxy server to the account, within its plan's limit.
func (db *DB) AuthorizeProxy(ctx context.Context, username, proxy string) error {
	err := db.writeAccount(ctx, username, func(tx *sql.Tx, ref accountRef) error {
		pid, err := proxyID(ctx, tx, proxy)
		if err != nil {
			return err
		}
		n, err := count(ctx, tx, `SELECT COUNT(*) FROM account_proxies WHERE account_id = $1 AND proxy_id = $2`, ref.id, pid)
		if err != nil {
			return err
		}
		if n > 0 {
			return errProxyTaken
		}
		if n, err = count(ctx, tx, `SELECT COUNT(*) FROM account_proxies WHERE account_id = $1`, ref.id); err != nil {
			return err
		}
		if n >= ref.plan.MaxProxies {
			return errProxyLimit(ref.plan)
		}
		return insertAccountProxy(ctx, tx, ref.id, pid)
	})
	if err != nil {
		return fmt.Errorf("authorize proxy server %q for %q: %w", proxy, username, err)
	}
	return nil
}

// RevokeProxy removes a proxy server from the account and from its sub-accounts.
func (db *DB) RevokeProxy(ctx context.Context, username, proxy string) error {
	err := db.writeAccount(ctx, username, func(tx *sql.Tx, ref accountRef) error {
		pid, err := proxyID(ctx, tx, proxy)
		if err != nil {
			return err
		}
		n, err := rowsAffected(tx.ExecContext(ctx,
			`DELETE FROM account_proxies WHERE account_id = $1 AND proxy_id = $2`, ref.id, pid))
		if err != nil {
			return err
		}
		if n == 0 {
			return errProxyNotOnAccount(proxy)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM sub_account_proxies WHERE proxy_id = $1
			AND sub_id IN (SELECT id FROM sub_accounts WHERE account_id = $2)`, pid, ref.id)
		return err
	})
	if err != nil {
		return fmt.Errorf("revoke proxy server %q from %q: %w", proxy, username, err)
	}
	return nil
}

// AddIP authorizes a client IP address for the account, within its plan's limit. An address
// authorizes at most one account network-wide.
func (db *DB) AddIP(ctx context.Context, username string, ip netip.Addr) error {
	ip, err := checkIP(ip)
	if err != nil {
		return fmt.Errorf("add IP address for %q: %w", username, err)
	}
	err = db.writeAccount(ctx, username, func(tx *sql.Tx, ref accountRef) error {
		n, err := count(ctx, tx, `SELECT COUNT(*) FROM account_ips WHERE ip = $1`, ip.String())
		if err != nil {
			return err
		}
		if n > 0 {
			return errIPTaken
		}
		if n, err = count(ctx, tx, `SELECT COUNT(*) FROM account_ips WHERE account_id = $1`, ref.id); err != nil {
			return err
		}
		if n >= ref.plan.MaxIPs {
			return errIPLimit(ref.plan)
		}
		return db.insertAccountIP(ctx, tx, ref.id, ip)
	})
	if err != nil {
		return fmt.Errorf("add IP address %s for %q: %w", ip, username, err)
	}
	return nil
}

// RemoveIP withdraws a client IP address from the account and from its sub-accounts.
func (db *DB) RemoveIP(ctx context.Context, username string, ip netip.Addr) error {
	ip, err := checkIP(ip)
	if err != nil {
		return fmt.Errorf("remove IP address for %q: %w", username, err)
	}
	err = db.writeAccount(ctx, username, func(tx *sql.Tx, ref accountRef) error {
		n, err := rowsAffected(tx.ExecContext(ctx,
			`DELETE FROM account_ips WHERE account_id = $1 AND ip = $2`, ref.id, ip.String()))
		if err != nil {
			return err
		}
		if n == 0 {
			return errIPNotAuthorized
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM sub_account_ips WHERE ip = $1
			AND sub_id IN (SELECT id FROM sub_accounts WHERE account_id = $2)`, ip.String(), ref.id)
		return err
	})
	if err != nil {
		return fmt.Errorf("remove IP address %s from %q: %w", ip, username, err)
	}
	return nil
}

// accountRef is what changes to an account need: its id and its plan's limits.
type accountRef struct {
	id   int64
	plan domain.Plan
}

// writeAccount runs fn in a write transaction on the account called username, which must exist,
// and records the account's change in the feed.
func (db *DB) writeAccount(ctx context.Context, username string, fn func(tx *sql.Tx, ref accountRef) error) error {
	return db.write(ctx, func(tx *sql.Tx, feed *changeLog) error {
		ref, err := lookupAccount(ctx, tx, username)
		if err != nil {
			return err
		}
		feed.account(ref.id)
		return fn(tx, ref)
	})
}

func lookupAccount(ctx context.Context, tx *sql.Tx, username string) (accountRef, error) {
	var ref accountRef
	p := &ref.plan
	err := tx.QueryRowContext(ctx, `SELECT a.id, `+planColumns+` FROM accounts a JOIN plans p ON p.id = a.plan_id
		WHERE a.username = $1`, username).
		Scan(append([]any{&ref.id}, planDest(p)...)...)
	if errors.Is(err, sql.ErrNoRows) {
		return ref, errAccountNotFound(username)
	}
	return ref, err
}

// insertLogin claims username in the namespace accounts and sub-accounts share.
func (db *DB) insertLogin(ctx context.Context, tx *sql.Tx, username string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO logins (username) VALUES ($1)`, username)
	if db.dialect.IsUniqueViolation(err) {
		return errUsernameTaken
	}
	return err
}

func insertAccountProxy(ctx context.Context, tx *sql.Tx, accountID, proxyID int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO account_proxies (account_id, proxy_id) VALUES ($1, $2)`, accountID, proxyID)
	return err
}

func (db *DB) insertAccountIP(ctx context.Context, tx *sql.Tx, accountID int64, ip netip.Addr) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO account_ips (account_id, ip) VALUES ($1, $2)`, accountID, ip.String())
	if db.dialect.IsUniqueViolation(err) {
		return domain.Errorf(domain.ECONFLICT, "IP address %s is already authorized.", ip)
	}
	return err
}

// accountEventData is what account.* events say beyond the account's name.
type accountEventData struct {
	Plan string `json:"plan"`
}

// setDisabled disables or enables an account and, when that changes it, records the event.
func setDisabled(ctx context.Context, tx *sql.Tx, id int64, disabled bool, now time.Time) error {
	n, err := rowsAffected(tx.ExecContext(ctx, `UPDATE accounts SET disabled = $1 WHERE id = $2 AND disabled <> $1`, disabled, id))
	if err != nil || n == 0 {
		return err
	}
	var username, plan string
	if err := tx.QueryRowContext(ctx, `SELECT a.username, p.name FROM accounts a JOIN plans p ON p.id = a.plan_id WHERE a.id = $1`, id).
		Scan(&username, &plan); err != nil {
		return err
	}
	typ := domain.EventAccountEnabled
	if disabled {
		typ = domain.EventAccountDisabled
	}
	return recordEvent(ctx, tx, now, typ, id, username, accountEventData{Plan: plan})
}
