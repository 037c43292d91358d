package sqldb

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
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
				var ip, reason string
				var until, decided int64
				if err := rows.Scan(&ip, &until, &reason, &decided); err != nil {
					return err
				}
				addr, err := netip.ParseAddr(ip)
				if err != nil {
					return fmt.Errorf("stored ban IP %q: %w", ip, err)
				}
				b := domain.Ban{IP: addr, Until: time.Unix(until, 0).UTC(), Reason: reason}
				if decided > 0 {
					b.Since = time.UnixMilli(decided).UTC()
				}
				out = append(out, b)
				return nil
			})
	})
	if err != nil {
		return nil, fmt.Errorf("list bans: %w", err)
	}
	return out, nil
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
