package sqldb

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/exitmesh/exitmesh/internal/domain"
)

var (
	errHostnameTaken     = domain.Errorf(domain.ECONFLICT, "Hostname is already authorized.")
	errHostnameNotOnAcct = domain.Errorf(domain.EINVALID, "Hostname is not authorized.")
	errHostnameNotFound  = domain.Errorf(domain.ENOTFOUND, "Hostname not found.")
)

func errLoginNotFound(username string) error {
	return domain.Errorf(domain.ENOTFOUND, "Login %q not found.", username)
}

func errHostnameLimit(p domain.Plan) error {
	return errLimit(p, p.MaxHostnames, "hostname", "hostnames")
}

// hostnameKey is the form a hostname is stored and looked up in: lower case, no trailing dot.
func hostnameKey(h string) string { return strings.ToLower(strings.TrimSuffix(h, ".")) }

// normalizeHostname validates h and returns its stored form.
func normalizeHostname(h string) (string, error) {
	h = hostnameKey(h)
	if err := domain.ValidateHostname(h); err != nil {
		return "", err
	}
	return h, nil
}

// storedIP is how an address is kept: the empty string for one that did not resolve.
func storedIP(ip netip.Addr) string {
	if !ip.IsValid() {
		return ""
	}
	return ip.Unmap().WithZone("").String()
}

// AddHostname authorizes a hostname for the account, within its plan's limit. ip is the address it
// resolved to, or invalid if it did not: the hostname is then kept unresolved (no address, zero
// resolution time) until SetHostnameIP records one. Different accounts may authorize the same name.
func (db *DB) AddHostname(ctx context.Context, username, hostname string, ip netip.Addr) error {
	name, err := normalizeHostname(hostname)
	if err != nil {
		return fmt.Errorf("add hostname for %q: %w", username, err)
	}
	err = db.writeAccount(ctx, username, func(tx *sql.Tx, ref accountRef) error {
		n, err := count(ctx, tx, `SELECT COUNT(*) FROM account_hostnames WHERE account_id = $1 AND hostname = $2`, ref.id, name)
		if err != nil {
			return err
		}
		if n > 0 {
			return errHostnameTaken
		}
		if n, err = count(ctx, tx, `SELECT COUNT(*) FROM account_hostnames WHERE account_id = $1`, ref.id); err != nil {
			return err
		}
		if n >= ref.plan.MaxHostnames {
			return errHostnameLimit(ref.plan)
		}
		var at int64
		if ip.IsValid() {
			at = db.now().Unix()
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO account_hostnames (account_id, hostname, ip, resolved_at) VALUES ($1, $2, $3, $4)`,
			ref.id, name, storedIP(ip), at)
		if db.dialect.IsUniqueViolation(err) {
			return errHostnameTaken
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("add hostname %q for %q: %w", name, username, err)
	}
	return nil
}

// RemoveHostname withdraws an authorized hostname. The name is only normalized, not validated: a
// name that is not valid cannot be authorized either, and both are answered "not authorized".
func (db *DB) RemoveHostname(ctx context.Context, username, hostname string) error {
	name := hostnameKey(hostname)
	err := db.writeAccount(ctx, username, func(tx *sql.Tx, ref accountRef) error {
		n, err := rowsAffected(tx.ExecContext(ctx, `DELETE FROM account_hostnames WHERE account_id = $1 AND hostname = $2`, ref.id, name))
		if err != nil {
			return err
		}
		if n == 0 {
			return errHostnameNotOnAcct
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM sub_account_hostnames WHERE hostname = $1
			AND sub_id IN (SELECT id FROM sub_accounts WHERE account_id = $2)`, name, ref.id)
		return err
	})
	if err != nil {
		return fmt.Errorf("remove hostname %q for %q: %w", name, username, err)
	}
	return nil
}

// SetHostnameIP records a re-resolution: ip is the address the hostname now resolves to, invalid
// if it no longer resolves. The resolution time is always saved; the version moves only when the
// address changed, so that unchanged answers do not make every node reload its view.
func (db *DB) SetHostnameIP(ctx context.Context, username, hostname string, ip netip.Addr) error {
	name := hostnameKey(hostname)
	addr, at := storedIP(ip), db.now().Unix()
	// The usual case, the same address again: one statement, no version change.
	n, err := rowsAffected(db.sql.ExecContext(ctx, `UPDATE account_hostnames SET resolved_at = $1
		WHERE hostname = $2 AND ip = $3 AND account_id = (SELECT id FROM accounts WHERE username = $4)`,
		at, name, addr, username))
	if err == nil && n == 0 {
		// A new address, or no such account or hostname. A transaction of its own, so that it
		// locks the version before the row like every other writer (else PostgreSQL can deadlock
		// this with a concurrent RemoveHostname).
		err = db.writeAccount(ctx, username, func(tx *sql.Tx, ref accountRef) error {
			n, err := rowsAffected(tx.ExecContext(ctx, `UPDATE account_hostnames SET ip = $1, resolved_at = $2
				WHERE account_id = $3 AND hostname = $4`, addr, at, ref.id, name))
			if err == nil && n == 0 {
				return errHostnameNotFound
			}
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("set address of hostname %q of %q: %w", name, username, db.classify(err))
	}
	return nil
}

// ListAllHostnames returns every account's hostnames, sorted by account, then hostname.
func (db *DB) ListAllHostnames(ctx context.Context) ([]domain.AccountHostname, error) {
	out := []domain.AccountHostname{}
	err := db.read(ctx, func(tx *sql.Tx) error {
		names := map[int64]string{}
		err := queryEach(ctx, tx, `SELECT id, username FROM accounts`, nil, func(rows *sql.Rows) error {
			var id int64
			var username string
			if err := rows.Scan(&id, &username); err != nil {
				return err
			}
			names[id] = username
			return nil
		})
		if err != nil {
			return err
		}
		return queryEach(ctx, tx, `SELECT account_id, hostname, ip, resolved_at FROM account_hostnames`, nil, func(rows *sql.Rows) error {
			id, h, err := scanHostname(rows)
			if err == nil {
				out = append(out, domain.AccountHostname{Account: names[id], Hostname: h})
			}
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list hostnames: %w", err)
	}
	slices.SortFunc(out, func(a, b domain.AccountHostname) int {
		return cmp.Or(strings.Compare(a.Account, b.Account), strings.Compare(a.Name, b.Name))
	})
	return out, nil
}

// GetLogin finds an account or a sub-account by username.
func (db *DB) GetLogin(ctx context.Context, username string) (domain.Login, error) {
	var l domain.Login
	err := db.read(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT username, password_hash, id, username, 0 FROM accounts WHERE username = $1
			UNION ALL
			SELECT s.username, s.password_hash, s.account_id, a.username, s.id FROM sub_accounts s
				JOIN accounts a ON a.id = s.account_id WHERE s.username = $1`, username).
			Scan(&l.Username, &l.PasswordHash, &l.AccountID, &l.Account, &l.SubID)
		if errors.Is(err, sql.ErrNoRows) {
			return errLoginNotFound(username)
		}
		return err
	})
	if err != nil {
		return domain.Login{}, fmt.Errorf("get login %q: %w", username, err)
	}
	return l, nil
}
