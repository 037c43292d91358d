package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// CreateWebSession records a dashboard sign-in and forgets the expired ones.
func (db *DB) CreateWebSession(ctx context.Context, s domain.WebSession) error {
	if s.ID == "" || s.Username == "" || s.CSRF == "" {
		return domain.Errorf(domain.EINVALID, "A session needs an id, a username and a CSRF token.")
	}
	err := db.inTx(ctx, nil, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM web_sessions WHERE expires <= $1`, db.now().Unix()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO web_sessions (id, username, csrf, expires) VALUES ($1, $2, $3, $4)`,
			s.ID, s.Username, s.CSRF, s.Expires.Unix())
		return err
	})
	if err != nil {
		return fmt.Errorf("create web session: %w", db.classify(err))
	}
	return nil
}

// GetWebSession returns the session with id, unless it is unknown or expired.
func (db *DB) GetWebSession(ctx context.Context, id string) (domain.WebSession, error) {
	var s domain.WebSession
	var expires int64
	err := db.read(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT id, username, csrf, expires FROM web_sessions WHERE id = $1 AND expires > $2`,
			id, db.now().Unix()).Scan(&s.ID, &s.Username, &s.CSRF, &expires)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return s, domain.Errorf(domain.ENOTFOUND, "Session not found or expired.")
	}
	if err != nil {
		return s, fmt.Errorf("get web session: %w", db.classify(err))
	}
	s.Expires = time.Unix(expires, 0).UTC()
	return s, nil
}

// DeleteWebSession ends a sign-in; ending an unknown one is not an error.
func (db *DB) DeleteWebSession(ctx context.Context, id string) error {
	err := db.inTx(ctx, nil, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM web_sessions WHERE id = $1`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete web session: %w", db.classify(err))
	}
	return nil
}
