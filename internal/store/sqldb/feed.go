package sqldb

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// The change feed. A write notes what it changed (changeLog) and write records the entries under the
// version the write set, in the same transaction: the version row is locked until commit, so entries
// become visible in sequence order and a node that has read up to n has missed nothing before n.

// changeLog is what one write changed, noted by the write's function.
type changeLog struct {
	seq     int64
	entries []domain.Change
}

// account notes a change to the account id or to one of its sub-accounts.
func (l *changeLog) account(id int64) { l.note(domain.Change{Kind: domain.ChangeAccount, Ref: id}) }

// plans notes a change to the plans' limits.
func (l *changeLog) plans() { l.note(domain.Change{Kind: domain.ChangePlans}) }

func (l *changeLog) note(c domain.Change) {
	c.Seq = l.seq
	if !slices.Contains(l.entries, c) {
		l.entries = append(l.entries, c)
	}
}

// recordChanges writes the feed entries of a write, and wakes the listening nodes when there are any.
func (db *DB) recordChanges(ctx context.Context, tx *sql.Tx, l *changeLog) error {
	if len(l.entries) == 0 {
		return nil
	}
	at := db.now().Unix()
	for _, c := range l.entries {
		if _, err := tx.ExecContext(ctx, `INSERT INTO changes (seq, kind, ref, at) VALUES ($1, $2, $3, $4)`,
			c.Seq, string(c.Kind), c.Ref, at); err != nil {
			return fmt.Errorf("record change: %w", err)
		}
	}
	if db.dialect.Notify != "" {
		if _, err := tx.ExecContext(ctx, db.dialect.Notify, strconv.FormatInt(l.seq, 10)); err != nil {
			return fmt.Errorf("notify change: %w", err)
		}
	}
	return nil
}

// maxDeltaEntries bounds the entries one delta reads (and the accounts it loads), whatever the
// number of versions they span.
const maxDeltaEntries = 10_000

// ChangesSince returns what changed after version after, up to at most limit versions further, with
// the current state of every account it names, all read in one snapshot. Gap is set, and nothing
// else, when entries after after were pruned: the caller must load in full.
func (db *DB) ChangesSince(ctx context.Context, after int64, limit int) (domain.Delta, error) {
	d := domain.Delta{From: after}
	err := db.read(ctx, func(tx *sql.Tx) error {
		var head, pruned int64
		err := tx.QueryRowContext(ctx, `SELECT
			(SELECT value FROM meta WHERE key = 'version'), (SELECT value FROM meta WHERE key = 'changes_pruned')`).
			Scan(&head, &pruned)
		if err != nil {
			return fmt.Errorf("read feed position: %w", err)
		}
		d.Head = head
		if after < pruned || after > head {
			d.Gap = true
			return nil
		}
		d.To = min(head, after+int64(max(limit, 1)))
		if d.To == after {
			return nil
		}
		// A version may hold many entries (ImportAccounts): a delta stops before the version of its
		// maxDeltaEntries-th entry, but always holds at least one whole version.
		if d.Changes, err = readChanges(ctx, tx, after, d.To, maxDeltaEntries+1); err != nil {
			return err
		}
		if len(d.Changes) > maxDeltaEntries {
			cut := d.Changes[maxDeltaEntries].Seq
			if d.To = max(cut-1, after+1); d.To == cut { // one version beyond the cap: read it whole
				if d.Changes, err = readChanges(ctx, tx, after, d.To, 0); err != nil {
					return err
				}
			}
			d.Changes = slices.DeleteFunc(d.Changes, func(c domain.Change) bool { return c.Seq > d.To })
		}
		return db.loadChanged(ctx, tx, &d)
	})
	if err != nil {
		return domain.Delta{}, fmt.Errorf("changes since %d: %w", after, err)
	}
	return d, nil
}

// loadChanged reads the current state of what d's entries name: the accounts with their
// sub-accounts and API tokens, and the plans when any changed.
func (db *DB) loadChanged(ctx context.Context, tx *sql.Tx, d *domain.Delta) error {
	var ids []int64
	for _, c := range d.Changes {
		switch c.Kind {
		case domain.ChangeAccount:
			if !slices.Contains(ids, c.Ref) {
				ids = append(ids, c.Ref)
			}
		case domain.ChangePlans:
			if d.Plans == nil {
				var err error
				if d.Plans, err = listPlans(ctx, tx); err != nil {
					return err
				}
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	cat, err := readCatalog(ctx, tx)
	if err != nil {
		return err
	}
	for chunk := range slices.Chunk(ids, 500) { // within every backend's limit of parameters
		in, args := inList(chunk)
		as, err := loadAccounts(ctx, tx, cat, "a.id IN "+in, args...)
		if err != nil {
			return err
		}
		subs, err := loadSubs(ctx, tx, cat, "s.account_id IN "+in, args...)
		if err != nil {
			return err
		}
		tokens, err := loadTokens(ctx, tx, "a.id IN "+in, args...)
		if err != nil {
			return err
		}
		d.Accounts = append(d.Accounts, as...)
		d.Subs = append(d.Subs, subs...)
		d.Tokens = append(d.Tokens, tokens...)
	}
	return nil
}

// readChanges reads the entries of the versions after after up to to, in order, at most limit of
// them (0: all).
func readChanges(ctx context.Context, tx *sql.Tx, after, to int64, limit int) ([]domain.Change, error) {
	query := `SELECT seq, kind, ref FROM changes WHERE seq > $1 AND seq <= $2 ORDER BY seq`
	if limit > 0 {
		query += " LIMIT " + strconv.Itoa(limit)
	}
	var out []domain.Change
	err := queryEach(ctx, tx, query, []any{after, to}, func(r *sql.Rows) error {
		var c domain.Change
		var kind string
		err := r.Scan(&c.Seq, &kind, &c.Ref)
		c.Kind = domain.ChangeKind(kind)
		out = append(out, c)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read changes: %w", err)
	}
	return out, nil
}

// inList returns "($1, $2, …)" and its arguments.
func inList(ids []int64) (string, []any) {
	var b strings.Builder
	args := make([]any, len(ids))
	b.WriteByte('(')
	for i, id := range ids {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(i+1))
		args[i] = id
	}
	b.WriteByte(')')
	return b.String(), args
}

// PruneChanges forgets the feed entries written before before. A node whose view is older than the
// last one forgotten loads in full (ChangesSince reports a Gap).
func (db *DB) PruneChanges(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := db.inTx(ctx, nil, func(tx *sql.Tx) error {
		var upTo sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MAX(seq) FROM changes WHERE at < $1`, before.Unix()).Scan(&upTo); err != nil {
			return err
		}
		if !upTo.Valid {
			return nil
		}
		var err error
		if n, err = rowsAffected(tx.ExecContext(ctx, `DELETE FROM changes WHERE seq <= $1`, upTo.Int64)); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE meta SET value = $1 WHERE key = 'changes_pruned' AND value < $1`, upTo.Int64)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune changes: %w", err)
	}
	return n, nil
}
