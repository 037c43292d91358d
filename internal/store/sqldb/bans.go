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

// PutBan records a ban, keeping the later end if the IP is banned already.
func (db *DB) PutBan(ctx context.Context, b domain.Ban) error {
	ip, err := checkIP(b.IP)
	if err != nil {
		return fmt.Errorf("put ban: %w", err)
	}
	err = db.inTx(ctx, nil, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO bans (ip, until, reason) VALUES ($1, $2, $3)
			ON CONFLICT (ip) DO UPDATE SET until = excluded.until, reason = excluded.reason WHERE bans.until < excluded.until`,
			ip.String(), b.Until.Unix(), b.Reason); err != nil {
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
		return queryEach(ctx, tx, `SELECT ip, until, reason FROM bans WHERE until > $1 ORDER BY until, ip`,
			[]any{db.now().Unix()}, func(rows *sql.Rows) error {
				var ip, reason string
				var until int64
				if err := rows.Scan(&ip, &until, &reason); err != nil {
					return err
				}
				addr, err := netip.ParseAddr(ip)
				if err != nil {
					return fmt.Errorf("stored ban IP %q: %w", ip, err)
				}
				out = append(out, domain.Ban{IP: addr, Until: time.Unix(until, 0).UTC(), Reason: reason})
				return nil
			})
	})
	if err != nil {
		return nil, fmt.Errorf("list bans: %w", err)
	}
	return out, nil
}
