package account

import (
	"context"
	"fmt"
	"slices"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// Catalogue is the proxy server catalogue, to translate between names and the addresses customers
// are told.
type Catalogue []domain.ProxyServer

// Find accepts a proxy server's name or its address.
func (cat Catalogue) Find(nameOrAddress string) (domain.ProxyServer, bool) {
	for _, p := range cat {
		if p.Name == nameOrAddress || p.Address == nameOrAddress {
			return p, true
		}
	}
	return domain.ProxyServer{}, false
}

// Pick returns the catalogue's entries named in names, in the order of names.
func (cat Catalogue) Pick(names []string) []domain.ProxyServer {
	out := make([]domain.ProxyServer, 0, len(names))
	for _, n := range names {
		if p, ok := cat.Find(n); ok {
			out = append(out, p)
		}
	}
	return out
}

// Addresses turns proxy server names into the addresses customers are told.
func (cat Catalogue) Addresses(names []string) []string {
	picked := cat.Pick(names)
	out := make([]string, len(picked))
	for i, p := range picked {
		out[i] = p.Address
	}
	return out
}

// Catalogue lists the proxy servers an account may authorize.
func (s *Service) Catalogue(ctx context.Context) (Catalogue, error) {
	return s.cfg.Store.ListProxyServers(ctx)
}

// Proxies lists the proxy servers of the account, or of its sub-account sub.
func (s *Service) Proxies(ctx context.Context, c *Caller, sub string) ([]domain.ProxyServer, error) {
	t, err := s.target(ctx, c, sub)
	if err != nil {
		return nil, err
	}
	cat, err := s.Catalogue(ctx)
	if err != nil {
		return nil, err
	}
	return cat.Pick(t.proxies()), nil
}

func (t target) proxies() []string {
	if t.sub != nil {
		return t.sub.Proxies
	}
	return t.c.Account.Proxies
}

// proxy finds the proxy server a person named (API.md §4 row 15 when it is not in the catalogue).
func (s *Service) proxy(ctx context.Context, nameOrAddress string) (domain.ProxyServer, error) {
	if nameOrAddress == "" {
		return domain.ProxyServer{}, domain.FieldError("proxy", MsgRequired)
	}
	cat, err := s.Catalogue(ctx)
	if err != nil {
		return domain.ProxyServer{}, err
	}
	p, ok := cat.Find(nameOrAddress)
	if !ok {
		return p, domain.Errorf(domain.EINVALID, "Proxy server %q is not recognized; see /api/proxies/available/.", nameOrAddress)
	}
	return p, nil
}

// AddProxy authorizes a proxy server (its name or address) for the account, within its plan, or for
// its sub-account sub, which may use only its account's proxy servers.
func (s *Service) AddProxy(ctx context.Context, c *Caller, sub, proxy string) (domain.ProxyServer, error) {
	t, err := s.target(ctx, c, sub)
	if err != nil {
		return domain.ProxyServer{}, err
	}
	p, err := s.proxy(ctx, proxy)
	if err != nil {
		return p, err
	}
	if t.sub == nil {
		if err := s.cfg.Store.AuthorizeProxy(ctx, c.Account.Username, p.Name); err != nil {
			return p, err
		}
		s.changed(ctx)
		return p, nil
	}
	switch {
	case slices.Contains(t.sub.Proxies, p.Name):
		return p, domain.Errorf(domain.ECONFLICT, "Proxy server is already authorized.")
	case !slices.Contains(c.Account.Proxies, p.Name):
		return p, domain.Errorf(domain.EINVALID, "Proxy server %q is not on your account; add it to the account first.", p.Address)
	}
	names := append(slices.Clone(t.sub.Proxies), p.Name)
	_, err = s.updateSub(ctx, t, domain.SubAccountUpdate{Proxies: &names})
	return p, err
}

// RemoveProxy takes a proxy server off the account (and its sub-accounts), or off its sub-account
// sub only.
func (s *Service) RemoveProxy(ctx context.Context, c *Caller, sub, proxy string) error {
	t, err := s.target(ctx, c, sub)
	if err != nil {
		return err
	}
	p, err := s.proxy(ctx, proxy)
	if err != nil {
		return err
	}
	if !slices.Contains(t.proxies(), p.Name) {
		return domain.Errorf(domain.EINVALID, "Proxy server %q is not on your %s.", p.Address, t.what())
	}
	if t.sub == nil {
		if err := s.cfg.Store.RevokeProxy(ctx, c.Account.Username, p.Name); err != nil {
			return err
		}
		s.changed(ctx)
		return nil
	}
	names := slices.DeleteFunc(slices.Clone(t.sub.Proxies), func(n string) bool { return n == p.Name })
	_, err = s.updateSub(ctx, t, domain.SubAccountUpdate{Proxies: &names})
	return err
}

// what names the target in a sentence.
func (t target) what() string {
	if t.sub != nil {
		return fmt.Sprintf("sub-account %s", t.sub.Username)
	}
	return "account"
}
