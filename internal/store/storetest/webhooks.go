package storetest

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// everyEvent is an operator route that wants every event.
var everyEvent = []domain.WebhookRoute{{URL: "https://ops.example.net/hook", Events: domain.EventTypes}}

// routeAll routes every recorded event and claims every delivery due by now (a second on, so
// that the events of this second are due), returning them.
func routeAll(t *testing.T, s domain.Store, routes []domain.WebhookRoute) []domain.WebhookDelivery {
	t.Helper()
	for {
		n, err := s.RouteWebhookEvents(t.Context(), routes, 10)
		must(t, err)
		if n < 10 {
			break
		}
	}
	ds, err := s.ClaimWebhookDeliveries(t.Context(), time.Now().Add(time.Second), time.Minute, 1000)
	must(t, err)
	return ds
}

type sent struct{ event, account, url, login string }

func summarize(t *testing.T, ds []domain.WebhookDelivery) []sent {
	t.Helper()
	out := []sent{}
	for _, d := range ds {
		var body struct {
			ID, Type, Account string
			Data              struct{ Login string }
		}
		if err := json.Unmarshal(d.Body, &body); err != nil || body.ID != d.EventID || body.Type != d.Event || body.Account != d.Account {
			t.Errorf("delivery %d body %s: %v; want id %s type %s account %s", d.ID, d.Body, err, d.EventID, d.Event, d.Account)
		}
		out = append(out, sent{d.Event, d.Account, d.URL, body.Data.Login})
	}
	return out
}

// testWebhookEvents: the writes that cause events record them once, and routing sends each to the
// operator routes that want it and, for customer events, to the account's own webhook.
func testWebhookEvents(t *testing.T, s domain.Store) {
	ctx := t.Context()
	now := time.Now()
	alice, _ := seed(t, s)
	ops := everyEvent[0].URL
	got := summarize(t, routeAll(t, s, everyEvent))
	want := []sent{{"account.created", "alice", ops, ""}, {"account.created", "bob", ops, ""}}
	if !slices.Equal(got, want) {
		t.Fatalf("after seeding: %v, want %v", got, want)
	}

	disabled, enabled := true, false
	_, err := s.UpdateAccount(ctx, "bob", domain.AccountUpdate{Disabled: &disabled})
	must(t, err)
	_, err = s.UpdateAccount(ctx, "bob", domain.AccountUpdate{Disabled: &disabled}) // no change: no event
	must(t, err)
	_, err = s.UpdateAccount(ctx, "bob", domain.AccountUpdate{Disabled: &enabled})
	must(t, err)
	got = summarize(t, routeAll(t, s, []domain.WebhookRoute{{URL: ops, Events: []string{domain.EventAccountDisabled}}}))
	if want := []sent{{"account.disabled", "bob", ops, ""}}; !slices.Equal(got, want) {
		t.Errorf("disable, disable again, enable, to a route of account.disabled only: %v, want %v", got, want)
	}

	// Bandwidth: alice's plan allows 1 GiB a period; she also has a sub-account limited to 100 bytes.
	must(t, s.SetAccountWebhook(ctx, "alice", domain.AccountWebhook{URL: "https://alice.example.com/hook", Secret: "s3cret", Updated: now}))
	sub := mustSub(t, s, "alice", domain.NewSubAccount{Username: "alice-1", PasswordHash: hash})
	limit := int64(100)
	_, err = s.UpdateSubAccount(ctx, "alice", "alice-1", domain.SubAccountUpdate{TotalLimit: &limit})
	must(t, err)
	routeAll(t, s, nil) // forget the events so far
	day := now.UTC().Format(time.DateOnly)
	add := func(batch string, subID, bytes int64) {
		t.Helper()
		must(t, s.AddUsage(ctx, batch, map[domain.UsageKey]domain.UsageCounts{
			{AccountID: alice.ID, SubID: subID, Proxy: "us-ca", Day: day}: {BytesOut: bytes}}))
	}
	const gib = 1 << 30
	aliceHook := "https://alice.example.com/hook"
	for _, step := range []struct {
		name   string
		batch  string
		sub    int64
		bytes  int64
		events []sent
	}{
		{"half the plan", "b1", 0, gib / 2, nil},
		{"past 80%", "b2", 0, gib * 35 / 100, []sent{{"bandwidth.80", "alice", aliceHook, "alice"}}},
		{"the same batch again", "b2", 0, gib * 35 / 100, nil},
		{"still under 100%", "b3", 0, gib / 10, nil},
		{"the sub-account crosses both of its limit's thresholds, and the account its plan's", "b4", sub.ID, gib / 10, []sent{
			{"bandwidth.100", "alice", aliceHook, "alice"}, {"bandwidth.100", "alice", aliceHook, "alice-1"},
			{"bandwidth.80", "alice", aliceHook, "alice-1"}}},
		{"over the limit", "b5", 0, gib, nil},
	} {
		add(step.batch, step.sub, step.bytes)
		got := summarize(t, routeAll(t, s, nil))
		slices.SortFunc(got, func(a, b sent) int { return strings.Compare(a.login+" "+a.event, b.login+" "+b.event) })
		if !slices.Equal(got, step.events) && !(len(got) == 0 && len(step.events) == 0) {
			t.Errorf("%s: deliveries %v, want %v", step.name, got, step.events)
		}
	}

	// An account's webhook gets only customer events; without one, they go to the operator only.
	must(t, s.SetAccountWebhook(ctx, "alice", domain.AccountWebhook{}))
	add("b6", 0, 0) // no bytes: no event
	if w, err := s.GetAccountWebhook(ctx, "alice"); err != nil || w != (domain.AccountWebhook{}) {
		t.Errorf("webhook after removal: %+v, %v", w, err)
	}
	if _, err := s.GetAccountWebhook(ctx, "nobody"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("webhook of an unknown account: %v, want not found", err)
	}
}

