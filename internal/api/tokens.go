package api

import (
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// tokenJSON is an API token as the lists show it (API.md §2.2); "token" only when just created.
type tokenJSON struct {
	ID       int64   `json:"id"`
	Username string  `json:"username"` // the account or sub-account it authenticates as
	Label    string  `json:"label"`
	Prefix   string  `json:"prefix"`
	Created  string  `json:"created"`
	Expires  *string `json:"expires"`   // null: never
	LastUsed *string `json:"last_used"` // null: never (as reported by the nodes, within a minute or so)
	Active   bool    `json:"active"`
	Token    string  `json:"token,omitempty"`
}

func tokenOut(t domain.Token) tokenJSON {
	return tokenJSON{ID: t.ID, Username: t.Login, Label: t.Label, Prefix: t.Prefix, Created: t.Created.UTC().Format(time.RFC3339),
		Expires: optionalTime(t.Expires), LastUsed: optionalTime(t.LastUsed), Active: t.Active}
}

func optionalTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339)
	return &s
}

func (s *Server) listTokens(c *call) (any, error) {
	ts, err := s.cfg.Accounts.Tokens(c.r.Context(), c.caller, c.params.one("username"))
	if err != nil {
		return nil, err
	}
	out := make([]tokenJSON, len(ts))
	for i, t := range ts {
		out[i] = tokenOut(t)
	}
	return map[string][]tokenJSON{"tokens": out}, nil
}

func (s *Server) createToken(c *call) (any, error) {
	t, err := s.cfg.Accounts.CreateToken(c.r.Context(), c.caller, c.params.one("username"), c.params.one("label"), c.params.one("expires"))
	if err != nil {
		return nil, err
	}
	out := tokenOut(t.Token)
	out.Token = t.Secret
	return out, nil
}

func (s *Server) activateToken(c *call) (any, error)   { return s.setTokenActive(c, true) }
func (s *Server) deactivateToken(c *call) (any, error) { return s.setTokenActive(c, false) }

func (s *Server) setTokenActive(c *call, active bool) (any, error) {
	t, err := s.cfg.Accounts.SetTokenActive(c.r.Context(), c.caller, c.params.one("username"), c.params.one("id"), active)
	if err != nil {
		return nil, err
	}
	return tokenOut(t), nil
}

func (s *Server) deleteToken(c *call) (any, error) {
	return nil, s.cfg.Accounts.DeleteToken(c.r.Context(), c.caller, c.params.one("username"), c.params.one("id"))
}
