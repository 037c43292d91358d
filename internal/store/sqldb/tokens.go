package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

var errTokenNotFound = domain.Errorf(domain.ENOTFOUND, "Token not found.")

func errTokenLimit(p domain.Plan) error {
	return errLimit(p, p.MaxTokens, "active API token", "active API tokens")
}

// tokenColumns are a token's columns with its login's username, from api_tokens t joined to its
// account a and (left) its sub-account s.
const tokenColumns = `t.id, t.account_id, COALESCE(t.sub_id, 0), COALESCE(s.username, a.username), t.label, t.prefix,
	t.hash, t.created_at, t.expires_at, t.last_used_at, t.active`

const tokenFrom = ` FROM api_tokens t JOIN accounts a ON a.id = t.account_id LEFT JOIN sub_accounts s ON s.id = t.sub_id`

func scanToken(row interface{ Scan(...any) error }) (domain.Token, error) {
	var t domain.Token
	var created, expires, used int64
	err := row.Scan(&t.ID, &t.AccountID, &t.SubID, &t.Login, &t.Label, &t.Prefix, &t.Hash, &created, &expires, &used, &t.Active)
	t.Created, t.Expires, t.LastUsed = unixTime(created), unixTime(expires), unixTime(used)
	return t, err
}

// CreateToken records a new active token of the account or of its sub-account t.Sub, within the
// plan's limit on active tokens.
func (db *DB) CreateToken(ctx context.Context, account string, t domain.NewToken) (domain.Token, error) {
	if t.Hash == "" || t.Prefix == "" || len(t.Label) > domain.MaxTokenLabel {
		return domain.Token{}, domain.Errorf(domain.EINVALID, "A token needs a hash, a prefix and a label of at most %d characters.", domain.MaxTokenLabel)
	}
	var out domain.Token
	err := db.writeAccount(ctx, account, func(tx *sql.Tx, ref accountRef) error {
		var sub any // NULL: the account's own
		if t.Sub != "" {
			_, subID, err := lookupSub(ctx, tx, account, t.Sub)
			if err != nil {
				return err
			}
			sub = subID
		}
		if err := checkTokenRoom(ctx, tx, ref); err != nil {
			return err
		}
		var id int64
		err := tx.QueryRowContext(ctx, `INSERT INTO api_tokens (account_id, sub_id, label, prefix, hash, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
			ref.id, sub, t.Label, t.Prefix, t.Hash, db.now().Unix(), unixOrZero(t.Expires)).Scan(&id)
		if err != nil {
			return err
		}
		out, err = getToken(ctx, tx, ref.id, id)
		return err
	})
	if err != nil {
		return domain.Token{}, fmt.Errorf("create token for %q: %w", account, err)
	}
	return out, nil
}

// checkTokenRoom refuses one more active token beyond the plan's limit.
func checkTokenRoom(ctx context.Context, tx *sql.Tx, ref accountRef) error {
	n, err := count(ctx, tx, `SELECT COUNT(*) FROM api_tokens WHERE account_id = $1 AND active`, ref.id)
	if err != nil {
		return err
	}
	if n >= ref.plan.MaxTokens {
		return errTokenLimit(ref.plan)
	}
	return nil
}

// trimTokens deactivates the account's newest active tokens beyond limit.
func trimTokens(ctx context.Context, tx *sql.Tx, accountID int64, limit int) error {
	n, err := count(ctx, tx, `SELECT COUNT(*) FROM api_tokens WHERE account_id = $1 AND active`, accountID)
	if err != nil || n <= limit {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE api_tokens SET active = FALSE WHERE id IN (
		SELECT id FROM api_tokens WHERE account_id = $1 AND active ORDER BY id DESC LIMIT $2)`, accountID, n-limit)
	return err
}

// ListTokens returns the tokens of the account (sub "") or of its sub-account sub, oldest first.
func (db *DB) ListTokens(ctx context.Context, account, sub string) ([]domain.Token, error) {
	out := []domain.Token{}
	err := db.read(ctx, func(tx *sql.Tx) error {
		ref, err := lookupAccount(ctx, tx, account)
		if err != nil {
			return err
		}
		where, args := ` WHERE t.account_id = $1 AND t.sub_id IS NULL`, []any{ref.id}
		if sub != "" {
			_, subID, err := lookupSub(ctx, tx, account, sub)
			if err != nil {
				return err
			}
			where, args = ` WHERE t.account_id = $1 AND t.sub_id = $2`, []any{ref.id, subID}
		}
		return queryEach(ctx, tx, `SELECT `+tokenColumns+tokenFrom+where+` ORDER BY t.id`, args, func(r *sql.Rows) error {
			t, err := scanToken(r)
			out = append(out, t)
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list tokens of %q: %w", account, err)
	}
	return out, nil
}

// GetToken returns the token id of the account or one of its sub-accounts.
func (db *DB) GetToken(ctx context.Context, account string, id int64) (domain.Token, error) {
	var out domain.Token
	err := db.read(ctx, func(tx *sql.Tx) error {
		ref, err := lookupAccount(ctx, tx, account)
		if err != nil {
			return err
		}
		out, err = getToken(ctx, tx, ref.id, id)
		return err
	})
	if err != nil {
		return domain.Token{}, fmt.Errorf("get token %d of %q: %w", id, account, err)
	}
	return out, nil
}

func getToken(ctx context.Context, tx *sql.Tx, accountID, id int64) (domain.Token, error) {
	t, err := scanToken(tx.QueryRowContext(ctx, `SELECT `+tokenColumns+tokenFrom+` WHERE t.id = $1 AND t.account_id = $2`, id, accountID))
	if errors.Is(err, sql.ErrNoRows) {
		return t, errTokenNotFound
	}
	return t, err
}

// SetTokenActive activates (within the plan's limit) or deactivates the token id of the account.
func (db *DB) SetTokenActive(ctx context.Context, account string, id int64, active bool) (domain.Token, error) {
	var out domain.Token
	err := db.writeAccount(ctx, account, func(tx *sql.Tx, ref accountRef) error {
		t, err := getToken(ctx, tx, ref.id, id)
		if err != nil {
			return err
		}
		if t.Active == active {
			out = t
			return errUnchanged
		}
		if active {
			if err := checkTokenRoom(ctx, tx, ref); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE api_tokens SET active = $1 WHERE id = $2`, active, id); err != nil {
			return err
		}
		t.Active = active
		out = t
		return nil
	})
	if err != nil {
		return domain.Token{}, fmt.Errorf("set token %d of %q active=%t: %w", id, account, active, err)
	}
	return out, nil
}

// DeleteToken deletes the token id of the account.
func (db *DB) DeleteToken(ctx context.Context, account string, id int64) error {
	err := db.writeAccount(ctx, account, func(tx *sql.Tx, ref accountRef) error {
		n, err := rowsAffected(tx.ExecContext(ctx, `DELETE FROM api_tokens WHERE id = $1 AND account_id = $2`, id, ref.id))
		if err == nil && n == 0 {
			return errTokenNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("delete token %d of %q: %w", id, account, err)
	}
	return nil
}

// FindToken returns the token whose hash is hash.
func (db *DB) FindToken(ctx context.Context, hash string) (domain.Token, error) {
	var out domain.Token
	err := db.read(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = scanToken(tx.QueryRowContext(ctx, `SELECT `+tokenColumns+tokenFrom+` WHERE t.hash = $1`, hash))
		if errors.Is(err, sql.ErrNoRows) {
			return errTokenNotFound
		}
		return err
	})
	if err != nil {
		return domain.Token{}, fmt.Errorf("find token: %w", err)
	}
	return out, nil
}

// TouchTokens records when tokens were last used; a time older than the one recorded is ignored.
func (db *DB) TouchTokens(ctx context.Context, used map[int64]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	err := db.inTx(ctx, nil, func(tx *sql.Tx) error {
		for id, at := range used {
			if _, err := tx.ExecContext(ctx, `UPDATE api_tokens SET last_used_at = $1 WHERE id = $2 AND last_used_at < $1`,
				at.Unix(), id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record token use: %w", err)
	}
	return nil
}

// loadTokens returns the tokens of the accounts matching where (on the alias a), in id order.
func loadTokens(ctx context.Context, tx *sql.Tx, where string, args ...any) ([]domain.Token, error) {
	var out []domain.Token
	err := queryEach(ctx, tx, `SELECT `+tokenColumns+tokenFrom+whereClause(where)+` ORDER BY t.id`, args, func(r *sql.Rows) error {
		t, err := scanToken(r)
		out = append(out, t)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read tokens: %w", err)
	}
	return out, nil
}
