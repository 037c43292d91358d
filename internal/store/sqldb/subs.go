package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// CreateSubAccount adds a sub-account to the account, with a subset of its proxy servers and IP
// addresses, within the plan's sub-account limit.
func (db *DB) CreateSubAccount(ctx context.Context, account string, s domain.NewSubAccount) (domain.SubAccount, error) {
	sub, err := db.createSub(ctx, account, s)
	if err != nil {
		return domain.SubAccount{}, fmt.Errorf("create sub-account %q of %q: %w", s.Username, account, err)
	}
	return sub, nil
}

func (db *DB) createSub(ctx context.Context, account string, s domain.NewSubAccount) (domain.SubAccount, error) {
	var sub domain.SubAccount
	err := db.writeAccount(ctx, account, func(tx *sql.Tx, ref accountRef) error {
		id, err := db.insertSub(ctx, tx, ref, s)
		if err != nil {
			return err
		}
		sub, err = loadSub(ctx, tx, id)
		return err
	})
	return sub, err
}

// insertSub inserts a new sub-account of the account ref, with a subset of its proxy servers and IP
// addresses, within the plan's sub-account limit.
func (db *DB) insertSub(ctx context.Context, tx *sql.Tx, ref accountRef, s domain.NewSubAccount) (int64, error) {
	ips, err := checkNewLogin(s.Username, s.PasswordHash, s.IPs)
	if err != nil {
		return 0, err
	}
	proxies, err := parentProxies(ctx, tx, ref.id, uniqueSorted(s.Proxies))
	if err != nil {
		return 0, err
	}
	if err := checkParentIPs(ctx, tx, ref.id, ips); err != nil {
		return 0, err
	}
	if err := db.insertLogin(ctx, tx, s.Username); err != nil {
		return 0, err
	}
	n, err := count(ctx, tx, `SELECT COUNT(*) FROM sub_accounts WHERE account_id = $1`, ref.id)
	if err != nil {
		return 0, err
	}
	if n >= ref.plan.MaxSubs {
		return 0, errSubLimit(ref.plan)
	}
	var id int64
	err = tx.QueryRowContext(ctx, `INSERT INTO sub_accounts (account_id, username, password_hash, active, created_at)
		VALUES ($1, $2, $3, $4, $5) RETURNING id`,
		ref.id, s.Username, s.PasswordHash, true, db.now().Unix()).Scan(&id)
	if err != nil {
		return 0, err
	}
	if err := setSubProxies(ctx, tx, id, proxies); err != nil {
		return 0, err
	}
	if err := updateSub(ctx, tx, ref.id, id, domain.SubAccountUpdate{Email: nonEmpty(s.Email), FirstName: nonEmpty(s.FirstName),
		LastName: nonEmpty(s.LastName), MonthlyLimit: nonZero(s.MonthlyLimit), TotalLimit: nonZero(s.TotalLimit)}); err != nil {
		return 0, err
	}
	return id, setSubIPs(ctx, tx, id, ips)
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nonZero(n int64) *int64 {
	if n == 0 {
		return nil
	}
	return &n
}

// ListSubAccounts returns the account's sub-accounts, sorted by username.
func (db *DB) ListSubAccounts(ctx context.Context, account string) ([]domain.SubAccount, error) {
	var subs []domain.SubAccount
	err := db.read(ctx, func(tx *sql.Tx) error {
		ref, err := lookupAccount(ctx, tx, account)
		if err != nil {
			return err
		}
		subs, err = loadSubs(ctx, tx, nil, "s.account_id = $1", ref.id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list sub-accounts of %q: %w", account, err)
	}
	return subs, nil
}

// UpdateSubAccount changes the fields of u that are set; Proxies and IPs replace the sub-account's
// lists and must be subsets of the account's.
func (db *DB) UpdateSubAccount(ctx context.Context, account, sub string, u domain.SubAccountUpdate) (domain.SubAccount, error) {
	var s domain.SubAccount
	err := db.write(ctx, func(tx *sql.Tx, feed *changeLog) error {
		accountID, id, err := lookupSub(ctx, tx, account, sub)
		if err != nil {
			return err
		}
		feed.account(accountID)
		if err := updateSub(ctx, tx, accountID, id, u); err != nil {
			return err
		}
		if s, err = loadSub(ctx, tx, id); err != nil {
			return err
		}
		if u == (domain.SubAccountUpdate{}) {
			return errUnchanged
		}
		return nil
	})
	if err != nil {
		return domain.SubAccount{}, fmt.Errorf("update sub-account %q of %q: %w", sub, account, err)
	}
	return s, nil
}

func updateSub(ctx context.Context, tx *sql.Tx, accountID, id int64, u domain.SubAccountUpdate) error {
	set := func(column string, v any) error {
		_, err := tx.ExecContext(ctx, `UPDATE sub_accounts SET `+column+` = $1 WHERE id = $2`, v, id)
		return err
	}
	if err := setProfile(set, u.Email, u.FirstName, u.LastName); err != nil {
		return err
	}
	if err := setLimits(set, u.MonthlyLimit, u.TotalLimit); err != nil {
		return err
	}
	if u.PasswordHash != nil {
		if err := checkPassword(*u.PasswordHash); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE sub_accounts SET password_hash = $1 WHERE id = $2`, *u.PasswordHash, id); err != nil {
			return err
		}
	}
	if u.Active != nil {
		if _, err := tx.ExecContext(ctx, `UPDATE sub_accounts SET active = $1 WHERE id = $2`, *u.Active, id); err != nil {
			return err
		}
	}
	if u.Proxies != nil {
		proxies, err := parentProxies(ctx, tx, accountID, uniqueSorted(*u.Proxies))
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sub_account_proxies WHERE sub_id = $1`, id); err != nil {
			return err
		}
		if err := setSubProxies(ctx, tx, id, proxies); err != nil {
			return err
		}
	}
	if u.Hostnames != nil {
		if err := setSubHostnames(ctx, tx, accountID, id, *u.Hostnames); err != nil {
			return err
		}
	}
	if u.IPs != nil {
		ips, err := checkIPs(*u.IPs)
		if err != nil {
			return err
		}
		if err := checkParentIPs(ctx, tx, accountID, ips); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sub_account_ips WHERE sub_id = $1`, id); err != nil {
			return err
		}
		return setSubIPs(ctx, tx, id, ips)
	}
	return nil
}

// DeleteSubAccount removes the sub-account and frees its username. Its usage stays recorded.
func (db *DB) DeleteSubAccount(ctx context.Context, account, sub string) error {
	err := db.write(ctx, func(tx *sql.Tx, feed *changeLog) error {
		accountID, id, err := lookupSub(ctx, tx, account, sub)
		if err != nil {
			return err
		}
		feed.account(accountID)
		// The sub-account's proxy servers and IPs go with it (ON DELETE CASCADE).
		if _, err := tx.ExecContext(ctx, `DELETE FROM sub_accounts WHERE id = $1`, id); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM logins WHERE username = $1`, sub)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete sub-account %q of %q: %w", sub, account, err)
	}
	return nil
}

// lookupSub returns the ids of the account and of its sub-account. A sub-account of another account
// is as not found as a missing one.
func lookupSub(ctx context.Context, tx *sql.Tx, account, sub string) (accountID, subID int64, err error) {
	err = tx.QueryRowContext(ctx, `SELECT a.id, s.id FROM sub_accounts s JOIN accounts a ON a.id = s.account_id
		WHERE a.username = $1 AND s.username = $2`, account, sub).Scan(&accountID, &subID)
	if !errors.Is(err, sql.ErrNoRows) {
		return accountID, subID, err
	}
	if _, err := lookupAccount(ctx, tx, account); err != nil {
		return 0, 0, err
	}
	return 0, 0, errSubNotFound
}

// parentProxies returns the ids of the named proxy servers, each of which the account must have.
func parentProxies(ctx context.Context, tx *sql.Tx, accountID int64, names []string) ([]int64, error) {
	ids, err := proxyIDs(ctx, tx, names)
	if err != nil {
		return nil, err
	}
	for i, id := range ids {
		n, err := count(ctx, tx, `SELECT COUNT(*) FROM account_proxies WHERE account_id = $1 AND proxy_id = $2`, accountID, id)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, errProxyNotOnAccount(names[i])
		}
	}
	return ids, nil
}

