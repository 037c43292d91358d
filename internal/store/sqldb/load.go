package sqldb

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// The loaders read accounts or sub-accounts with everything attached, one query per table whatever
// the number of rows. where filters on the aliases a (accounts) and s (sub_accounts); "" loads all.

// loadAccounts returns the accounts matching where, sorted by username.
func loadAccounts(ctx context.Context, tx *sql.Tx, where string, args ...any) ([]domain.Account, error) {
	cond := whereClause(where)
	accounts := []domain.Account{}
	index := map[int64]int{}
	err := queryEach(ctx, tx, `SELECT a.id, a.username, a.password_hash, p.name, a.confirmed, a.disabled, a.created_at
		FROM accounts a JOIN plans p ON p.id = a.plan_id`+cond, args, func(r *sql.Rows) error {
		a := domain.Account{Proxies: []string{}, IPs: []netip.Addr{}, Hostnames: []domain.Hostname{}}
		var created int64
		if err := r.Scan(&a.ID, &a.Username, &a.PasswordHash, &a.Plan, &a.Confirmed, &a.Disabled, &created); err != nil {
			return err
		}
		a.CreatedAt = unixTime(created)
		index[a.ID] = len(accounts)
		accounts = append(accounts, a)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read accounts: %w", err)
	}
	if len(accounts) == 0 {
		return accounts, nil
	}
	err = queryEach(ctx, tx, `SELECT ap.account_id, ps.name FROM account_proxies ap
		JOIN proxy_servers ps ON ps.id = ap.proxy_id JOIN accounts a ON a.id = ap.account_id`+cond, args,
		func(r *sql.Rows) error {
			var id int64
			var name string
			err := r.Scan(&id, &name)
			if i, ok := index[id]; ok && err == nil {
				accounts[i].Proxies = append(accounts[i].Proxies, name)
			}
			return err
		})
	if err != nil {
		return nil, fmt.Errorf("read account proxy servers: %w", err)
	}
	err = queryEach(ctx, tx, `SELECT ai.account_id, ai.ip FROM account_ips ai
		JOIN accounts a ON a.id = ai.account_id`+cond, args, func(r *sql.Rows) error {
		id, ip, err := scanIP(r)
		if i, ok := index[id]; ok && err == nil {
			accounts[i].IPs = append(accounts[i].IPs, ip)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read account IPs: %w", err)
	}
	err = queryEach(ctx, tx, `SELECT h.account_id, h.hostname, h.ip, h.resolved_at FROM account_hostnames h
		JOIN accounts a ON a.id = h.account_id`+cond, args, func(r *sql.Rows) error {
		id, h, err := scanHostname(r)
		if i, ok := index[id]; ok && err == nil {
			accounts[i].Hostnames = append(accounts[i].Hostnames, h)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read account hostnames: %w", err)
	}
	for i := range accounts {
		a := &accounts[i]
		slices.Sort(a.Proxies)
		slices.SortFunc(a.IPs, netip.Addr.Compare)
		slices.SortFunc(a.Hostnames, func(x, y domain.Hostname) int { return strings.Compare(x.Name, y.Name) })
	}
	slices.SortFunc(accounts, func(x, y domain.Account) int { return strings.Compare(x.Username, y.Username) })
	return accounts, nil
}

// loadSubs returns the sub-accounts matching where, sorted by username.
func loadSubs(ctx context.Context, tx *sql.Tx, where string, args ...any) ([]domain.SubAccount, error) {
	cond := whereClause(where)
	subs := []domain.SubAccount{}
	index := map[int64]int{}
	err := queryEach(ctx, tx, `SELECT s.id, s.account_id, s.username, s.password_hash, s.active
		FROM sub_accounts s JOIN accounts a ON a.id = s.account_id`+cond, args, func(r *sql.Rows) error {
		s := domain.SubAccount{Proxies: []string{}, IPs: []netip.Addr{}}
		if err := r.Scan(&s.ID, &s.AccountID, &s.Username, &s.PasswordHash, &s.Active); err != nil {
			return err
		}
		index[s.ID] = len(subs)
		subs = append(subs, s)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read sub-accounts: %w", err)
	}
	if len(subs) == 0 {
		return subs, nil
	}
	err = queryEach(ctx, tx, `SELECT sp.sub_id, ps.name FROM sub_account_proxies sp
		JOIN proxy_servers ps ON ps.id = sp.proxy_id JOIN sub_accounts s ON s.id = sp.sub_id
		JOIN accounts a ON a.id = s.account_id`+cond, args, func(r *sql.Rows) error {
		var id int64
		var name string
		err := r.Scan(&id, &name)
		if i, ok := index[id]; ok && err == nil {
			subs[i].Proxies = append(subs[i].Proxies, name)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read sub-account proxy servers: %w", err)
	}
	err = queryEach(ctx, tx, `SELECT si.sub_id, si.ip FROM sub_account_ips si
		JOIN sub_accounts s ON s.id = si.sub_id JOIN accounts a ON a.id = s.account_id`+cond, args,
		func(r *sql.Rows) error {
			id, ip, err := scanIP(r)
			if i, ok := index[id]; ok && err == nil {
				subs[i].IPs = append(subs[i].IPs, ip)
			}
			return err
		})
	if err != nil {
		return nil, fmt.Errorf("read sub-account IPs: %w", err)
	}
	for i := range subs {
		slices.Sort(subs[i].Proxies)
		slices.SortFunc(subs[i].IPs, netip.Addr.Compare)
	}
	slices.SortFunc(subs, func(x, y domain.SubAccount) int { return strings.Compare(x.Username, y.Username) })
	return subs, nil
}

// loadAccount returns the account with the given id.
func loadAccount(ctx context.Context, tx *sql.Tx, id int64) (domain.Account, error) {
	as, err := loadAccounts(ctx, tx, "a.id = $1", id)
	if err != nil {
		return domain.Account{}, err
	}
	if len(as) != 1 {
		return domain.Account{}, fmt.Errorf("account %d vanished", id)
	}
	return as[0], nil
}

// loadSub returns the sub-account with the given id.
func loadSub(ctx context.Context, tx *sql.Tx, id int64) (domain.SubAccount, error) {
	ss, err := loadSubs(ctx, tx, "s.id = $1", id)
	if err != nil {
		return domain.SubAccount{}, err
	}
	if len(ss) != 1 {
		return domain.SubAccount{}, fmt.Errorf("sub-account %d vanished", id)
	}
	return ss[0], nil
}

func whereClause(where string) string {
	if where == "" {
		return ""
	}
	return " WHERE " + where
}

// scanIP scans an owner id and a stored IP address.
func scanIP(r *sql.Rows) (int64, netip.Addr, error) {
	var id int64
	var s string
	if err := r.Scan(&id, &s); err != nil {
		return 0, netip.Addr{}, err
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return 0, netip.Addr{}, fmt.Errorf("stored IP address of %d: %w", id, err)
	}
	return id, ip, nil
}

// scanHostname scans an account id and a hostname row; an empty ip means not resolved yet.
func scanHostname(r *sql.Rows) (int64, domain.Hostname, error) {
	var id, resolved int64
	var h domain.Hostname
	var ip string
	if err := r.Scan(&id, &h.Name, &ip, &resolved); err != nil {
		return 0, h, err
	}
	if ip != "" {
		var err error
		if h.IP, err = netip.ParseAddr(ip); err != nil {
			return 0, h, fmt.Errorf("stored IP address of hostname %q: %w", h.Name, err)
		}
	}
	h.ResolvedAt = unixTime(resolved)
	return id, h, nil
}

// unixTime converts stored unix seconds; 0 is the zero time.
func unixTime(sec int64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0).UTC()
}
