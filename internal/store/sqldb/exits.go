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
		before, err := exitHealth(ctx, tx, node)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM exit_status WHERE node = $1`, node); err != nil {
			return err
		}
		if err := recordExitEvents(ctx, tx, db.now(), node, before, statuses); err != nil {
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

type exitKey struct{ proxy, ip, via string }

// exitHealth reads whether each exit of node was in rotation in its last report.
func exitHealth(ctx context.Context, tx *sql.Tx, node string) (map[exitKey]bool, error) {
	healthy := map[exitKey]bool{}
	err := queryEach(ctx, tx, `SELECT proxy, ip, via, healthy FROM exit_status WHERE node = $1`, []any{node}, func(r *sql.Rows) error {
		var k exitKey
		var h bool
		if err := r.Scan(&k.proxy, &k.ip, &k.via, &h); err != nil {
			return err
		}
		healthy[k] = h
		return nil
	})
	return healthy, err
}

// exitEventData is what exit.down and exit.up events say.
type exitEventData struct {
	Node      string `json:"node"`
	Proxy     string `json:"proxy"`
	IP        string `json:"ip"`
	Via       string `json:"via,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

// recordExitEvents records exit.down and exit.up for the exits whose health differs from the node's
// previous report. An exit the node reports for the first time has no event: nothing changed that
// anyone was told of.
func recordExitEvents(ctx context.Context, tx *sql.Tx, now time.Time, node string, before map[exitKey]bool, statuses []domain.ExitStatus) error {
	for _, s := range statuses {
		was, known := before[exitKey{s.Proxy, s.IP.String(), s.Via}]
		if !known || was == s.Healthy {
			continue
		}
		typ := domain.EventExitUp
		if !s.Healthy {
			typ = domain.EventExitDown
		}
		data := exitEventData{Node: node, Proxy: s.Proxy, IP: s.IP.String(), Via: s.Via, LastError: s.LastError}
		if err := recordEvent(ctx, tx, now, typ, 0, "", data); err != nil {
			return err
		}
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
