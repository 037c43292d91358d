package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/client"
)

// script is an API server whose answers the test writes: answer i handles attempt i (the last one
// repeats). It records every attempt.
type script struct {
	mu       sync.Mutex
	answers  []func(w http.ResponseWriter, r *http.Request)
	attempts []*http.Request
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	n := len(s.attempts)
	s.attempts = append(s.attempts, r.Clone(context.Background()))
	answer := s.answers[min(n, len(s.answers)-1)]
	s.mu.Unlock()
	answer(w, r)
}

func (s *script) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.attempts)
}

func status(code int, body string, header ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(code)
		fmt.Fprint(w, body)
	}
}

var ok = status(200, `{"ips":["192.0.2.1"]}`)

// reset closes the connection without an answer, as a crashed or cut server does.
func reset(w http.ResponseWriter, r *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(interface{ NetConn() net.Conn }); ok { // TLS: reset the TCP connection under it
		if tcp, ok := tc.NetConn().(*net.TCPConn); ok {
			tcp.SetLinger(0)
		}
	}
	conn.Close()
}

// waits records the client's waits instead of sleeping.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) sleep(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.d = append(w.d, d)
	return ctx.Err()
}

func newClient(t *testing.T, srv *httptest.Server, w *waits) *client.Client {
	t.Helper()
	c, err := client.New(srv.URL, "alice", "alice-password", client.WithHTTPClient(srv.Client()), client.WithSleep(w.sleep))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func start(t *testing.T, answers ...func(http.ResponseWriter, *http.Request)) (*httptest.Server, *script) {
	s := &script{answers: answers}
	srv := httptest.NewTLSServer(s)
	t.Cleanup(srv.Close)
	return srv, s
}

func TestServerErrorsAreRetriedWithGrowingBackoff(t *testing.T) {
	srv, s := start(t, status(500, `{"error":"Internal error.","request_id":"r1"}`), status(500, `{"error":"Internal error."}`), ok)
	w := &waits{}
	ips, err := newClient(t, srv, w).IPs(context.Background())
	if err != nil || len(ips) != 1 {
		t.Fatalf("IPs = %v, %v", ips, err)
	}
	if s.count() != 3 || len(w.d) != 2 {
		t.Fatalf("%d attempts with %d waits, want 3 and 2", s.count(), len(w.d))
	}
	if w.d[0] < time.Second || w.d[0] > 1500*time.Millisecond || w.d[1] < 2*time.Second || w.d[1] > 3*time.Second {
		t.Errorf("waits %v, want 1–1.5s then 2–3s (exponential with jitter)", w.d)
	}
}

func TestServerErrorGivesUpAfterThreeRetries(t *testing.T) {
	srv, s := start(t, status(500, `{"error":"Internal error (request id abc). Please retry.","request_id":"abc"}`, "X-Request-Id", "abc"))
	w := &waits{}
	_, err := newClient(t, srv, w).IPs(context.Background())
	var apiErr *client.Error
	if !errors.Is(err, client.ErrServer) || !errors.As(err, &apiErr) || apiErr.RequestID != "abc" || !strings.Contains(err.Error(), "abc") {
		t.Fatalf("error %v, want ErrServer naming request id abc", err)
	}
	if s.count() != 4 || len(w.d) != 3 || w.d[2] < 4*time.Second {
		t.Errorf("%d attempts, waits %v; want 1+3 attempts with waits growing to ≥4s", s.count(), w.d)
	}
}

func TestUnavailableWaitsForRetryAfterWithinTheDeadline(t *testing.T) {
	srv, s := start(t, status(503, `{"error":"Plan error: Unable to lookup subscription plan. Please try again in a few minutes."}`, "Retry-After", "7"), ok)
	w := &waits{}
	if _, err := newClient(t, srv, w).IPs(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.count() != 2 || len(w.d) != 1 || w.d[0] != 7*time.Second {
		t.Errorf("%d attempts, waits %v; want 2 attempts and one wait of exactly Retry-After (7s)", s.count(), w.d)
	}

	srv, s = start(t, status(503, `{"error":"Plan error: Unable to lookup subscription plan. Please try again in a few minutes."}`, "Retry-After", "120"), ok)
	w = &waits{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := newClient(t, srv, w).IPs(ctx)
	var apiErr *client.Error
	if !errors.Is(err, client.ErrUnavailable) || !errors.As(err, &apiErr) || apiErr.RetryAfter != 2*time.Minute || !strings.Contains(err.Error(), "Plan error") {
		t.Fatalf("error %v, want ErrUnavailable with the server's sentence and Retry-After 2m", err)
	}
	if s.count() != 1 || len(w.d) != 0 {
		t.Errorf("%d attempts, waits %v; a wait beyond the deadline must not start", s.count(), w.d)
	}
}

func TestBrokenConnectionIsRetriedWithTheSameIdempotencyKey(t *testing.T) {
	srv, s := start(t, reset, status(200, `{"ip":"192.0.2.9"}`))
	w := &waits{}
	ip, err := newClient(t, srv, w).AddIP(context.Background(), "192.0.2.9")
	if err != nil || ip != "192.0.2.9" {
		t.Fatalf("AddIP = %q, %v", ip, err)
	}
	if s.count() != 2 || len(w.d) != 1 || w.d[0] < time.Second {
		t.Fatalf("%d attempts, waits %v; want a retry after ≥1s", s.count(), w.d)
	}
	k1, k2 := s.attempts[0].Header.Get("Idempotency-Key"), s.attempts[1].Header.Get("Idempotency-Key")
	if k1 == "" || k1 != k2 {
		t.Errorf("Idempotency-Key %q then %q, want the same non-empty key on the retry", k1, k2)
	}
	srv2, s2 := start(t, ok)
	newClient(t, srv2, w).AddIP(context.Background(), "192.0.2.10")
	if k3 := s2.attempts[0].Header.Get("Idempotency-Key"); k3 == "" || k3 == k1 {
		t.Errorf("a new change reused key %q", k3)
	}
}

// TestBusyKeyWaitsForTheFirstAttempt: a retry answered 409 (its first attempt still runs on the
// server) waits Retry-After and asks again with the same key; a 422 (a key reused for another request)
// is not retried.
func TestBusyKeyWaitsForTheFirstAttempt(t *testing.T) {
	busy := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "1")
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusConflict)
		w.Write([]byte(`{"error":"A request with this Idempotency-Key is still being processed."}`))
	}
	srv, s := start(t, busy, status(200, `{"ip":"192.0.2.9"}`))
	w := &waits{}
	ip, err := newClient(t, srv, w).AddIP(context.Background(), "192.0.2.9")
	if err != nil || ip != "192.0.2.9" || s.count() != 2 || len(w.d) != 1 || w.d[0] != time.Second {
		t.Fatalf("AddIP = %q, %v after %d attempts and waits %v; want the answer after one wait of Retry-After", ip, err, s.count(), w.d)
	}
	if k1, k2 := s.attempts[0].Header.Get("Idempotency-Key"), s.attempts[1].Header.Get("Idempotency-Key"); k1 == "" || k1 != k2 {
		t.Errorf("keys %q then %q, want the same", k1, k2)
	}
	srv2, s2 := start(t, status(422, `{"error":"This Idempotency-Key was already used with another request."}`))
	if _, err := newClient(t, srv2, w).AddIP(context.Background(), "192.0.2.9"); !errors.Is(err, client.ErrConflict) || s2.count() != 1 {
		t.Errorf("a 422: %v after %d attempts, want ErrConflict at once", err, s2.count())
	}
}

