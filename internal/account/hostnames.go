package account

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/hostnames"
)

// resolveTimeout bounds the DNS lookup of a hostname being added.
const resolveTimeout = 5 * time.Second

// NormalizeHostname is how the store keys hostnames.
func NormalizeHostname(h string) string { return strings.ToLower(strings.TrimSuffix(h, ".")) }

// Hostnames lists the authorized hostnames of the account.
func (s *Service) Hostnames(ctx context.Context, c *Caller, sub string) ([]domain.Hostname, error) {
	if _, err := s.accountOnly(ctx, c, sub); err != nil {
		return nil, err
	}
	return c.Account.Hostnames, nil
}

// AddHostname authorizes a hostname for the account: requests from the address it resolves to need
// no password. It must resolve now.
func (s *Service) AddHostname(ctx context.Context, c *Caller, sub, name string) (domain.Hostname, error) {
	if _, err := s.accountOnly(ctx, c, sub); err != nil {
		return domain.Hostname{}, err
	}
	if name == "" {
		return domain.Hostname{}, domain.FieldError("hostname", MsgRequired)
	}
	if err := domain.ValidateHostname(name); err != nil {
		return domain.Hostname{}, domain.FieldError("hostname", domain.ErrorMessage(err))
	}
	norm := NormalizeHostname(name)
	if slices.ContainsFunc(c.Account.Hostnames, func(h domain.Hostname) bool { return h.Name == norm }) {
		return domain.Hostname{}, domain.Errorf(domain.ECONFLICT, "Hostname is already authorized.") // before the lookup
	}
	lctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	ip, err := hostnames.Resolve(lctx, s.cfg.Lookup, name)
	if err != nil {
		return domain.Hostname{}, domain.FieldError("hostname", fmt.Sprintf("%s does not resolve to an IP address.", name))
	}
	if err := s.cfg.Store.AddHostname(ctx, c.Account.Username, name, ip); err != nil {
		return domain.Hostname{}, err
	}
	s.changed(ctx)
	return domain.Hostname{Name: norm, IP: ip}, nil
}

// RemoveHostname takes a hostname off the account.
func (s *Service) RemoveHostname(ctx context.Context, c *Caller, sub, name string) error {
	if _, err := s.accountOnly(ctx, c, sub); err != nil {
		return err
	}
	if name == "" {
		return domain.FieldError("hostname", MsgRequired)
	}
	if err := s.cfg.Store.RemoveHostname(ctx, c.Account.Username, name); err != nil {
		return err
	}
	s.changed(ctx)
	return nil
}

// accountOnly resolves sub for a list that only accounts hold.
func (s *Service) accountOnly(ctx context.Context, c *Caller, sub string) (target, error) {
	t, err := s.target(ctx, c, sub)
	if err == nil && t.sub != nil {
		err = domain.Errorf(domain.EINVALID, "Hostnames are authorized for the account, not for a sub-account.")
	}
	return t, err
}