// testWebhookExitAndTokenEvents: an exit changing health in a node's report, and a token close to
// expiry, each make one event.
func testWebhookExitAndTokenEvents(t *testing.T, s domain.Store) {
	ctx := t.Context()
	now := time.Now()
	seed(t, s)
	routeAll(t, s, nil)
	report := func(healthy bool) {
		t.Helper()
		must(t, s.PutExitStatuses(ctx, "node-1", []domain.ExitStatus{
			{Proxy: "us-ca", IP: ip("127.0.0.2"), Healthy: healthy, Updated: now},
			{Proxy: "us-ca", IP: ip("127.0.0.3"), Healthy: true, Updated: now}}))
	}
	report(true) // first report: nothing changed
	report(true)
	report(false)
	report(false)
	report(true)
	var got []string
	for _, d := range routeAll(t, s, everyEvent) {
		var body struct {
			Data struct{ Node, Proxy, IP string }
		}
		must(t, json.Unmarshal(d.Body, &body))
		got = append(got, d.Event+" "+body.Data.Node+" "+body.Data.Proxy+" "+body.Data.IP)
	}
	if want := []string{"exit.down node-1 us-ca 127.0.0.2", "exit.up node-1 us-ca 127.0.0.2"}; !slices.Equal(got, want) {
		t.Errorf("exit events %v, want %v", got, want)
	}

	_, err := s.CreateToken(ctx, "alice", domain.NewToken{Label: "ci", Prefix: "emt_soon", Hash: "aa01", Expires: now.Add(3 * 24 * time.Hour)})
	must(t, err)
	_, err = s.CreateToken(ctx, "alice", domain.NewToken{Label: "later", Prefix: "emt_late", Hash: "aa02", Expires: now.Add(30 * 24 * time.Hour)})
	must(t, err)
	for i, want := range []int{1, 0} {
		n, err := s.NoteExpiringTokens(ctx, now, 100)
		if err != nil || n != want {
			t.Errorf("NoteExpiringTokens #%d = %d, %v; want %d", i+1, n, err, want)
		}
	}
	must(t, s.SetAccountWebhook(ctx, "alice", domain.AccountWebhook{URL: "https://alice.example.com/hook", Secret: "s3cret", Updated: now}))
	ds := routeAll(t, s, nil)
	if len(ds) != 1 || ds[0].Event != domain.EventTokenExpiring || ds[0].Secret != "s3cret" || ds[0].Operator {
		t.Fatalf("token event deliveries: %+v, want one token.expiring to alice's webhook with her secret", ds)
	}
	var body struct {
		Data struct{ Label, Prefix, Login string }
	}
	must(t, json.Unmarshal(ds[0].Body, &body))
	if body.Data.Label != "ci" || body.Data.Prefix != "emt_soon" || body.Data.Login != "alice" {
		t.Errorf("token event data %+v", body.Data)
	}
}

