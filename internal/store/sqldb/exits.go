package sqldb

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// PutExitStatuses replaces node's report of its exits' health.
func (db *DB) PutExitStatuses(ctx context.Context, node string, statuses []domain.ExitStatus) error {
	if node == "" {
		return domain.Errorf(domain.EINVALID, "Exit status needs the node's name.")
	}
	err := db.inTx(ctx, nil, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM exit_status WHERE node = $1`, node); err != nil {
			return err
		}
		for _, s := range statuses {
			if _, err := tx.ExecContext(ctx, `INSERT INTO exit_status (node, proxy, ip, via, healthy, active,
				latency_us, checks, failures, last_error, since, updated) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
				node, s.Proxy, s.IP.String(), s.Via, s.Healthy, s.Active, s.Latency.Microseconds(), s.Checks, s.Failures,
				s.LastError, unixOrZero(s.Since), unixOrZero(s.Updated)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put exit status of node %s: %w", node, db.classify(err))
	}
	return nil
}

// ListExitStatuses returns every node's report, by node, proxy server and exit.
func (db *DB) ListExitStatuses(ctx context.Context) ([]domain.ExitStatus, error) {
	out := []domain.ExitStatus{}
	err := db.read(ctx, func(tx *sql.Tx) error {
		return queryEach(ctx, tx, `SELECT node, proxy, ip, via, healthy, active, latency_us, checks, failures,
			last_error, since, updated FROM exit_status ORDER BY node, proxy, ip`, nil, func(rows *sql.Rows) error {
			var s domain.ExitStatus
			var ip string
			var latency, since, updated int64
			if err := rows.Scan(&s.Node, &s.Proxy, &ip, &s.Via, &s.Healthy, &s.Active, &latency, &s.Checks,
				&s.Failures, &s.LastError, &since, &updated); err != nil {
				return err
			}
			addr, err := netip.ParseAddr(ip)
			if err != nil {
				return fmt.Errorf("stored exit IP %q: %w", ip, err)
			}
			s.IP, s.Latency = addr, time.Duration(latency)*time.Microsecond
			s.Since, s.Updated = timeOrZero(since), timeOrZero(updated)
			out = append(out, s)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list exit status: %w", err)
	}
	return out, nil
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func timeOrZero(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}
