package web_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/webhooks"
)

// TestCustomerSetsAWebhook: an internal URL is refused with the reason and shown as typed; a URL
// the egress policy allows is saved with a signing secret; the next bandwidth event reaches it,
// signed with that secret, and the operator's webhooks page shows the delivery.
func TestCustomerSetsAWebhook(t *testing.T) {
	n := startNetwork(t)
	n.account(t, "ops", "ops-password", "big")
	n.account(t, "alice", "alice-password", "small", "us-ca")
	var mu sync.Mutex
	var bodies []string
	var secret string
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if err := webhooks.Verify(secret, r.Header.Get(webhooks.SignatureHeader), body, time.Now(), time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		bodies = append(bodies, string(body))
	}))
	t.Cleanup(receiver.Close)

	ctx := browser(t)
	signIn(t, ctx, n.base, "alice", "alice-password")
	run(t, ctx, "an internal URL", chromedp.Navigate(n.base+"/account"),
		chromedp.SetValue(chromedp.CSS(`#webhook-url`), "http://127.0.0.5:8080/hook"))
	submit(t, ctx, "save it", `#save-webhook`)
	if got := text(t, ctx, ".field-error"); !strings.Contains(got, "loopback address") {
		t.Errorf("field error %q, want the egress policy's reason", got)
	}
	if got := jsEval[string](t, ctx, `document.querySelector("#webhook-url").value`); got != "http://127.0.0.5:8080/hook" {
		t.Errorf("the refused form shows %q, want what was typed", got)
	}
	run(t, ctx, "the receiver's URL", chromedp.SetValue(chromedp.CSS(`#webhook-url`), receiver.URL+"/events"))
	submit(t, ctx, "save it", `#save-webhook`)
	if got := text(t, ctx, ".notice"); !strings.Contains(got, "webhook is saved") {
		t.Errorf("notice %q", got)
	}
	shown := text(t, ctx, "#webhook-secret")
	stored, err := n.store.GetAccountWebhook(t.Context(), "alice")
	if err != nil || stored.URL != receiver.URL+"/events" || stored.Secret != shown || !strings.HasPrefix(shown, "whsec_") {
		t.Fatalf("stored %+v %v; page shows secret %q", stored, err, shown)
	}
	mu.Lock()
	secret = shown
	mu.Unlock()
	screenshot(t, ctx, "account-webhook")

	// 8.5 GB of the plan's 10 GB: past 80%.
	alice, _ := n.store.GetAccount(t.Context(), "alice")
	if err := n.store.AddUsage(t.Context(), "big-download", map[domain.UsageKey]domain.UsageCounts{
		{AccountID: alice.ID, Proxy: "us-ca", Day: time.Now().UTC().Format(time.DateOnly)}: {BytesOut: 8_500_000_000}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the bandwidth.80 event at the receiver", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(bodies) != 1 || !strings.Contains(bodies[0], `"type":"bandwidth.80"`) || !strings.Contains(bodies[0], `"login":"alice"`) {
			return fmt.Errorf("received %q", bodies)
		}
		return nil
	})

	ctx = browser(t)
	signIn(t, ctx, n.base, "ops", "ops-password")
	run(t, ctx, "the operator's webhooks page", chromedp.Navigate(n.base+"/ops/webhooks"), chromedp.WaitVisible(chromedp.CSS(`#deliveries`)))
	if got := cells(t, ctx, "#deliveries tbody"); !strings.Contains(got, "bandwidth.80") || !strings.Contains(got, "alice") ||
		!strings.Contains(got, "delivered") || !strings.Contains(got, receiver.URL+"/events") {
		t.Errorf("deliveries table %q, want alice's bandwidth.80, delivered", got)
	}
	screenshot(t, ctx, "ops-webhooks")
}
