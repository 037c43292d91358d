package sqldb

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// banMemory is how long an expired ban is kept before PutBan prunes it.
const banMemory = time.Hour

// PutBan records a ban, keeping the later end if the IP is banned already. A lifted ban is
// replaced only by one decided after the lift (a tie counts as after: a real new ban is never lost).
func (db *DB) PutBan(ctx context.Context, b domain.Ban) error {
	ip, err := checkIP(b.IP)
	if err != nil {
		return fmt.Errorf("put ban: %w", err)
	}
	decided := b.Since
	if decided.IsZero() {
		decided = db.now()
	}
	err = db.inTx(ctx, nil, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO bans (ip, until, reason, decided, lifted) VALUES ($1, $2, $3, $4, 0)
			ON CONFLICT (ip) DO UPDATE SET until = excluded.until, reason = excluded.reason, decided = excluded.decided, lifted = 0
			WHERE (bans.lifted = 0 AND bans.until < excluded.until) OR (bans.lifted > 0 AND bans.lifted <= excluded.decided)`,
			ip.String(), b.Until.Unix(), b.Reason, decided.UnixMilli()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM bans WHERE until < $1`, db.now().Add(-banMemory).Unix())
		return err
	})
	if err != nil {
		return fmt.Errorf("put ban of %s: %w", ip, db.classify(err))
	}
	return nil
}

// ListBans returns the bans in force, soonest to end first.
func (db *DB) ListBans(ctx context.Context) ([]domain.Ban, error) {
	out := []domain.Ban{}
	err := db.read(ctx, func(tx *sql.Tx) error {
		return queryEach(ctx, tx, `SELECT ip, until, reason, decided FROM bans WHERE until > $1 AND lifted = 0 ORDER BY until, ip`,
			[]any{db.now().Unix()}, func(rows *sql.Rows) error {
				b, _, err := scanBan(rows)
				if err == nil {
					out = append(out, b)
				}
				return err
			})
	})
	if err != nil {
		return nil, fmt.Errorf("list bans: %w", err)
	}
	return out, nil
}

// ListBansPage returns a page of the bans in force in the byte order of their IPs' text, read from
// the index on that order (bans_ip_order): a prefix is the range from itself to itself followed by
// a character above any of an IP's text.
func (db *DB) ListBansPage(ctx context.Context, q domain.BanQuery) (domain.BanPage, error) {
	q, err := checkBanQuery(q)
	if err != nil {
		return domain.BanPage{}, fmt.Errorf("list bans: %w", err)
	}
	limit := q.Limit
	if limit <= 0 || limit > domain.MaxBanPage {
		limit = domain.MaxBanPage
	}
	ip := "ip" + db.dialect.ByteOrder
	args := []any{db.now().Unix()}
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	conds := []string{"until > $1", "lifted = 0"}
	if q.After != "" {
		conds = append(conds, ip+" > "+arg(q.After))
	}
	if q.Prefix != "" {
		conds = append(conds, ip+" >= "+arg(q.Prefix), ip+" < "+arg(q.Prefix+"\x7f"))
	}
	page := domain.BanPage{Bans: []domain.Ban{}}
	var last string // the text of the last IP on the page
	err = db.read(ctx, func(tx *sql.Tx) error {
		return queryEach(ctx, tx, `SELECT ip, until, reason, decided FROM bans`+whereClause(strings.Join(conds, " AND "))+
			` ORDER BY `+ip+` LIMIT `+strconv.Itoa(limit+1), args, func(rows *sql.Rows) error {
			b, text, err := scanBan(rows)
			switch {
			case err != nil:
				return err
			case len(page.Bans) == limit: // the one more than asked: a next page follows
				page.Next = last
			default:
				page.Bans, last = append(page.Bans, b), text
			}
			return nil
		})
	})
	if err != nil {
		return domain.BanPage{}, fmt.Errorf("list bans: %w", err)
	}
	return page, nil
}

// checkBanQuery returns q with its prefix in lower case (as IPv6 addresses are stored) and its
// cursor in the form the IPs are stored in, or EINVALID.
func checkBanQuery(q domain.BanQuery) (domain.BanQuery, error) {
	if len(q.Prefix) > domain.MaxBanPrefix {
		return q, domain.Errorf(domain.EINVALID, "An IP prefix to search for is at most %d characters.", domain.MaxBanPrefix)
	}
	q.Prefix = strings.ToLower(q.Prefix)
	if strings.Trim(q.Prefix, "0123456789abcdef.:") != "" {
		return q, domain.Errorf(domain.EINVALID, "An IP prefix to search for has only digits, the letters a to f, dots and colons (such as 203.0.113. or 2001:db8:).")
	}
	if q.After != "" {
		after, err := netip.ParseAddr(q.After)
		if err != nil {
			return q, domain.Errorf(domain.EINVALID, "A page of bans starts after an IP address (the last of the page before), and this is not one.")
		}
		q.After = after.Unmap().WithZone("").String()
	}
	return q, nil
}

// scanBan reads a row of ip, until, reason, decided, and returns the IP's text as stored too.
func scanBan(rows *sql.Rows) (domain.Ban, string, error) {
	var ip, reason string
	var until, decided int64
	if err := rows.Scan(&ip, &until, &reason, &decided); err != nil {
		return domain.Ban{}, "", err
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return domain.Ban{}, "", fmt.Errorf("stored ban IP %q: %w", ip, err)
	}
	b := domain.Ban{IP: addr, Until: time.Unix(until, 0).UTC(), Reason: reason}
	if decided > 0 {
		b.Since = time.UnixMilli(decided).UTC()
	}
	return b, ip, nil
}

// LiftBan ends ip's ban network-wide. The row stays, marked lifted, until it is pruned like an
// expired ban, so that PutBan can tell a late write of an older ban from a new one.
func (db *DB) LiftBan(ctx context.Context, ip netip.Addr) error {
	if !ip.IsValid() {
		return fmt.Errorf("lift ban: %w", domain.Errorf(domain.EINVALID, "Invalid IP address."))
	}
	ip = ip.Unmap().WithZone("")
	err := db.inTx(ctx, nil, func(tx *sql.Tx) error {
		now := db.now()
		n, err := rowsAffected(tx.ExecContext(ctx, `UPDATE bans SET lifted = $2 WHERE ip = $1 AND lifted = 0 AND until > $3`,
			ip.String(), now.UnixMilli(), now.Unix()))
		if err == nil && n == 0 {
			return domain.Errorf(domain.ENOTFOUND, "IP address %s is not banned.", ip)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("lift ban of %s: %w", ip, db.classify(err))
	}
	return nil
}