// checkParentIPs fails unless the account has every one of ips.
func checkParentIPs(ctx context.Context, tx *sql.Tx, accountID int64, ips []netip.Addr) error {
	for _, ip := range ips {
		n, err := count(ctx, tx, `SELECT COUNT(*) FROM account_ips WHERE account_id = $1 AND ip = $2`, accountID, ip.String())
		if err != nil {
			return err
		}
		if n == 0 {
			return errIPNotOnAccount(ip)
		}
	}
	return nil
}

func setSubProxies(ctx context.Context, tx *sql.Tx, subID int64, proxyIDs []int64) error {
	for _, p := range proxyIDs {
		if _, err := tx.ExecContext(ctx, `INSERT INTO sub_account_proxies (sub_id, proxy_id) VALUES ($1, $2)`, subID, p); err != nil {
			return err
		}
	}
	return nil
}

func setSubIPs(ctx context.Context, tx *sql.Tx, subID int64, ips []netip.Addr) error {
	for _, ip := range ips {
		if _, err := tx.ExecContext(ctx, `INSERT INTO sub_account_ips (sub_id, ip) VALUES ($1, $2)`, subID, ip.String()); err != nil {
			return err
		}
	}
	return nil
}

// setProfile sets the profile fields given with set.
func setProfile(set func(column string, v any) error, email, first, last *string) error {
	for _, f := range []struct {
		column string
		v      *string
	}{{"email", email}, {"first_name", first}, {"last_name", last}} {
		if f.v == nil {
			continue
		}
		if err := domain.ValidateProfileField(f.column, *f.v); err != nil {
			return err
		}
		if err := set(f.column, *f.v); err != nil {
			return err
		}
	}
	return nil
}

// setSubHostnames makes names, each one of the account's authorized hostnames, the sub-account's.
func setSubHostnames(ctx context.Context, tx *sql.Tx, accountID, subID int64, names []string) error {
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = hostnameKey(n)
		ok, err := count(ctx, tx, `SELECT COUNT(*) FROM account_hostnames WHERE account_id = $1 AND hostname = $2`, accountID, keys[i])
		if err != nil {
			return err
		}
		if ok == 0 {
			return domain.Errorf(domain.EINVALID, "Hostname %s is not authorized for this account.", keys[i])
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM sub_account_hostnames WHERE sub_id = $1`, subID); err != nil {
		return err
	}
	for _, k := range uniqueSorted(keys) {
		if _, err := tx.ExecContext(ctx, `INSERT INTO sub_account_hostnames (sub_id, hostname) VALUES ($1, $2)`, subID, k); err != nil {
			return err
		}
	}
	return nil
}
