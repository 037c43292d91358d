// Package account is the account service: the rules of the account API (API.md) in one place. The
// API decodes a request, calls the service and encodes what it returns; the dashboard's customer
// pages call the same methods with the same values. Every refusal is a *domain.Error whose message
// is written for the customer, so both say the same thing about the same mistake.
package account

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"sync"
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/hostnames"
)

// Store is what the account service needs of the store.
type Store interface {
	GetLogin(ctx context.Context, username string) (domain.Login, error)
	GetAccount(ctx context.Context, username string) (domain.Account, error)
	GetPlan(ctx context.Context, name string) (domain.Plan, error)
	UpdateAccount(ctx context.Context, username string, u domain.AccountUpdate) (domain.Account, error)
	AccountBandwidth(ctx context.Context, account string, now time.Time) (domain.AccountBandwidth, error)
	ListProxyServers(ctx context.Context) ([]domain.ProxyServer, error)

	AddIP(ctx context.Context, username string, ip netip.Addr) error
	RemoveIP(ctx context.Context, username string, ip netip.Addr) error
	AddHostname(ctx context.Context, username, hostname string, ip netip.Addr) error
	RemoveHostname(ctx context.Context, username, hostname string) error
	AuthorizeProxy(ctx context.Context, username, proxy string) error
	RevokeProxy(ctx context.Context, username, proxy string) error

	CreateSubAccount(ctx context.Context, account string, s domain.NewSubAccount) (domain.SubAccount, error)
	ListSubAccounts(ctx context.Context, account string) ([]domain.SubAccount, error)
	UpdateSubAccount(ctx context.Context, account, sub string, u domain.SubAccountUpdate) (domain.SubAccount, error)
	DeleteSubAccount(ctx context.Context, account, sub string) error

	Usage(ctx context.Context, f domain.UsageFilter) ([]domain.UsageRow, error)

	CreateToken(ctx context.Context, account string, t domain.NewToken) (domain.Token, error)
	ListTokens(ctx context.Context, account, sub string) ([]domain.Token, error)
	GetToken(ctx context.Context, account string, id int64) (domain.Token, error)
	SetTokenActive(ctx context.Context, account string, id int64, active bool) (domain.Token, error)
	DeleteToken(ctx context.Context, account string, id int64) error
	FindToken(ctx context.Context, hash string) (domain.Token, error)

	SetAccountWebhook(ctx context.Context, username string, w domain.AccountWebhook) error
	GetAccountWebhook(ctx context.Context, username string) (domain.AccountWebhook, error)
}

// Config is what the service needs. Zero values take the defaults noted.
type Config struct {
	Store  Store
	Lookup hostnames.LookupFunc // resolves hostnames being added; nil: the system resolver
	// Changed is called after every change the service makes, before it returns, so that the local
	// node's proxies honour the change by the time the caller answers (other nodes follow the
	// store's change feed). nil: nothing.
	Changed func(ctx context.Context)

	// CheckWebhookURL vets a webhook URL an account sets (webhooks.CheckURL under the node's
	// egress policy), returning it as it will be used or a message for the customer. Nil: every
	// webhook URL is refused.
	CheckWebhookURL func(ctx context.Context, rawURL string) (string, error)

	// TokenUses learns when API tokens authenticate, for their last_used; nil: not recorded.
	TokenUses *auth.TokenUses

	UnconfirmedAllowance int           // changes an unconfirmed account may make; default config's
	UnconfirmedBlock     time.Duration // then its access is blocked this long; default config's
	Now                  func() time.Time
}

// Service applies the account rules. It is safe for concurrent use.
type Service struct {
	cfg Config

	mu          sync.Mutex // guards unconfirmed
	unconfirmed map[int64]*allowance
}

// allowance counts an unconfirmed account's API requests.
type allowance struct {
	used         int
	blockedUntil time.Time
}

