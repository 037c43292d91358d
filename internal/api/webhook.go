package api

import (
	"github.com/exitmesh/exitmesh/internal/account"
	"github.com/exitmesh/exitmesh/internal/domain"
)

// webhookJSON is the account's webhook: where its events go, the secret that signs them, and which
// events an account receives. URL "" means none.
type webhookJSON struct {
	URL    string   `json:"url"`
	Secret string   `json:"secret,omitempty"`
	Events []string `json:"events"`
}

func webhookOut(w domain.AccountWebhook) webhookJSON {
	return webhookJSON{URL: w.URL, Secret: w.Secret, Events: domain.CustomerEvents}
}

func (s *Server) showWebhook(c *call) (any, error) {
	w, err := s.cfg.Accounts.Webhook(c.r.Context(), c.caller)
	if err != nil {
		return nil, err
	}
	return webhookOut(w), nil
}

func (s *Server) setWebhook(c *call) (any, error) {
	if !c.params.has("url") { // an empty url removes the webhook; a forgotten one must not
		return nil, domain.FieldError("url", account.MsgRequired)
	}
	w, err := s.cfg.Accounts.SetWebhook(c.r.Context(), c.caller, c.params.one("url"))
	if err != nil {
		return nil, err
	}
	return webhookOut(w), nil
}
