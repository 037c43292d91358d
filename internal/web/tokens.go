package web

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/internal/account"
	"github.com/exitmesh/exitmesh/internal/domain"
)

// tokenRow is an API token as the tokens page lists it.
type tokenRow struct {
	ID                                   int64
	Login, Label, Prefix                 string
	Created, Expires, LastUsed, IDString string
	Active                               bool
}

func viewToken(t domain.Token) tokenRow {
	when := func(at time.Time, none string) string {
		if at.IsZero() {
			return none
		}
		return at.UTC().Format("2006-01-02 15:04 UTC")
	}
	return tokenRow{ID: t.ID, IDString: strconv.FormatInt(t.ID, 10), Login: t.Login, Label: t.Label, Prefix: t.Prefix,
		Created: when(t.Created, "-"), Expires: when(t.Expires, "never"), LastUsed: when(t.LastUsed, "never"), Active: t.Active}
}

func (s *Server) tokensPage(w http.ResponseWriter, r *http.Request, v *visitor) {
	s.showTokens(w, r, v, page{}, http.StatusOK, nil)
}

// tokensChange creates a token (shown once, on the answer to the form), or activates, deactivates or
// deletes one.
func (s *Server) tokensChange(w http.ResponseWriter, r *http.Request, v *visitor) {
	var p page
	var created *account.NewToken
	id, sub := r.PostFormValue("id"), strings.TrimSpace(r.PostFormValue("username"))
	status := s.change(r, v, &p, func(ctx context.Context, c *account.Caller) (string, error) {
		switch action := r.PostFormValue("action"); action {
		case "create":
			t, err := s.cfg.Accounts.CreateToken(ctx, c, sub, strings.TrimSpace(r.PostFormValue("label")), r.PostFormValue("expires"))
			if err != nil {
				return "", err
			}
			created = &t
			return "Token " + t.Prefix + "… created for " + t.Login + ". Copy it now: it is shown only once.", nil
		case "activate", "deactivate":
			t, err := s.cfg.Accounts.SetTokenActive(ctx, c, "", id, action == "activate")
			return "Token " + t.Prefix + "… is " + action + "d: every node honours it within a second.", err
		case "delete":
			t, err := s.cfg.Accounts.Token(ctx, c, id)
			if err == nil {
				err = s.cfg.Accounts.DeleteToken(ctx, c, "", id)
			}
			return "Token " + t.Prefix + "… is deleted: it no longer works.", err
		}
		return "", domain.Errorf(domain.EINVALID, "Choose what to do with the token.")
	})
	s.showTokens(w, r, v, p, status, created)
}

func (s *Server) showTokens(w http.ResponseWriter, r *http.Request, v *visitor, p page, status int, created *account.NewToken) {
	p.Title, p.Nav = "API tokens", "tokens"
	data := struct {
		Tokens   []tokenRow
		Logins   []string // the account, then its sub-accounts: whom a token may be for
		Limit    int
		Active   int
		Created  *account.NewToken
		MinDate  string
		Username string
	}{Created: created, MinDate: time.Now().UTC().Format(time.DateOnly)}
	if c, st := s.read(r, v, &p, status); c == nil {
		status = st
	} else {
		data.Limit, data.Username = c.Plan.MaxTokens, c.Account.Username
		data.Logins = []string{c.Account.Username}
		subs, err := s.cfg.Accounts.Subs(r.Context(), c)
		for _, sub := range subs {
			data.Logins = append(data.Logins, sub.Username)
		}
		for _, login := range data.Logins {
			if err != nil {
				break
			}
			var ts []domain.Token
			ts, err = s.cfg.Accounts.Tokens(r.Context(), c, login)
			for _, t := range ts {
				data.Tokens = append(data.Tokens, viewToken(t))
				if t.Active {
					data.Active++
				}
			}
		}
		status = s.shown(&p, st, err)
	}
	p.Data = data
	s.render(w, status, "tokens", v, p)
}