// New returns the service.
func New(cfg Config) *Service {
	if cfg.Lookup == nil {
		cfg.Lookup = hostnames.NewLookup("")
	}
	if cfg.Changed == nil {
		cfg.Changed = func(context.Context) {}
	}
	if cfg.UnconfirmedAllowance <= 0 {
		cfg.UnconfirmedAllowance = config.Default().API.UnconfirmedAllowance
	}
	if cfg.UnconfirmedBlock <= 0 {
		cfg.UnconfirmedBlock = config.Default().API.UnconfirmedBlock.D()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CheckWebhookURL == nil {
		cfg.CheckWebhookURL = func(context.Context, string) (string, error) {
			return "", domain.FieldError("url", "This network does not send webhooks.")
		}
	}
	return &Service{cfg: cfg, unconfirmed: make(map[int64]*allowance)}
}

// Caller is an account acting on itself or its sub-accounts, as Open found it: the methods that take
// one check what they change against it.
type Caller struct {
	Account domain.Account
	Plan    domain.Plan
}

// PlanErrorMessage is the contract's sentence when an account's plan cannot be read (API.md §4 row 9).
const PlanErrorMessage = "Plan error: Unable to lookup subscription plan. Please try again in a few minutes."

// ErrPlan is the error of an account whose plan cannot be read (the store is unreachable, the plan
// is missing): the API answers it 503 with PlanErrorMessage.
var ErrPlan = &domain.Error{Code: domain.EUNAVAILABLE, Message: PlanErrorMessage, RetryAfter: 2 * time.Minute}

// ErrDisabled refuses a disabled account.
var ErrDisabled = domain.Errorf(domain.EFORBIDDEN, "This account is disabled; contact support.")

// Open reads the account username and its plan for a request that acts on them (API.md §4 rows 8
// and 9): an unconfirmed account's request counts toward its allowance unless it only reads (read
// true), and past the allowance its access is blocked for a while; a disabled account is refused.
func (s *Service) Open(ctx context.Context, username string, read bool) (*Caller, error) {
	a, err := s.cfg.Store.GetAccount(ctx, username)
	if err != nil {
		return nil, planError(err)
	}
	if err := s.chargeUnconfirmed(a, read); err != nil {
		return nil, err
	}
	plan, err := s.cfg.Store.GetPlan(ctx, a.Plan)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPlan, err)
	}
	if a.Disabled {
		return nil, ErrDisabled
	}
	return &Caller{Account: a, Plan: plan}, nil
}

// planError turns a failure to read the account into the contract's plan error; a refusal (the
// account does not exist) stays what it is.
func planError(err error) error {
	if code := domain.ErrorCode(err); code == domain.EUNAVAILABLE || code == domain.EINTERNAL {
		return fmt.Errorf("%w: %w", ErrPlan, err)
	}
	return err
}

// chargeUnconfirmed counts a request of an unconfirmed account; past the allowance the account's
// access is blocked for UnconfirmedBlock. A read is not counted (showing a dashboard page reads
// several lists), but is refused during a block all the same.
func (s *Service) chargeUnconfirmed(a domain.Account, read bool) error {
	if a.Confirmed {
		return nil
	}
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	al := s.unconfirmed[a.ID]
	if al == nil || (!al.blockedUntil.IsZero() && !now.Before(al.blockedUntil)) {
		al = &allowance{}
		s.unconfirmed[a.ID] = al
	}
	if al.blockedUntil.IsZero() {
		if read {
			return nil
		}
		if al.used < s.cfg.UnconfirmedAllowance {
			al.used++
			return nil
		}
		al.blockedUntil = now.Add(s.cfg.UnconfirmedBlock)
	}
	left := al.blockedUntil.Sub(now)
	return &domain.Error{Code: domain.ELIMIT, RetryAfter: left, Message: fmt.Sprintf(
		"Please confirm your email address first: this unconfirmed account has used its API allowance, and its API access is blocked for %s.", roundUp(left))}
}

// roundUp renders a wait for people: whole minutes, or hours and minutes.
func roundUp(d time.Duration) string {
	m := int(math.Ceil(d.Minutes()))
	switch {
	case m <= 1:
		return "1 minute"
	case m < 120:
		return fmt.Sprintf("%d minutes", m)
	default:
		return fmt.Sprintf("%dh%02dm", m/60, m%60)
	}
}

// changed reports a change made, so the local node applies it before the caller answers.
func (s *Service) changed(ctx context.Context) { s.cfg.Changed(ctx) }
