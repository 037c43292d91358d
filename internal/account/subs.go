package account

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/domain"
)

// SubInput is a sub-account form as a person filled it in: nil fields are left as they are (on
// create: empty). Proxies are names or addresses; IPs are addresses as typed.
type SubInput struct {
	Username string // which one (edit), or the new one's name (create)
	Password *string
	Proxies  *[]string
	IPs      *[]string
	Active   *bool

	Email, FirstName, LastName *string
	LimitsInput                // in GB
}

// Subs lists the account's sub-accounts.
func (s *Service) Subs(ctx context.Context, c *Caller) ([]domain.SubAccount, error) {
	return s.cfg.Store.ListSubAccounts(ctx, c.Account.Username)
}

// Sub returns one of the account's sub-accounts (404 and 403 as API.md §4 rows 10 and 11).
func (s *Service) Sub(ctx context.Context, c *Caller, username string) (domain.SubAccount, error) {
	if username == "" {
		return domain.SubAccount{}, domain.FieldError("username", MsgRequired)
	}
	return s.ownSub(ctx, c, username)
}

// subUpdate validates the optional fields of in against the account: a sub-account gets some of the
// account's proxy servers and authorized IPs (API.md §4 row 12). Messages go to fe.
func (s *Service) subUpdate(ctx context.Context, c *Caller, in SubInput, fe domain.FormErrors) (domain.SubAccountUpdate, error) {
	var u domain.SubAccountUpdate
	if in.Password != nil {
		if err := domain.ValidatePassword(*in.Password); err != nil {
			fe.Add("password", domain.ErrorMessage(err))
		} else {
			hash, err := auth.HashPassword(*in.Password)
			if err != nil {
				return u, err
			}
			u.PasswordHash = &hash
		}
	}
	if in.Proxies != nil {
		cat, err := s.Catalogue(ctx)
		if err != nil {
			return u, err
		}
		names := []string{}
		for _, v := range *in.Proxies {
			p, ok := cat.Find(v)
			switch {
			case !ok:
				fe.Add("proxies", fmt.Sprintf("Proxy server %q is not recognized.", v))
			case !slices.Contains(c.Account.Proxies, p.Name):
				fe.Add("proxies", fmt.Sprintf("Proxy server %q is not on your account; add it to the account first.", v))
			default:
				names = append(names, p.Name)
			}
		}
		u.Proxies = &names
	}
	if in.IPs != nil {
		ips := ParseIPs(fe, "ips", *in.IPs)
		for _, ip := range ips {
			if !slices.Contains(c.Account.IPs, ip) {
				fe.Add("ips", fmt.Sprintf("%s is not one of your account's authorized IPs; authorize it first.", ip))
			}
		}
		u.IPs = &ips
	}
	u.Active = in.Active
	for _, f := range []struct {
		field    string
		in, dest **string
	}{{"email", &in.Email, &u.Email}, {"first_name", &in.FirstName, &u.FirstName}, {"last_name", &in.LastName, &u.LastName}} {
		if *f.in == nil {
			continue
		}
		v := strings.TrimSpace(**f.in)
		if err := domain.ValidateProfileField(f.field, v); err != nil {
			fe.Add(f.field, domain.ErrorMessage(err))
		}
		*f.dest = &v
	}
	u.MonthlyLimit = optionalGB(fe, "monthly_bandwidth_limit", in.Monthly)
	u.TotalLimit = optionalGB(fe, "total_bandwidth_limit", in.Total)
	return u, nil
}

// CreateSub creates a sub-account of the account, within its plan.
func (s *Service) CreateSub(ctx context.Context, c *Caller, in SubInput) (domain.SubAccount, error) {
	fe := domain.FormErrors{}
	if in.Username == "" {
		fe.Add("username", MsgRequired)
	} else if err := domain.ValidateUsername(in.Username); err != nil {
		fe.Add("username", domain.ErrorMessage(err))
	}
	if in.Password == nil {
		fe.Add("password", MsgRequired)
	}
	u, err := s.subUpdate(ctx, c, in, fe)
	if err != nil {
		return domain.SubAccount{}, err
	}
	if err := fe.Err(); err != nil {
		return domain.SubAccount{}, err
	}
	n := domain.NewSubAccount{Username: in.Username, PasswordHash: *u.PasswordHash,
		Profile: domain.Profile{Email: deref(u.Email), FirstName: deref(u.FirstName), LastName: deref(u.LastName)},
		Limits:  domain.Limits{MonthlyLimit: deref(u.MonthlyLimit), TotalLimit: deref(u.TotalLimit)}}
	if u.Proxies != nil {
		n.Proxies = *u.Proxies
	}
	if u.IPs != nil {
		n.IPs = *u.IPs
	}
	sub, err := s.cfg.Store.CreateSubAccount(ctx, c.Account.Username, n)
	if domain.ErrorCode(err) == domain.ECONFLICT {
		return sub, domain.FieldError("username", "This username is already taken.")
	}
	if err != nil {
		return sub, err
	}
	if in.Active != nil && !*in.Active {
		return s.updateSub(ctx, target{c: c, sub: &sub}, domain.SubAccountUpdate{Active: in.Active})
	}
	s.changed(ctx)
	return sub, nil
}

// EditSub changes the given fields of one of the account's sub-accounts.
func (s *Service) EditSub(ctx context.Context, c *Caller, in SubInput) (domain.SubAccount, error) {
	sub, err := s.Sub(ctx, c, in.Username)
	if err != nil {
		return sub, err
	}
	fe := domain.FormErrors{}
	u, err := s.subUpdate(ctx, c, in, fe)
	if err != nil {
		return sub, err
	}
	if err := fe.Err(); err != nil {
		return sub, err
	}
	return s.updateSub(ctx, target{c: c, sub: &sub}, u)
}

// DeleteSub deletes one of the account's sub-accounts.
func (s *Service) DeleteSub(ctx context.Context, c *Caller, username string) error {
	sub, err := s.Sub(ctx, c, username)
	if err != nil {
		return err
	}
	if err := s.cfg.Store.DeleteSubAccount(ctx, c.Account.Username, sub.Username); err != nil {
		return err
	}
	s.changed(ctx)
	return nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
