package sqldb

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// ClaimIdempotencyKey claims k, or reports the answer kept for it. The insert and the read run in one
// transaction; the primary key makes the claim atomic across nodes: of two concurrent claims, one
// inserts and the other waits for its commit and then reads the row.
func (db *DB) ClaimIdempotencyKey(ctx context.Context, k domain.IdempotencyKey, now time.Time) (domain.Claim, error) {
	if k.Key == "" || k.Route == "" || k.ParamsHash == "" {
		return domain.Claim{}, fmt.Errorf("claim idempotency key: %w", domain.Errorf(domain.EINVALID, "An idempotency key needs a key, a route and a hash."))
	}
	var c domain.Claim
	err := db.inTx(ctx, nil, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE created_at < $1`, now.Add(-domain.IdempotencyTTL).Unix()); err != nil {
			return err
		}
		// A pending claim older than IdempotencyPending belongs to a request that will never finish.
		if _, err := tx.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE account_id = $1 AND key = $2 AND status = 0 AND created_at < $3`,
			k.AccountID, k.Key, now.Add(-domain.IdempotencyPending).Unix()); err != nil {
			return err
		}
		n, err := rowsAffected(tx.ExecContext(ctx, `INSERT INTO idempotency_keys (account_id, key, route, params_hash, created_at)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id, key) DO NOTHING`,
			k.AccountID, k.Key, k.Route, k.ParamsHash, now.Unix()))
		if err != nil || n == 1 {
			c.Owned = n == 1
			return err
		}
		var route, hash string
		err = tx.QueryRowContext(ctx, `SELECT route, params_hash, status, body FROM idempotency_keys WHERE account_id = $1 AND key = $2`,
			k.AccountID, k.Key).Scan(&route, &hash, &c.Answer.Status, &c.Answer.Body)
		c.Mismatch = err == nil && (route != k.Route || hash != k.ParamsHash)
		return err
	})
	if err != nil {
		return domain.Claim{}, fmt.Errorf("claim idempotency key: %w", err)
	}
	return c, nil
}

// FinishIdempotencyKey keeps the answer of a claimed key.
func (db *DB) FinishIdempotencyKey(ctx context.Context, k domain.IdempotencyKey, a domain.IdempotentAnswer) error {
	if a.Status == 0 {
		return fmt.Errorf("finish idempotency key: %w", domain.Errorf(domain.EINVALID, "An answer needs a status."))
	}
	_, err := db.sql.ExecContext(ctx, `UPDATE idempotency_keys SET status = $1, body = $2
		WHERE account_id = $3 AND key = $4 AND route = $5 AND params_hash = $6 AND status = 0`,
		a.Status, a.Body, k.AccountID, k.Key, k.Route, k.ParamsHash)
	if err != nil {
		return fmt.Errorf("finish idempotency key: %w", db.classify(err))
	}
	return nil
}

// ReleaseIdempotencyKey drops a pending claim.
func (db *DB) ReleaseIdempotencyKey(ctx context.Context, k domain.IdempotencyKey) error {
	_, err := db.sql.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE account_id = $1 AND key = $2 AND route = $3
		AND params_hash = $4 AND status = 0`, k.AccountID, k.Key, k.Route, k.ParamsHash)
	if err != nil {
		return fmt.Errorf("release idempotency key: %w", db.classify(err))
	}
	return nil
}
