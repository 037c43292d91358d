package client_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/client"
)

// The account's webhook through the client: none at first; a loopback URL this network's egress
// policy refuses is a bad request naming the url field, and nothing is set.
func TestWebhookThroughTheClient(t *testing.T) {
	c, _ := realAPI(t, "alice-password")
	ctx := context.Background()
	w, err := c.Webhook(ctx)
	if err != nil || w.URL != "" || w.Secret != "" || !strings.Contains(strings.Join(w.Events, ","), "bandwidth.80") {
		t.Fatalf("Webhook = %+v, %v; want none, with the events an account receives", w, err)
	}
	_, err = c.SetWebhook(ctx, "http://127.0.0.1:9/hook")
	var ce *client.Error
	if !errors.Is(err, client.ErrBadRequest) || !errors.As(err, &ce) || !strings.Contains(strings.Join(ce.Fields["url"], " "), "loopback") {
		t.Fatalf("SetWebhook to loopback: %v, want ErrBadRequest naming the url field", err)
	}
	if w, _ := c.Webhook(ctx); w.URL != "" {
		t.Errorf("a refused URL was set: %+v", w)
	}
}

// VerifyWebhook accepts the documented scheme, computed here independently: v1 = hex HMAC-SHA256 of
// "<t>.<body>" under the secret.
func TestVerifyWebhookFollowsTheDocumentedScheme(t *testing.T) {
	body := []byte(`{"id":"evt_1","type":"token.expiring"}`)
	now := time.Now()
	m := hmac.New(sha256.New, []byte("whsec_abc"))
	fmt.Fprintf(m, "%d.%s", now.Unix(), body)
	header := fmt.Sprintf("t=%d,v1=%s", now.Unix(), hex.EncodeToString(m.Sum(nil)))
	if err := client.VerifyWebhook("whsec_abc", header, body, now, 5*time.Minute); err != nil {
		t.Errorf("documented signature refused: %v", err)
	}
	if err := client.VerifyWebhook("whsec_abd", header, body, now, 5*time.Minute); err == nil {
		t.Error("a signature under another secret verified")
	}
}
