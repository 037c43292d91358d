// Package operator is the operator's service: the one place of the rules by which an operator
// manages plans, accounts and bans and reads the network's proxy servers, exits and usage.
// `exitmesh admin` and the dashboard's operator pages only decode their input (flags, a form),
// call a Service method, and print or render its answer, so both accept, refuse and describe the
// same things in the same words.
//
// Refusals are *domain.Error values. An input the service cannot read at all (an IP address that
// is not one, a plan not chosen) is a field error (domain.FieldError, keyed by the input's name):
// the command line's mistake rather than the store's refusal. A value it can read but a rule
// refuses is a plain EINVALID, ENOTFOUND, ECONFLICT or ELIMIT, in the store's sentence.
package operator

import (
	"context"
	"net/netip"
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/bans"
	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/domain"
)

// Store is what the service needs of the store; every domain.Store has it.
type Store interface {
	CreatePlan(ctx context.Context, p domain.Plan) error
	UpdatePlan(ctx context.Context, p domain.Plan) error
	GetPlan(ctx context.Context, name string) (domain.Plan, error)
	ListPlans(ctx context.Context) ([]domain.Plan, error)
	CountAccountsByPlan(ctx context.Context) (map[string]int, error)

	CreateAccount(ctx context.Context, a domain.NewAccount) (domain.Account, error)
	GetAccount(ctx context.Context, username string) (domain.Account, error)
	ListAccounts(ctx context.Context, q domain.AccountQuery) (domain.AccountPage, error)
	UpdateAccount(ctx context.Context, username string, u domain.AccountUpdate) (domain.Account, error)
	ListSubAccounts(ctx context.Context, account string) ([]domain.SubAccount, error)

	ListProxyServers(ctx context.Context) ([]domain.ProxyServer, error)
	ListExitStatuses(ctx context.Context) ([]domain.ExitStatus, error)
	Usage(ctx context.Context, f domain.UsageFilter) ([]domain.UsageRow, error)
	MonthBandwidth(ctx context.Context, month, batch string) (domain.MonthBandwidth, error)
	WhoUsedExit(ctx context.Context, exit netip.Addr, from, to time.Time) ([]domain.ExitUse, error)
	ListWebhookDeliveries(ctx context.Context, limit int) ([]domain.WebhookDelivery, error)

	ListBansPage(ctx context.Context, q domain.BanQuery) (domain.BanPage, error)
	LiftBan(ctx context.Context, ip netip.Addr) error
}

var _ Store = domain.Store(nil)

// Config is what the service needs. Zero values take the defaults noted.
type Config struct {
	Store Store
	// Changed is called after every change that succeeded, before the method returns, so that the
	// local node's proxies honour it by the time the operator reads the answer (other nodes follow
	// the store within their sync interval); nil: nothing.
	Changed func(ctx context.Context)
	// Bans is the local node's ban tracker, which forgets a lifted ban at once; nil: none.
	Bans *bans.Tracker
	Now  func() time.Time // nil: time.Now
}

// Service carries out the operator's commands. It is safe for concurrent use.
type Service struct {
	cfg Config
}

// New returns a service on cfg.Store.
func New(cfg Config) *Service {
	if cfg.Changed == nil {
		cfg.Changed = func(context.Context) {}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg}
}

// passwordHash checks pw against the password rules and returns its argon2id hash.
func passwordHash(pw string) (string, error) {
	if err := domain.ValidatePassword(pw); err != nil {
		return "", err
	}
	return auth.HashPassword(pw)
}

// accountStatus is "disabled", "unconfirmed" or "active".
func accountStatus(a domain.Account) string {
	switch {
	case a.Disabled:
		return "disabled"
	case !a.Confirmed:
		return "unconfirmed"
	}
	return "active"
}

// BandwidthUsed describes used bytes against a plan's monthly bandwidth: "1.2 GB of 10 GB".
func BandwidthUsed(used, limit int64) string {
	s := config.Size(used).Human()
	switch {
	case limit == 0:
		return s + " (unlimited plan)"
	case used >= limit:
		return s + " of " + config.Size(limit).Human() + " (spent: the proxies answer 509)"
	}
	return s + " of " + config.Size(limit).Human()
}

// exitHealth is "up" or "DOWN", with how long it has been so when the exit ever changed: "DOWN 12s".
func exitHealth(e domain.ExitStatus, now time.Time) string {
	health := "up"
	if !e.Healthy {
		health = "DOWN"
	}
	if !e.Since.IsZero() {
		health += " " + now.Sub(e.Since).Round(time.Second).String()
	}
	return health
}

// exitLatency is the last check's latency, or "-" before any check succeeded.
func exitLatency(e domain.ExitStatus) string {
	if e.Latency <= 0 {
		return "-"
	}
	return e.Latency.Round(10 * time.Microsecond).String()
}

// reportAge is how long ago the exit's node reported it: "3s ago". A node that stopped reporting
// shows as an ever older report.
func reportAge(e domain.ExitStatus, now time.Time) string {
	return now.Sub(e.Updated).Round(time.Second).String() + " ago"
}
