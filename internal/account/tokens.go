package account

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/domain"
)

// ErrTokenNotFound answers a token id that is unknown or not the caller's (API.md §2.2).
var ErrTokenNotFound = domain.Errorf(domain.ENOTFOUND, "Token not found.")

// ErrBadToken is a bearer token that authenticates nobody: unknown, malformed, deactivated or expired.
var ErrBadToken = domain.Errorf(domain.EINVALID, "The API token is not valid.")

// NewToken is a token just created: what the lists show, and the token itself, shown this once.
type NewToken struct {
	domain.Token
	Secret string
}

// AuthenticateToken finds the login an API token authenticates as (ErrBadToken when none).
func (s *Service) AuthenticateToken(ctx context.Context, token string) (domain.Login, error) {
	if !auth.WellFormedToken(token) {
		return domain.Login{}, ErrBadToken
	}
	t, err := s.cfg.Store.FindToken(ctx, auth.TokenHash(token))
	switch {
	case domain.ErrorCode(err) == domain.ENOTFOUND:
		return domain.Login{}, ErrBadToken
	case err != nil:
		return domain.Login{}, err
	}
	now := s.cfg.Now()
	if !t.Usable(now) {
		return domain.Login{}, ErrBadToken
	}
	s.cfg.TokenUses.Record(t.ID, now)
	return domain.Login{Username: t.Login, AccountID: t.AccountID, SubID: t.SubID}, nil
}

// Tokens lists the API tokens of the account, or of its sub-account sub.
func (s *Service) Tokens(ctx context.Context, c *Caller, sub string) ([]domain.Token, error) {
	t, err := s.target(ctx, c, sub)
	if err != nil {
		return nil, err
	}
	return s.cfg.Store.ListTokens(ctx, c.Account.Username, t.subName())
}

func (t target) subName() string {
	if t.sub != nil {
		return t.sub.Username
	}
	return ""
}

// CreateToken makes an API token for the account, or for its sub-account sub, within the plan's
// limit. label is optional; expires is "" (never), a date (the token works to the end of that day,
// UTC) or an RFC 3339 time, and must be in the future.
func (s *Service) CreateToken(ctx context.Context, c *Caller, sub, label, expires string) (NewToken, error) {
	t, err := s.target(ctx, c, sub)
	if err != nil {
		return NewToken{}, err
	}
	fe := domain.FormErrors{}
	if len(label) > domain.MaxTokenLabel {
		fe.Add("label", "Enter a label of at most 100 characters.")
	}
	until, ok := parseExpiry(expires)
	switch {
	case !ok:
		fe.Add("expires", "Enter a date as YYYY-MM-DD, or a time as 2006-01-02T15:04:05Z.")
	case !until.IsZero() && !until.After(s.cfg.Now()):
		fe.Add("expires", "Enter a time in the future.")
	}
	if err := fe.Err(); err != nil {
		return NewToken{}, err
	}
	secret, shown, hash := auth.NewToken()
	tok, err := s.cfg.Store.CreateToken(ctx, c.Account.Username, domain.NewToken{Sub: t.subName(), Label: label,
		Prefix: shown, Hash: hash, Expires: until})
	if err != nil {
		return NewToken{}, err
	}
	s.changed(ctx)
	return NewToken{Token: tok, Secret: secret}, nil
}

// parseExpiry reads an expiry: "" for never, a date for the end of that day (UTC), or an RFC 3339 time.
func parseExpiry(v string) (time.Time, bool) {
	if v == "" {
		return time.Time{}, true
	}
	if d, err := time.Parse(time.DateOnly, v); err == nil {
		return d.AddDate(0, 0, 1), true
	}
	at, err := time.Parse(time.RFC3339, v)
	return at.UTC(), err == nil
}

// token finds the token id (as typed) of the account, or of its sub-account sub when one is named.
func (s *Service) token(ctx context.Context, c *Caller, sub, id string) (domain.Token, error) {
	t, err := s.target(ctx, c, sub)
	if err != nil {
		return domain.Token{}, err
	}
	id = strings.TrimSpace(id)
	if id == "" {
		return domain.Token{}, domain.FieldError("id", MsgRequired)
	}
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 {
		return domain.Token{}, ErrTokenNotFound
	}
	tok, err := s.cfg.Store.GetToken(ctx, c.Account.Username, n)
	if err == nil && t.sub != nil && tok.SubID != t.sub.ID {
		err = ErrTokenNotFound
	}
	return tok, err
}

// Token returns one of the tokens of the account or its sub-accounts, by its id as typed.
func (s *Service) Token(ctx context.Context, c *Caller, id string) (domain.Token, error) {
	return s.token(ctx, c, "", id)
}

// SetTokenActive activates (within the plan's limit) or deactivates one of the account's tokens.
func (s *Service) SetTokenActive(ctx context.Context, c *Caller, sub, id string, active bool) (domain.Token, error) {
	tok, err := s.token(ctx, c, sub, id)
	if err != nil {
		return tok, err
	}
	if tok, err = s.cfg.Store.SetTokenActive(ctx, c.Account.Username, tok.ID, active); err != nil {
		return tok, err
	}
	s.changed(ctx)
	return tok, nil
}

// DeleteToken deletes one of the account's tokens.
func (s *Service) DeleteToken(ctx context.Context, c *Caller, sub, id string) error {
	tok, err := s.token(ctx, c, sub, id)
	if err != nil {
		return err
	}
	if err := s.cfg.Store.DeleteToken(ctx, c.Account.Username, tok.ID); err != nil {
		return err
	}
	s.changed(ctx)
	return nil
}