// testWebhookDeliveryQueue: a claimed delivery is the claimer's for its lease; a failure is due again
// at its next time; success and giving up finish it; concurrent routing routes each event once.
func testWebhookDeliveryQueue(t *testing.T, s domain.Store) {
	ctx := t.Context()
	seed(t, s)
	must(t, s.PutPlan(ctx, domain.Plan{Name: "extra", MaxProxies: 1, MaxIPs: 1}))
	for _, name := range []string{"carol", "dave", "erin", "frank"} {
		mustAccount(t, s, domain.NewAccount{Username: name, PasswordHash: hash, Plan: "extra"})
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	routed := 0
	for range 4 {
		wg.Go(func() {
			n, err := s.RouteWebhookEvents(ctx, everyEvent, 100)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			routed += n
			mu.Unlock()
		})
	}
	wg.Wait()
	now := time.Now().Truncate(time.Second).Add(time.Second) // every event is due
	if routed != 6 {
		t.Fatalf("four nodes routing at once routed %d events, want 6 (each once)", routed)
	}
	ds, err := s.ClaimWebhookDeliveries(ctx, now, time.Minute, 2)
	must(t, err)
	if len(ds) != 2 {
		t.Fatalf("claimed %d, want 2 (the limit)", len(ds))
	}
	rest, err := s.ClaimWebhookDeliveries(ctx, now, time.Minute, 100)
	must(t, err)
	if len(rest) != 4 {
		t.Fatalf("second claim got %d, want the other 4", len(rest))
	}
	if again, err := s.ClaimWebhookDeliveries(ctx, now.Add(30*time.Second), time.Minute, 100); err != nil || len(again) != 0 {
		t.Fatalf("claim within the leases: %d, %v; want none", len(again), err)
	}
	// One delivered, one failed and due again in 10 s, one given up; the other three leased out and
	// never finished (their node died): due again when the lease ends.
	must(t, s.FinishWebhookDelivery(ctx, ds[0].ID, domain.WebhookAttempt{At: now}))
	must(t, s.FinishWebhookDelivery(ctx, ds[1].ID, domain.WebhookAttempt{At: now, Error: "answered 500", Next: now.Add(10 * time.Second)}))
	must(t, s.FinishWebhookDelivery(ctx, rest[0].ID, domain.WebhookAttempt{At: now, Error: "timeout"}))
	due, err := s.ClaimWebhookDeliveries(ctx, now.Add(10*time.Second), time.Minute, 100)
	must(t, err)
	if len(due) != 1 || due[0].ID != ds[1].ID || due[0].Attempts != 1 || due[0].LastError != "answered 500" {
		t.Fatalf("due after 10 s: %+v, want the failed one, 1 attempt", due)
	}
	due, err = s.ClaimWebhookDeliveries(ctx, now.Add(61*time.Second), time.Minute, 100)
	must(t, err)
	if len(due) != 3 {
		t.Fatalf("due after the leases ended: %d, want the 3 never finished", len(due))
	}
	must(t, s.FinishWebhookDelivery(ctx, ds[1].ID, domain.WebhookAttempt{At: now.Add(11 * time.Second)}))
	list, err := s.ListWebhookDeliveries(ctx, 100)
	must(t, err)
	for _, d := range list {
		if d.ID != ds[1].ID {
			continue
		}
		h := d.History
		if len(h) != 2 || h[0].Error != "" || !h[0].At.Equal(now.Add(11*time.Second)) || h[1].Error != "answered 500" || !h[1].At.Equal(now) {
			t.Errorf("attempts of the retried delivery, newest first: %+v; want delivered, then answered 500", h)
		}
	}
	states := map[string]int{}
	for _, d := range list {
		states[d.State]++
	}
	if len(list) != 6 || states[domain.DeliveryDelivered] != 2 || states[domain.DeliveryFailed] != 1 || states[domain.DeliveryPending] != 3 {
		t.Errorf("deliveries by state %v (of %d), want 2 delivered, 1 failed, 3 pending", states, len(list))
	}
}
