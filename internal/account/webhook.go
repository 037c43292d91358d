package account

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// Webhook returns the account's own webhook (a zero one when it has none): where its bandwidth and
// token events go, and the secret that signs them.
func (s *Service) Webhook(ctx context.Context, c *Caller) (domain.AccountWebhook, error) {
	return s.cfg.Store.GetAccountWebhook(ctx, c.Account.Username)
}

// SetWebhook points the account's events at rawURL, or stops them when rawURL is "". The URL must
// pass the network's egress policy now (and does again at every delivery). The signing secret is
// made on the first set and kept when the URL changes, so a receiver keeps working; removing the
// webhook forgets it, and the next set makes a new one.
func (s *Service) SetWebhook(ctx context.Context, c *Caller, rawURL string) (domain.AccountWebhook, error) {
	if rawURL == "" {
		err := s.cfg.Store.SetAccountWebhook(ctx, c.Account.Username, domain.AccountWebhook{})
		return domain.AccountWebhook{}, err
	}
	u, err := s.cfg.CheckWebhookURL(ctx, rawURL)
	if err != nil {
		return domain.AccountWebhook{}, err
	}
	w, err := s.cfg.Store.GetAccountWebhook(ctx, c.Account.Username)
	if err != nil {
		return domain.AccountWebhook{}, err
	}
	if w.Secret == "" {
		var raw [24]byte
		_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails
		w.Secret = "whsec_" + hex.EncodeToString(raw[:])
	}
	w.URL, w.Updated = u, s.cfg.Now()
	if err := s.cfg.Store.SetAccountWebhook(ctx, c.Account.Username, w); err != nil {
		return domain.AccountWebhook{}, err
	}
	return w, nil
}
