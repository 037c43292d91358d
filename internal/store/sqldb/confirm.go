package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/exitmesh/exitmesh/internal/domain"
)

var (
	errLinkNotFound = domain.Errorf(domain.ENOTFOUND, "This confirmation link is not valid.")
	errLinkUsed     = domain.Errorf(domain.ECONFLICT, "This confirmation link has already been used.")
	errLinkExpired  = domain.Errorf(domain.EINVALID, "This confirmation link has expired.")
)

// CreateConfirmToken records an email confirmation link for t.Username and forgets the links that
// expired more than domain.ConfirmTokenKept ago.
func (db *DB) CreateConfirmToken(ctx context.Context, t domain.ConfirmToken) error {
	if t.ID == "" || t.Username == "" || t.Expires.IsZero() {
		return domain.Errorf(domain.EINVALID, "A confirmation link needs an id, an account and an expiry.")
	}
	err := db.inTx(ctx, nil, func(tx *sql.Tx) error {
		forget := db.now().Add(-domain.ConfirmTokenKept).Unix()
		if _, err := tx.ExecContext(ctx, `DELETE FROM confirm_tokens WHERE expires <= $1`, forget); err != nil {
			return err
		}
		var account int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM accounts WHERE username = $1`, t.Username).Scan(&account)
		if errors.Is(err, sql.ErrNoRows) {
			return errAccountNotFound(t.Username)
		} else if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO confirm_tokens (id, account_id, expires) VALUES ($1, $2, $3)`,
			t.ID, account, t.Expires.Unix())
		return err
	})
	if err != nil {
		return fmt.Errorf("create confirmation link for %q: %w", t.Username, db.classify(err))
	}
	return nil
}

// ConfirmAccount uses the confirmation link id: it marks the link used and its account confirmed,
// and returns the account. Concurrent uses of one link serialize on the version row, so exactly one
// succeeds.
func (db *DB) ConfirmAccount(ctx context.Context, id string) (domain.Account, error) {
	var acc domain.Account
	err := db.write(ctx, func(tx *sql.Tx, feed *changeLog) error {
		var account, expires, used int64
		now := db.now().Unix()
		err := tx.QueryRowContext(ctx, `SELECT account_id, expires, used FROM confirm_tokens WHERE id = $1`, id).
			Scan(&account, &expires, &used)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return errLinkNotFound
		case err != nil:
			return err
		case used != 0:
			return errLinkUsed
		case expires <= now:
			return errLinkExpired
		}
		if _, err := tx.ExecContext(ctx, `UPDATE confirm_tokens SET used = $1 WHERE id = $2`, now, id); err != nil {
			return err
		}
		confirmed := true
		feed.account(account)
		if err := updateAccount(ctx, tx, account, domain.AccountUpdate{Confirmed: &confirmed}, db.now()); err != nil {
			return err
		}
		acc, err = loadAccount(ctx, tx, account)
		return err
	})
	if err != nil {
		return domain.Account{}, fmt.Errorf("confirm account: %w", err)
	}
	return acc, nil
}