func TestSlowAnswerEndsAtTheDeadline(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv, s := start(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := newClient(t, srv, &waits{}).IPs(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want the caller's deadline", err)
	}
	if s.count() != 1 {
		t.Errorf("%d attempts after the deadline, want 1", s.count())
	}
}

func TestClientErrorsAreNeverRetried(t *testing.T) {
	tests := []struct {
		code int
		body string
		kind error
	}{
		{400, `{"error":"Invalid form data","fields":{"ip":["\"x\" is not a valid IPv4 or IPv6 address."]}}`, client.ErrBadRequest},
		{401, `{"error":"Authentication required: use HTTP Basic with your account's username and password."}`, client.ErrUnauthorized},
		{402, `{"error":"Your plan \"small\" allows 2 IP addresses; upgrade your plan to add more."}`, client.ErrPaymentRequired},
		{403, `{"error":"Sub-accounts cannot use the API; use the account's username and password."}`, client.ErrForbidden},
		{404, `{"error":"Sub-account not found."}`, client.ErrNotFound},
		{405, ``, client.ErrMethodNotAllowed},
	}
	for _, tt := range tests {
		srv, s := start(t, status(tt.code, tt.body))
		w := &waits{}
		_, err := newClient(t, srv, w).AddIP(context.Background(), "x")
		var apiErr *client.Error
		if !errors.Is(err, tt.kind) || !errors.As(err, &apiErr) || apiErr.Status != tt.code || apiErr.Hint == "" {
			t.Errorf("%d: error %v, want kind %v with a hint", tt.code, err, tt.kind)
			continue
		}
		var sent struct{ Error string }
		if json.Unmarshal([]byte(tt.body), &sent); tt.body != "" && apiErr.Message != sent.Error {
			t.Errorf("%d: message %q, want the server's sentence %q", tt.code, apiErr.Message, sent.Error)
		}
		if s.count() != 1 || len(w.d) != 0 {
			t.Errorf("%d: %d attempts, %d waits; want no retry", tt.code, s.count(), len(w.d))
		}
	}
	srv, _ := start(t, status(400, `{"error":"Invalid form data","fields":{"ip":["bad"]}}`))
	_, err := newClient(t, srv, &waits{}).AddIP(context.Background(), "x")
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Fields["ip"][0] != "bad" || !strings.Contains(err.Error(), "ip: bad") {
		t.Errorf("form error %v: fields not carried", err)
	}
}

func TestRedirectsOnlyToHTTPSOnTheSameHost(t *testing.T) {
	secure, secureLog := start(t, ok)
	port := secure.URL[strings.LastIndex(secure.URL, ":")+1:]
	for _, tt := range []struct {
		name, location string
		wantErr        error
		secureAttempts int
	}{
		{"to https on the same host", "https://127.0.0.1:" + port + "/api/ips/", nil, 1},
		{"to another host", "https://localhost:" + port + "/api/ips/", client.ErrInsecureRedirect, 0},
		{"to plain http", "http://127.0.0.1:" + port + "/api/ips/", client.ErrInsecureRedirect, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := secureLog.count()
			plainLog := &script{answers: []func(http.ResponseWriter, *http.Request){func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, tt.location, http.StatusFound)
			}}}
			plain := httptest.NewServer(plainLog)
			defer plain.Close()
			c, err := client.New(plain.URL, "alice", "alice-password", client.WithHTTPClient(secure.Client()), client.WithSleep((&waits{}).sleep))
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.IPs(context.Background())
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if got := plainLog.attempts[0].Header.Get("Authorization"); got != "" {
				t.Errorf("credentials sent over plain HTTP: %q", got)
			}
			if got := secureLog.count() - before; got != tt.secureAttempts {
				t.Fatalf("the redirect target got %d requests, want %d", got, tt.secureAttempts)
			}
			if tt.secureAttempts == 1 {
				if user, _, ok := secureLog.attempts[len(secureLog.attempts)-1].BasicAuth(); !ok || user != "alice" {
					t.Errorf("the HTTPS target did not get the credentials")
				}
			}
		})
	}
}

