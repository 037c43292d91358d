package sqldb

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// eventBody is the JSON every webhook receives: the event's id (the same in every delivery and
// every retry, so receivers drop duplicates by it), its type, when it happened, the account it is
// about, and what happened.
type eventBody struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Created string `json:"created"`
	Account string `json:"account,omitempty"`
	Data    any    `json:"data"`
}

// recordEvent adds an event to the outbox, in the transaction of the change it reports.
func recordEvent(ctx context.Context, tx *sql.Tx, now time.Time, typ string, accountID int64, account string, data any) error {
	var raw [16]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails
	id := "evt_" + hex.EncodeToString(raw[:])
	body, err := json.Marshal(eventBody{ID: id, Type: typ, Created: now.UTC().Format(time.RFC3339), Account: account, Data: data})
	if err != nil {
		return fmt.Errorf("event %s: %w", typ, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_events (event_id, event, account_id, body, created_at)
		VALUES ($1, $2, $3, $4, $5)`, id, typ, accountID, string(body), now.Unix()); err != nil {
		return fmt.Errorf("record event %s: %w", typ, err)
	}
	return nil
}

// RouteWebhookEvents turns up to limit events of the outbox into deliveries: one to each operator
// route that lists the event's type, and one to the account's own webhook when the type is one
// customers receive and the account has a webhook. Each event is taken (deleted) and routed in one
// transaction, so concurrent nodes route it once. It returns how many events it routed.
func (db *DB) RouteWebhookEvents(ctx context.Context, routes []domain.WebhookRoute, limit int) (int, error) {
	type pending struct {
		id, accountID int64
		eventID, typ  string
		body          string
		created       int64
	}
	var events []pending
	err := db.read(ctx, func(tx *sql.Tx) error {
		events = events[:0]
		return queryEach(ctx, tx, `SELECT id, event_id, event, account_id, body, created_at FROM webhook_events
			ORDER BY id LIMIT $1`, []any{limit}, func(r *sql.Rows) error {
			var e pending
			if err := r.Scan(&e.id, &e.eventID, &e.typ, &e.accountID, &e.body, &e.created); err != nil {
				return err
			}
			events = append(events, e)
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("read webhook events: %w", err)
	}
	routed := 0
	for _, e := range events {
		var took int64
		err := db.inTx(ctx, nil, func(tx *sql.Tx) error {
			var err error
			took, err = rowsAffected(tx.ExecContext(ctx, `DELETE FROM webhook_events WHERE id = $1`, e.id))
			if err != nil || took == 0 {
				return err // took == 0: another node routed it
			}
			insert := func(operator bool, url, account string) error {
				_, err := tx.ExecContext(ctx, `INSERT INTO webhook_deliveries (event_id, event, account_id, account, operator,
					url, body, created_at, next_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)`,
					e.eventID, e.typ, e.accountID, account, operator, url, e.body, e.created)
				return err
			}
			var account string
			if e.accountID != 0 {
				err := tx.QueryRowContext(ctx, `SELECT username FROM accounts WHERE id = $1`, e.accountID).Scan(&account)
				if err != nil && !errors.Is(err, sql.ErrNoRows) {
					return err
				}
			}
			for _, r := range routes {
				if slices.Contains(r.Events, e.typ) {
					if err := insert(true, r.URL, account); err != nil {
						return err
					}
				}
			}
			if e.accountID == 0 || !domain.IsCustomerEvent(e.typ) {
				return nil
			}
			var url string
			err = tx.QueryRowContext(ctx, `SELECT url FROM account_webhooks WHERE account_id = $1`, e.accountID).Scan(&url)
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			} else if err != nil {
				return err
			}
			return insert(false, url, account)
		})
		if err != nil {
			return routed, fmt.Errorf("route webhook event %s: %w", e.eventID, err)
		}
		routed += int(took)
	}
	return routed, nil
}

const deliveryColumns = `id, event_id, event, account_id, account, operator, url, body, created_at, state, attempts,
	next_at, last_at, last_error`

func scanDelivery(r interface{ Scan(...any) error }, d *domain.WebhookDelivery, accountID *int64) error {
	var body string
	var created, next, last int64
	if err := r.Scan(&d.ID, &d.EventID, &d.Event, accountID, &d.Account, &d.Operator, &d.URL, &body, &created,
		&d.State, &d.Attempts, &next, &last, &d.LastError); err != nil {
		return err
	}
	d.Body = []byte(body)
	d.Created, d.NextAt, d.LastAt = time.Unix(created, 0), time.Unix(next, 0), timeOrZero(last)
	return nil
}

// ClaimWebhookDeliveries leases up to limit due deliveries to the caller until now+lease: no other
// claim returns them before the lease ends. A delivery to an account's webhook carries the
// account's current URL and secret; one whose account removed its webhook (or is gone) is given up
// here, and not returned.
func (db *DB) ClaimWebhookDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]domain.WebhookDelivery, error) {
	var due bool
	err := db.read(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM webhook_deliveries
			WHERE state = 'pending' AND next_at <= $1 AND lease_until <= $1)`, now.Unix()).Scan(&due)
		return err
	})
	if err != nil || !due {
		return nil, err // nothing due: no write transaction, which every node would take every second
	}
	var out []domain.WebhookDelivery
	err = db.inTx(ctx, nil, func(tx *sql.Tx) error {
		out = out[:0]
		type claimed struct {
			d         domain.WebhookDelivery
			accountID int64
		}
		var rows []claimed
		err := queryEach(ctx, tx, `UPDATE webhook_deliveries SET lease_until = $1
			WHERE id IN (SELECT id FROM webhook_deliveries WHERE state = 'pending' AND next_at <= $2 AND lease_until <= $2
				ORDER BY next_at, id LIMIT $3)
			AND state = 'pending' AND lease_until <= $2
			RETURNING `+deliveryColumns, []any{now.Add(lease).Unix(), now.Unix(), limit}, func(r *sql.Rows) error {
			var c claimed
			if err := scanDelivery(r, &c.d, &c.accountID); err != nil {
				return err
			}
			rows = append(rows, c)
			return nil
		})
		if err != nil {
			return err
		}
		for _, c := range rows {
			if !c.d.Operator {
				err := tx.QueryRowContext(ctx, `SELECT url, secret FROM account_webhooks WHERE account_id = $1`, c.accountID).
					Scan(&c.d.URL, &c.d.Secret)
				if errors.Is(err, sql.ErrNoRows) {
					if _, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET state = 'failed', lease_until = 0, last_at = $1,
						last_error = 'the account removed its webhook' WHERE id = $2`, now.Unix(), c.d.ID); err != nil {
						return err
					}
					continue
				} else if err != nil {
					return err
				}
			}
			out = append(out, c.d)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim webhook deliveries: %w", err)
	}
	slices.SortFunc(out, func(a, b domain.WebhookDelivery) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// FinishWebhookDelivery records an attempt: delivered, due again at a.Next, or given up when a.Next
// is zero. It also forgets finished deliveries older than domain.WebhookKept.
func (db *DB) FinishWebhookDelivery(ctx context.Context, id int64, a domain.WebhookAttempt) error {
	state, next := domain.DeliveryDelivered, a.At
	switch {
	case a.Error != "" && !a.Next.IsZero():
		state, next = domain.DeliveryPending, a.Next
	case a.Error != "":
		state = domain.DeliveryFailed
	}
	err := db.inTx(ctx, nil, func(tx *sql.Tx) error {
		outcome := cmp.Or(truncate(a.Error, 500), "delivered")
		line := strconv.FormatInt(a.At.Unix(), 10) + " " + strings.ReplaceAll(outcome, "\n", " ") + "\n"
		if _, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET state = $1, attempts = attempts + 1, next_at = $2,
			lease_until = 0, last_at = $3, last_error = $4, history = $5 || history WHERE id = $6`,
			state, next.Unix(), a.At.Unix(), truncate(a.Error, 500), line, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE state <> 'pending' AND created_at < $1`,
			a.At.Add(-domain.WebhookKept).Unix())
		return err
	})
	if err != nil {
		return fmt.Errorf("finish webhook delivery %d: %w", id, err)
	}
	return nil
}

// withHistory scans the history column after a delivery's columns.
type withHistory struct {
	r       *sql.Rows
	history *string
}

func (w withHistory) Scan(dest ...any) error { return w.r.Scan(append(dest, w.history)...) }

// parseHistory reads the history column's lines: "<unix time> <outcome>", "delivered" for success.
func parseHistory(h string) []domain.WebhookAttempt {
	out := []domain.WebhookAttempt{}
	for line := range strings.Lines(h) {
		ts, outcome, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			continue
		}
		a := domain.WebhookAttempt{At: time.Unix(sec, 0)}
		if outcome != "delivered" {
			a.Error = outcome
		}
		out = append(out, a)
	}
	return out
}

// truncate cuts s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// ListWebhookDeliveries returns the newest limit deliveries, newest first, for the operator.
func (db *DB) ListWebhookDeliveries(ctx context.Context, limit int) ([]domain.WebhookDelivery, error) {
	out := []domain.WebhookDelivery{}
	err := db.read(ctx, func(tx *sql.Tx) error {
		return queryEach(ctx, tx, `SELECT `+deliveryColumns+`, history FROM webhook_deliveries ORDER BY id DESC LIMIT $1`,
			[]any{limit}, func(r *sql.Rows) error {
				var d domain.WebhookDelivery
				var accountID int64
				var history string
				if err := scanDelivery(withHistory{r, &history}, &d, &accountID); err != nil {
					return err
				}
				d.History = parseHistory(history)
				out = append(out, d)
				return nil
			})
	})
	if err != nil {
		return nil, fmt.Errorf("list webhook deliveries: %w", err)
	}
	return out, nil
}

// SetAccountWebhook sets (or, with an empty URL, removes) the account's webhook. It does not change
// the Version: no node's view holds webhooks.
func (db *DB) SetAccountWebhook(ctx context.Context, username string, w domain.AccountWebhook) error {
	err := db.inTx(ctx, nil, func(tx *sql.Tx) error {
		ref, err := lookupAccount(ctx, tx, username)
		if err != nil {
			return err
		}
		if w.URL == "" {
			_, err := tx.ExecContext(ctx, `DELETE FROM account_webhooks WHERE account_id = $1`, ref.id)
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO account_webhooks (account_id, url, secret, updated_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (account_id) DO UPDATE SET url = excluded.url, secret = excluded.secret, updated_at = excluded.updated_at`,
			ref.id, w.URL, w.Secret, w.Updated.Unix())
		return err
	})
	if err != nil {
		return fmt.Errorf("set webhook of %q: %w", username, err)
	}
	return nil
}

// GetAccountWebhook returns the account's webhook; a zero AccountWebhook when it has none.
func (db *DB) GetAccountWebhook(ctx context.Context, username string) (domain.AccountWebhook, error) {
	var w domain.AccountWebhook
	err := db.read(ctx, func(tx *sql.Tx) error {
		ref, err := lookupAccount(ctx, tx, username)
		if err != nil {
			return err
		}
		var updated int64
		err = tx.QueryRowContext(ctx, `SELECT url, secret, updated_at FROM account_webhooks WHERE account_id = $1`, ref.id).
			Scan(&w.URL, &w.Secret, &updated)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		w.Updated = time.Unix(updated, 0)
		return err
	})
	if err != nil {
		return domain.AccountWebhook{}, fmt.Errorf("webhook of %q: %w", username, err)
	}
	return w, nil
}

// tokenExpiringData is what a token.expiring event says.
type tokenExpiringData struct {
	Login   string `json:"login"`
	TokenID int64  `json:"token_id"`
	Label   string `json:"label"`
	Prefix  string `json:"prefix"`
	Expires string `json:"expires"`
}

// NoteExpiringTokens records a token.expiring event for each active token that expires within
// domain.TokenExpiryNotice of now and has not had one, at most limit at a time; it returns how many.
func (db *DB) NoteExpiringTokens(ctx context.Context, now time.Time, limit int) (int, error) {
	noted := 0
	err := db.inTx(ctx, nil, func(tx *sql.Tx) error {
		noted = 0
		type expiring struct {
			id, accountID         int64
			account, login, label string
			prefix                string
			expires               int64
		}
		var ts []expiring
		err := queryEach(ctx, tx, `SELECT t.id, t.account_id, a.username, COALESCE(s.username, a.username), t.label, t.prefix, t.expires_at
			FROM api_tokens t JOIN accounts a ON a.id = t.account_id LEFT JOIN sub_accounts s ON s.id = t.sub_id
			WHERE NOT t.expiry_noted AND t.active AND t.expires_at > $1 AND t.expires_at <= $2 ORDER BY t.id LIMIT $3`,
			[]any{now.Unix(), now.Add(domain.TokenExpiryNotice).Unix(), limit}, func(r *sql.Rows) error {
				var t expiring
				if err := r.Scan(&t.id, &t.accountID, &t.account, &t.login, &t.label, &t.prefix, &t.expires); err != nil {
					return err
				}
				ts = append(ts, t)
				return nil
			})
		if err != nil {
			return err
		}
		for _, t := range ts {
			n, err := rowsAffected(tx.ExecContext(ctx, `UPDATE api_tokens SET expiry_noted = TRUE WHERE id = $1 AND NOT expiry_noted`, t.id))
			if err != nil {
				return err
			}
			if n == 0 {
				continue // another node noted it
			}
			data := tokenExpiringData{Login: t.login, TokenID: t.id, Label: t.label, Prefix: t.prefix,
				Expires: time.Unix(t.expires, 0).UTC().Format(time.RFC3339)}
			if err := recordEvent(ctx, tx, now, domain.EventTokenExpiring, t.accountID, t.account, data); err != nil {
				return err
			}
			noted++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("note expiring tokens: %w", err)
	}
	return noted, nil
}
