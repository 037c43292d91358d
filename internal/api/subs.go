package api

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/domain"
)

type subJSON struct {
	Username string   `json:"username"`
	Proxies  []string `json:"proxies"` // addresses, as /api/proxies/ lists them
	IPs      []string `json:"ips"`
	Active   bool     `json:"active"`
}

func subOut(sub domain.SubAccount, cat catalogue) subJSON {
	return subJSON{Username: sub.Username, Proxies: cat.addresses(sub.Proxies), IPs: addrStrings(sub.IPs), Active: sub.Active}
}

func (s *Server) listSubs(c *call) (any, error) {
	subs, err := s.cfg.Store.ListSubAccounts(c.r.Context(), c.account.Username)
	if err != nil {
		return nil, err
	}
	cat, err := s.catalogue(c.r.Context())
	if err != nil {
		return nil, err
	}
	out := make([]subJSON, len(subs))
	for i, sub := range subs {
		out[i] = subOut(sub, cat)
	}
	return map[string][]subJSON{"subs": out}, nil
}

// subForm is the validated input of sub/create and sub/edit.
type subForm struct {
	passwordHash *string
	proxies      *[]string // names
	ips          *[]netip.Addr
	active       *bool
}

// readSubForm validates the optional sub-account fields against the account: its proxy servers and
// its authorized IPs (a sub-account gets a subset of each). API.md §4 row 12.
func (s *Server) readSubForm(c *call, fe formErrors) (subForm, error) {
	var f subForm
	if c.params.has("password") {
		pw := c.params.one("password")
		if err := domain.ValidatePassword(pw); err != nil {
			fe.add("password", domain.ErrorMessage(err))
		} else {
			hash, err := auth.HashPassword(pw)
			if err != nil {
				return f, err
			}
			f.passwordHash = &hash
		}
	}
	if c.params.has("proxies") {
		cat, err := s.catalogue(c.r.Context())
		if err != nil {
			return f, err
		}
		names := []string{}
		for _, v := range c.params.list("proxies") {
			p, ok := cat.find(v)
			switch {
			case !ok:
				fe.add("proxies", fmt.Sprintf("Proxy server %q is not recognized.", v))
			case !slices.Contains(c.account.Proxies, p.Name):
				fe.add("proxies", fmt.Sprintf("Proxy server %q is not on your account; add it to the account first.", v))
			default:
				names = append(names, p.Name)
			}
		}
		f.proxies = &names
	}
	if c.params.has("ips") {
		ips := fe.ips("ips", c.params.list("ips"))
		for _, ip := range ips {
			if !slices.Contains(c.account.IPs, ip) {
				fe.add("ips", fmt.Sprintf("%s is not one of your account's authorized IPs; authorize it first.", ip))
			}
		}
		f.ips = &ips
	}
	if c.params.has("active") {
		a := fe.boolean("active", c.params.one("active"))
		f.active = &a
	}
	return f, nil
}

func (s *Server) createSub(c *call) (any, error) {
	fe := formErrors{}
	username := fe.requireOne(c.params, "username")
	if username != "" {
		if err := domain.ValidateUsername(username); err != nil {
			fe.add("username", domain.ErrorMessage(err))
		}
	}
	if !c.params.has("password") {
		fe.add("password", msgRequired)
	}
	f, err := s.readSubForm(c, fe)
	if err != nil {
		return nil, err
	}
	if err := fe.err(); err != nil {
		return nil, err
	}
	n := domain.NewSubAccount{Username: username, PasswordHash: *f.passwordHash}
	if f.proxies != nil {
		n.Proxies = *f.proxies
	}
	if f.ips != nil {
		n.IPs = *f.ips
	}
	sub, err := s.cfg.Store.CreateSubAccount(c.r.Context(), c.account.Username, n)
	if domain.ErrorCode(err) == domain.ECONFLICT {
		return nil, fieldError("username", "This username is already taken.")
	}
	if err != nil {
		return nil, err
	}
	return s.subResult(c, sub)
}

func (s *Server) subResult(c *call, sub domain.SubAccount) (any, error) {
	cat, err := s.catalogue(c.r.Context())
	if err != nil {
		return nil, err
	}
	return subOut(sub, cat), nil
}

// ownSub resolves the "username" of sub/edit and sub/delete: rows 10 and 11.
func (s *Server) ownSub(c *call) (string, error) {
	fe := formErrors{}
	username := fe.requireOne(c.params, "username")
	if err := fe.err(); err != nil {
		return "", err
	}
	login, err := s.cfg.Store.GetLogin(c.r.Context(), username)
	switch {
	case domain.ErrorCode(err) == domain.ENOTFOUND:
		return "", errSubNotFound
	case err != nil:
		return "", err
	case login.Username == c.account.Username:
		return "", newError(http.StatusForbidden, fmt.Sprintf("%q is your account, not one of your sub-accounts.", username))
	case login.AccountID != c.account.ID:
		return "", newError(http.StatusForbidden, fmt.Sprintf("%q is not one of your sub-accounts.", username))
	}
	return login.Username, nil
}

func (s *Server) editSub(c *call) (any, error) {
	username, err := s.ownSub(c)
	if err != nil {
		return nil, err
	}
	fe := formErrors{}
	f, err := s.readSubForm(c, fe)
	if err != nil {
		return nil, err
	}
	if err := fe.err(); err != nil {
		return nil, err
	}
	sub, err := s.cfg.Store.UpdateSubAccount(c.r.Context(), c.account.Username, username, domain.SubAccountUpdate{
		PasswordHash: f.passwordHash, Proxies: f.proxies, IPs: f.ips, Active: f.active})
	if err != nil {
		return nil, err
	}
	return s.subResult(c, sub)
}

func (s *Server) deleteSub(c *call) (any, error) {
	username, err := s.ownSub(c)
	if err != nil {
		return nil, err
	}
	return nil, s.cfg.Store.DeleteSubAccount(c.r.Context(), c.account.Username, username)
}

// normalizeHostname is how the store keys hostnames.
func normalizeHostname(h string) string { return strings.ToLower(strings.TrimSuffix(h, ".")) }
