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

// Hostnames lists the authorized hostnames of the account, or of its sub-account sub (some of the
// account's), with the addresses they resolve to.
func (s *Service) Hostnames(ctx context.Context, c *Caller, sub string) ([]domain.Hostname, error) {
	t, err := s.target(ctx, c, sub)
	if err != nil || t.sub == nil {
		return c.Account.Hostnames, err
	}
	out := []domain.Hostname{}
	for _, h := range c.Account.Hostnames {
		if slices.Contains(t.sub.Hostnames, h.Name) {
			out = append(out, h)
		}
	}
	return out, nil
}

// AddHostname authorizes a hostname for the account (requests from the address it resolves to need
// no password; it must resolve now), or gives one of the account's to its sub-account sub.
func (s *Service) AddHostname(ctx context.Context, c *Caller, sub, name string) (domain.Hostname, error) {
	t, err := s.target(ctx, c, sub)
	if err != nil {
		return domain.Hostname{}, err
	}
	if name == "" {
		return domain.Hostname{}, domain.FieldError("hostname", MsgRequired)
	}
	if t.sub != nil {
		return s.addSubHostname(ctx, t, NormalizeHostname(name))
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

// RemoveHostname takes a hostname off the account (and its sub-accounts), or off its sub-account
// sub only.
func (s *Service) RemoveHostname(ctx context.Context, c *Caller, sub, name string) error {
	t, err := s.target(ctx, c, sub)
	if err != nil {
		return err
	}
	if name == "" {
		return domain.FieldError("hostname", MsgRequired)
	}
	if t.sub != nil {
		norm := NormalizeHostname(name)
		if !slices.Contains(t.sub.Hostnames, norm) {
			return domain.Errorf(domain.EINVALID, "Hostname is not authorized.")
		}
		names := slices.DeleteFunc(slices.Clone(t.sub.Hostnames), func(n string) bool { return n == norm })
		_, err := s.updateSub(ctx, t, domain.SubAccountUpdate{Hostnames: &names})
		return err
	}
	if err := s.cfg.Store.RemoveHostname(ctx, c.Account.Username, name); err != nil {
		return err
	}
	s.changed(ctx)
	return nil
}

// addSubHostname gives one of the account's hostnames to the target sub-account.
func (s *Service) addSubHostname(ctx context.Context, t target, name string) (domain.Hostname, error) {
	i := slices.IndexFunc(t.c.Account.Hostnames, func(h domain.Hostname) bool { return h.Name == name })
	switch {
	case slices.Contains(t.sub.Hostnames, name):
		return domain.Hostname{}, domain.Errorf(domain.ECONFLICT, "Hostname is already authorized.")
	case i < 0:
		return domain.Hostname{}, domain.Errorf(domain.EINVALID, "%s is not one of your account's hostnames; authorize it for the account first.", name)
	}
	names := append(slices.Clone(t.sub.Hostnames), name)
	if _, err := s.updateSub(ctx, t, domain.SubAccountUpdate{Hostnames: &names}); err != nil {
		return domain.Hostname{}, err
	}
	return t.c.Account.Hostnames[i], nil
}