func TestUntrustedCertificateFailsAtOnce(t *testing.T) {
	srv, s := start(t, ok)
	w := &waits{}
	c, err := client.New(srv.URL, "alice", "alice-password", client.WithSleep(w.sleep)) // system roots only
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.IPs(context.Background())
	if !errors.Is(err, client.ErrUntrustedCertificate) || !strings.Contains(err.Error(), "WithRootCAs") {
		t.Fatalf("error %v, want ErrUntrustedCertificate with a hint", err)
	}
	if s.count() != 0 || len(w.d) != 0 {
		t.Errorf("%d requests reached the handler after %d waits; the password must never be sent and nothing retried", s.count(), len(w.d))
	}
}

func TestDeadlineDuringBackoffNamesTheLastFailure(t *testing.T) {
	srv, _ := start(t, ok)
	srv.Close() // nothing listens any more
	ctx, cancel := context.WithCancel(context.Background())
	c, err := client.New(srv.URL, "alice", "alice-password", client.WithHTTPClient(srv.Client()),
		client.WithSleep(func(context.Context, time.Duration) error { cancel(); return context.Canceled }))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.IPs(ctx)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "last attempt") || !strings.Contains(err.Error(), "refused") {
		t.Errorf("error %v, want the cancellation and the refused connection it interrupted", err)
	}
}
