package sqldb

import (
	"cmp"
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
// the number of rows, naming plans and proxy servers from a catalog read in the same transaction
// (the caller's, when it loads more than once; nil: read here). where filters on the aliases a (accounts) and s (sub_accounts); "" loads all,
// and then the tables of attached rows are read alone, without the joins a filter needs (at a
// million accounts those joins are most of a full load's time in the database).

// ownedBy joins the attached rows of table (aliased t, owner column col) to their account when
// where filters: "" when it does not.
func ownedBy(where, col string) string {
	if where == "" {
		return ""
	}
	return " JOIN accounts a ON a.id = t." + col
}

// ownedBySub is ownedBy for the rows attached to a sub-account.
func ownedBySub(where string) string {
	if where == "" {
		return ""
	}
	return " JOIN sub_accounts s ON s.id = t.sub_id JOIN accounts a ON a.id = s.account_id"
}

// loadAccounts returns the accounts matching where, sorted by username; all of them (where "") in
// the order of their ids, which a full load does not need sorted otherwise.
func loadAccounts(ctx context.Context, tx *sql.Tx, cat *catalog, where string, args ...any) ([]domain.Account, error) {
	cond := whereClause(where)
	cat, err := cat.orRead(ctx, tx)
	if err != nil {
		return nil, err
	}
	accounts, err := capacity[domain.Account](ctx, tx, where, "accounts")
	if err != nil {
		return nil, err
	}
	err = queryEach(ctx, tx, `SELECT a.id, a.username, a.password_hash, a.plan_id, a.confirmed, a.disabled, a.created_at,
		a.monthly_limit, a.total_limit, a.billing_day
		FROM accounts a`+cond, args, func(r *sql.Rows) error {
		a := domain.Account{Proxies: []string{}, IPs: []netip.Addr{}, Hostnames: []domain.Hostname{}}
		var created, plan int64
		if err := r.Scan(&a.ID, &a.Username, &a.PasswordHash, &plan, &a.Confirmed, &a.Disabled, &created,
			&a.MonthlyLimit, &a.TotalLimit, &a.BillingDay); err != nil {
			return err
		}
		a.Plan = cat.plans[plan]
		a.CreatedAt = unixTime(created)
		accounts = append(accounts, a)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read accounts: %w", err)
	}
	if len(accounts) == 0 {
		return accounts, nil
	}
	index := newByID(accounts, func(a *domain.Account) int64 { return a.ID })
	err = queryEach(ctx, tx, `SELECT t.account_id, t.proxy_id FROM account_proxies t`+ownedBy(where, "account_id")+cond, args,
		func(r *sql.Rows) error {
			var id, proxy int64
			err := r.Scan(&id, &proxy)
			if i, ok := index.find(id); ok && err == nil {
				accounts[i].Proxies = append(accounts[i].Proxies, cat.proxies[proxy])
			}
			return err
		})
	if err != nil {
		return nil, fmt.Errorf("read account proxy servers: %w", err)
	}
	err = queryEach(ctx, tx, `SELECT t.account_id, t.ip FROM account_ips t`+ownedBy(where, "account_id")+cond, args, func(r *sql.Rows) error {
		id, ip, err := scanIP(r)
		if i, ok := index.find(id); ok && err == nil {
			accounts[i].IPs = append(accounts[i].IPs, ip)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read account IPs: %w", err)
	}
	err = queryEach(ctx, tx, `SELECT t.account_id, t.hostname, t.ip, t.resolved_at FROM account_hostnames t`+
		ownedBy(where, "account_id")+cond, args, func(r *sql.Rows) error {
		id, h, err := scanHostname(r)
		if i, ok := index.find(id); ok && err == nil {
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
	if where != "" {
		slices.SortFunc(accounts, func(x, y domain.Account) int { return strings.Compare(x.Username, y.Username) })
	}
	return accounts, nil
}

// loadSubs returns the sub-accounts matching where, sorted by username; all of them (where "") in
// the order of their ids.
func loadSubs(ctx context.Context, tx *sql.Tx, cat *catalog, where string, args ...any) ([]domain.SubAccount, error) {
	cond := whereClause(where)
	cat, err := cat.orRead(ctx, tx)
	if err != nil {
		return nil, err
	}
	subs, err := capacity[domain.SubAccount](ctx, tx, where, "sub_accounts")
	if err != nil {
		return nil, err
	}
	join := ""
	if where != "" {
		join = " JOIN accounts a ON a.id = s.account_id"
	}
	err = queryEach(ctx, tx, `SELECT s.id, s.account_id, s.username, s.password_hash, s.active,
		s.email, s.first_name, s.last_name, s.monthly_limit, s.total_limit
		FROM sub_accounts s`+join+cond, args, func(r *sql.Rows) error {
		s := domain.SubAccount{Proxies: []string{}, IPs: []netip.Addr{}, Hostnames: []string{}}
		if err := r.Scan(&s.ID, &s.AccountID, &s.Username, &s.PasswordHash, &s.Active,
			&s.Email, &s.FirstName, &s.LastName, &s.MonthlyLimit, &s.TotalLimit); err != nil {
			return err
		}
		subs = append(subs, s)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read sub-accounts: %w", err)
	}
	if len(subs) == 0 {
		return subs, nil
	}
	index := newByID(subs, func(s *domain.SubAccount) int64 { return s.ID })
	err = queryEach(ctx, tx, `SELECT t.sub_id, t.proxy_id FROM sub_account_proxies t`+ownedBySub(where)+cond, args, func(r *sql.Rows) error {
		var id, proxy int64
		err := r.Scan(&id, &proxy)
		if i, ok := index.find(id); ok && err == nil {
			subs[i].Proxies = append(subs[i].Proxies, cat.proxies[proxy])
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read sub-account proxy servers: %w", err)
	}
	err = queryEach(ctx, tx, `SELECT t.sub_id, t.ip FROM sub_account_ips t`+ownedBySub(where)+cond, args,
		func(r *sql.Rows) error {
			id, ip, err := scanIP(r)
			if i, ok := index.find(id); ok && err == nil {
				subs[i].IPs = append(subs[i].IPs, ip)
			}
			return err
		})
	if err != nil {
		return nil, fmt.Errorf("read sub-account IPs: %w", err)
	}
	err = queryEach(ctx, tx, `SELECT t.sub_id, t.hostname FROM sub_account_hostnames t`+ownedBySub(where)+cond, args,
		func(r *sql.Rows) error {
			var id int64
			var name string
			err := r.Scan(&id, &name)
			if i, ok := index.find(id); ok && err == nil {
				subs[i].Hostnames = append(subs[i].Hostnames, name)
			}
			return err
		})
	if err != nil {
		return nil, fmt.Errorf("read sub-account hostnames: %w", err)
	}
	for i := range subs {
		slices.Sort(subs[i].Proxies)
		slices.SortFunc(subs[i].IPs, netip.Addr.Compare)
		slices.Sort(subs[i].Hostnames)
	}
	if where != "" {
		slices.SortFunc(subs, func(x, y domain.SubAccount) int { return strings.Compare(x.Username, y.Username) })
	}
	return subs, nil
}

// catalog is the names of the plans and proxy servers by id, read once per transaction, so that the
// rows that refer to them need no join and share one string each instead of one per row.
type catalog struct {
	plans, proxies map[int64]string
}

// orRead returns cat, or when it is nil the catalog read in tx.
func (cat *catalog) orRead(ctx context.Context, tx *sql.Tx) (*catalog, error) {
	if cat != nil {
		return cat, nil
	}
	return readCatalog(ctx, tx)
}

func readCatalog(ctx context.Context, tx *sql.Tx) (*catalog, error) {
	cat := &catalog{plans: map[int64]string{}, proxies: map[int64]string{}}
	err := queryEach(ctx, tx, `SELECT 0, id, name FROM plans UNION ALL SELECT 1, id, name FROM proxy_servers`, nil,
		func(r *sql.Rows) error {
			var table, id int64
			var name string
			err := r.Scan(&table, &id, &name)
			if table == 0 {
				cat.plans[id] = name
			} else {
				cat.proxies[id] = name
			}
			return err
		})
	if err != nil {
		return nil, fmt.Errorf("read plan and proxy server names: %w", err)
	}
	return cat, nil
}

// capacity returns an empty slice with room for every row of table when where is "" (all of them),
// so that a full load does not copy a million rows each time the slice grows.
func capacity[T any](ctx context.Context, tx *sql.Tx, where, table string) ([]T, error) {
	if where != "" {
		return []T{}, nil
	}
	n, err := count(ctx, tx, `SELECT COUNT(*) FROM `+table)
	if err != nil {
		return nil, fmt.Errorf("count %s: %w", table, err)
	}
	return make([]T, 0, n), nil
}

// byID finds a loaded row by its id. The rows are sorted by id once; attached rows come mostly in
// their owner's order (a table keeps its insertion order until rows are updated), so the row found
// last and the one after it are tried before a binary search — cheaper, at a million rows, than a
// map whose every probe misses the cache.
type byID struct {
	ids  []int64 // ascending
	last int
}

// newByID sorts rows by id (they mostly come sorted already) and indexes them.
func newByID[T any](rows []T, id func(*T) int64) *byID {
	inOrder := func(x, y T) int { return cmp.Compare(id(&x), id(&y)) }
	if !slices.IsSortedFunc(rows, inOrder) {
		slices.SortFunc(rows, inOrder)
	}
	ids := make([]int64, len(rows))
	for i := range rows {
		ids[i] = id(&rows[i])
	}
	return &byID{ids: ids}
}

// find returns the position of the row with id, if loaded.
func (b *byID) find(id int64) (int, bool) {
	for _, i := range [2]int{b.last, b.last + 1} {
		if i < len(b.ids) && b.ids[i] == id {
			b.last = i
			return i, true
		}
	}
	i, ok := slices.BinarySearch(b.ids, id)
	if ok {
		b.last = i
	}
	return i, ok
}

// loadAccount returns the account with the given id.
func loadAccount(ctx context.Context, tx *sql.Tx, id int64) (domain.Account, error) {
	as, err := loadAccounts(ctx, tx, nil, "a.id = $1", id)
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
	ss, err := loadSubs(ctx, tx, nil, "s.id = $1", id)
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
