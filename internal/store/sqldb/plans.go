package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/exitmesh/exitmesh/internal/domain"
)

const planColumns = `p.name, p.max_proxies, p.max_subs, p.max_ips, p.max_hostnames, p.monthly_bandwidth, p.max_tokens,
	p.rate, p.speed, p.connections`

func scanPlan(row interface{ Scan(...any) error }, p *domain.Plan) error {
	return row.Scan(planDest(p)...)
}

// planDest is where planColumns scan to.
func planDest(p *domain.Plan) []any {
	return []any{&p.Name, &p.MaxProxies, &p.MaxSubs, &p.MaxIPs, &p.MaxHostnames, &p.MonthlyBandwidth, &p.MaxTokens,
		&p.Rate, &p.Speed, &p.Connections}
}

func checkPlan(p domain.Plan) error {
	if err := domain.ValidateName("Plan", p.Name); err != nil {
		return err
	}
	if p.MaxProxies < 0 || p.MaxSubs < 0 || p.MaxIPs < 0 || p.MaxHostnames < 0 || p.MonthlyBandwidth < 0 || p.MaxTokens < 0 ||
		p.Rate < 0 || p.Speed < 0 || p.Connections < 0 {
		return domain.Errorf(domain.EINVALID, "Plan limits may not be negative.")
	}
	return nil
}

func planArgs(p domain.Plan) []any {
	return []any{p.Name, p.MaxProxies, p.MaxSubs, p.MaxIPs, p.MaxHostnames, p.MonthlyBandwidth, p.MaxTokens,
		p.Rate, p.Speed, p.Connections}
}

// CreatePlan adds a plan; a plan of that name must not exist.
func (db *DB) CreatePlan(ctx context.Context, p domain.Plan) error {
	if err := checkPlan(p); err != nil {
		return fmt.Errorf("create plan: %w", err)
	}
	err := db.write(ctx, func(tx *sql.Tx, feed *changeLog) error {
		feed.plans()
		_, err := tx.ExecContext(ctx, `INSERT INTO plans (name, max_proxies, max_subs, max_ips, max_hostnames, monthly_bandwidth, max_tokens,
			rate, speed, connections) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, planArgs(p)...)
		if db.dialect.IsUniqueViolation(err) {
			return domain.Errorf(domain.ECONFLICT, "Plan %q already exists.", p.Name)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create plan %q: %w", p.Name, err)
	}
	return nil
}

// UpdatePlan replaces the limits of an existing plan.
func (db *DB) UpdatePlan(ctx context.Context, p domain.Plan) error {
	if err := checkPlan(p); err != nil {
		return fmt.Errorf("update plan: %w", err)
	}
	err := db.write(ctx, func(tx *sql.Tx, feed *changeLog) error {
		feed.plans()
		n, err := rowsAffected(tx.ExecContext(ctx, `UPDATE plans SET max_proxies = $2, max_subs = $3, max_ips = $4,
			max_hostnames = $5, monthly_bandwidth = $6, max_tokens = $7, rate = $8, speed = $9, connections = $10
			WHERE name = $1`, planArgs(p)...))
		if err == nil && n == 0 {
			return errPlanNotFound(p.Name)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("update plan %q: %w", p.Name, err)
	}
	return nil
}

// PutPlan creates the plan or replaces its limits. A plan that is already exactly p is left alone,
// without a version change, so declaring plans at every start costs the other nodes nothing.
func (db *DB) PutPlan(ctx context.Context, p domain.Plan) error {
	if err := checkPlan(p); err != nil {
		return fmt.Errorf("put plan: %w", err)
	}
	err := db.write(ctx, func(tx *sql.Tx, feed *changeLog) error {
		feed.plans()
		n, err := rowsAffected(tx.ExecContext(ctx, `INSERT INTO plans (name, max_proxies, max_subs, max_ips, max_hostnames, monthly_bandwidth, max_tokens,
				rate, speed, connections)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (name) DO UPDATE SET max_proxies = excluded.max_proxies, max_subs = excluded.max_subs,
				max_ips = excluded.max_ips, max_hostnames = excluded.max_hostnames, monthly_bandwidth = excluded.monthly_bandwidth,
				max_tokens = excluded.max_tokens, rate = excluded.rate, speed = excluded.speed, connections = excluded.connections
			WHERE plans.max_proxies <> excluded.max_proxies OR plans.max_subs <> excluded.max_subs
				OR plans.max_ips <> excluded.max_ips OR plans.max_hostnames <> excluded.max_hostnames
				OR plans.monthly_bandwidth <> excluded.monthly_bandwidth OR plans.max_tokens <> excluded.max_tokens
				OR plans.rate <> excluded.rate OR plans.speed <> excluded.speed OR plans.connections <> excluded.connections`,
			planArgs(p)...))
		if err == nil && n == 0 {
			return errUnchanged
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("put plan %q: %w", p.Name, err)
	}
	return nil
}

// GetPlan returns the plan called name.
func (db *DB) GetPlan(ctx context.Context, name string) (domain.Plan, error) {
	var p domain.Plan
	err := db.read(ctx, func(tx *sql.Tx) error {
		var err error
		_, p, err = lookupPlan(ctx, tx, name)
		if errors.Is(err, sql.ErrNoRows) {
			return errPlanNotFound(name)
		}
		return err
	})
	if err != nil {
		return domain.Plan{}, fmt.Errorf("get plan %q: %w", name, err)
	}
	return p, nil
}

// ListPlans returns every plan, sorted by name.
func (db *DB) ListPlans(ctx context.Context) ([]domain.Plan, error) {
	var ps []domain.Plan
	err := db.read(ctx, func(tx *sql.Tx) error {
		var err error
		ps, err = listPlans(ctx, tx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list plans: %w", err)
	}
	return ps, nil
}

func errPlanNotFound(name string) error {
	return domain.Errorf(domain.ENOTFOUND, "Plan %q not found.", name)
}

// lookupPlan returns the plan's id and limits, or sql.ErrNoRows.
func lookupPlan(ctx context.Context, tx *sql.Tx, name string) (int64, domain.Plan, error) {
	var id int64
	var p domain.Plan
	row := tx.QueryRowContext(ctx, `SELECT p.id, `+planColumns+` FROM plans p WHERE p.name = $1`, name)
	err := row.Scan(append([]any{&id}, planDest(&p)...)...)
	return id, p, err
}

func listPlans(ctx context.Context, tx *sql.Tx) ([]domain.Plan, error) {
	ps := []domain.Plan{}
	err := queryEach(ctx, tx, `SELECT `+planColumns+` FROM plans p`, nil, func(r *sql.Rows) error {
		var p domain.Plan
		err := scanPlan(r, &p)
		ps = append(ps, p)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read plans: %w", err)
	}
	slices.SortFunc(ps, func(a, b domain.Plan) int { return strings.Compare(a.Name, b.Name) })
	return ps, nil
}
