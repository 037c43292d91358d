package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/exitmesh/exitmesh/internal/bans"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/mail"
)

// sendLink makes a confirmation link for the account username and emails it, or, without a
// Mailer, logs it at info level for the operator to pass on. The link's secret is never logged
// when it is emailed; the store keeps only its hash.
func (s *Server) sendLink(ctx context.Context, username string) error {
	c := s.cfg.Signup
	token := randomToken()
	err := s.cfg.Store.CreateConfirmToken(ctx, domain.ConfirmToken{ID: hashToken(token), Username: username,
		Expires: s.cfg.Now().Add(c.LinkTTL)})
	if err != nil {
		s.log.Error("cannot store a confirmation link", "username", username, "err", err)
		return err
	}
	link := c.PublicURL + "/confirm?" + url.Values{"token": {token}}.Encode()
	if c.Mailer == nil {
		s.log.Info("email confirmation link (smtp.host is not set: pass the link on to the customer)", "username", username, "link", link)
		return nil
	}
	err = c.Mailer.Send(ctx, mail.Message{To: username, Subject: "Confirm your email address", Body: fmt.Sprintf(
		"Hello,\n\nAn account was created with this email address (%s).\nTo confirm the address, open this link within %d hours:\n\n%s\n\n"+
			"If you did not sign up, ignore this email: the account stays unconfirmed.\n",
		username, c.hours(), link)})
	if err != nil {
		s.log.Error("cannot send the confirmation email", "username", username, "err", err)
		return err
	}
	s.log.Info("confirmation email sent", "username", username)
	return nil
}

// confirm uses the link's token: the account is confirmed and the token spent. An unknown token
// counts toward the 404 ban, so links cannot be guessed at speed.
func (s *Server) confirm(w http.ResponseWriter, r *http.Request) {
	ip := clientIP(r)
	if left, banned := s.cfg.Bans.Banned(ip); banned {
		s.renderError(w, r, nil, http.StatusForbidden, "Your IP address is temporarily banned for "+bans.Remaining(left)+" after too many failed sign-ins or requests.")
		return
	}
	p := page{Title: "Email confirmation"}
	token := r.URL.Query().Get("token")
	if token == "" || len(token) > 100 {
		token = "-" // no token is an unknown one
	}
	acct, err := s.cfg.Store.ConfirmAccount(r.Context(), hashToken(token))
	status := http.StatusOK
	switch domain.ErrorCode(err) {
	case "":
		s.log.Info("email confirmed", "username", acct.Username)
		p.Title, p.Notice = "Email confirmed", "Your email address "+acct.Username+" is confirmed."
		p.Data = "The account API no longer limits you to a few requests."
	case domain.ENOTFOUND:
		s.cfg.Bans.Fail(ip, bans.NotFound)
		status, p.Error = http.StatusNotFound, domain.ErrorMessage(err)
		p.Data = "Check that the whole link was copied from the email. For a new link, sign in and choose “Send the link again”."
	case domain.ECONFLICT:
		status, p.Error = http.StatusGone, domain.ErrorMessage(err)
		p.Data = "If you followed it before, your email address is confirmed: sign in."
	case domain.EINVALID:
		status, p.Error = http.StatusGone, domain.ErrorMessage(err)
		p.Data = "For a new link, sign in and choose “Send the link again”."
	case domain.EUNAVAILABLE:
		status, p.Error = http.StatusServiceUnavailable, msgUnavailable
	default:
		s.log.Error("cannot confirm an account", "err", err)
		status, p.Error = http.StatusInternalServerError, "Internal error. Please retry."
	}
	s.render(w, status, "confirm", nil, p)
}

// resend sends a new link to the signed-in account, within the rate limits per IP and per account.
func (s *Server) resend(w http.ResponseWriter, r *http.Request, v *visitor) {
	p := page{Title: "Email confirmation"}
	status := http.StatusOK
	name := v.account.Username
	switch {
	case v.account.Confirmed:
		p.Notice = "Your email address is already confirmed."
	case !isEmail(name):
		status, p.Error = http.StatusBadRequest, "This account's username is not an email address, so no link can be sent to it: ask the operator to confirm the account."
	default:
		if ok, wait := s.cfg.Signup.limiter.allow(s.cfg.Now(), ipKey(clientIP(r)), "account:"+name); !ok {
			status, p.Error = http.StatusTooManyRequests, "Too many links asked for. Please try again in "+bans.Remaining(wait)+"."
		} else if err := s.sendLink(r.Context(), name); err != nil {
			status, p.Error = http.StatusServiceUnavailable, "The confirmation email could not be sent just now. Please try again in a few minutes."
		} else if s.cfg.Signup.Mailer == nil {
			p.Notice = "A new confirmation link is ready. Email is not set up on this service: ask its operator for the link."
		} else {
			p.Notice = fmt.Sprintf("We sent a new confirmation link to %s. It works for %d hours.", name, s.cfg.Signup.hours())
		}
	}
	s.render(w, status, "confirm", v, p)
}
