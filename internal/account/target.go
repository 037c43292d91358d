package account

import (
	"context"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// ErrSubNotFound answers a sub-account name that is neither the caller's account nor any login
// (API.md §4 row 10).
var ErrSubNotFound = domain.Errorf(domain.ENOTFOUND, "Sub-account not found.")

// target is what a request changes: the caller's account (sub nil) or one of its sub-accounts.
type target struct {
	c   *Caller
	sub *domain.SubAccount
}

// target resolves the username a parent passes to act on a sub-account (API.md §1): "" or the
// account's own name is the account; another account's login is refused (rows 10 and 11).
func (s *Service) target(ctx context.Context, c *Caller, username string) (target, error) {
	if username == "" || username == c.Account.Username {
		return target{c: c}, nil
	}
	sub, err := s.ownSub(ctx, c, username)
	if err != nil {
		return target{}, err
	}
	return target{c: c, sub: &sub}, nil
}

// ownSub finds username among the caller's sub-accounts: 404 when no login has that name, 403 when
// it is the account itself or another account's.
func (s *Service) ownSub(ctx context.Context, c *Caller, username string) (domain.SubAccount, error) {
	login, err := s.cfg.Store.GetLogin(ctx, username)
	switch {
	case domain.ErrorCode(err) == domain.ENOTFOUND:
		return domain.SubAccount{}, ErrSubNotFound
	case err != nil:
		return domain.SubAccount{}, err
	case login.Username == c.Account.Username:
		return domain.SubAccount{}, domain.Errorf(domain.EFORBIDDEN, "%q is your account, not one of your sub-accounts.", username)
	case login.AccountID != c.Account.ID:
		return domain.SubAccount{}, domain.Errorf(domain.EFORBIDDEN, "%q is not one of your sub-accounts.", username)
	}
	subs, err := s.cfg.Store.ListSubAccounts(ctx, c.Account.Username)
	if err != nil {
		return domain.SubAccount{}, err
	}
	for _, sub := range subs {
		if sub.ID == login.SubID {
			return sub, nil
		}
	}
	return domain.SubAccount{}, ErrSubNotFound // deleted in between
}

// updateSub changes the target sub-account and reports the change.
func (s *Service) updateSub(ctx context.Context, t target, u domain.SubAccountUpdate) (domain.SubAccount, error) {
	sub, err := s.cfg.Store.UpdateSubAccount(ctx, t.c.Account.Username, t.sub.Username, u)
	if err != nil {
		return sub, err
	}
	s.changed(ctx)
	return sub, nil
}
