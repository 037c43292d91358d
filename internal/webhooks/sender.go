package webhooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/egress"
	"github.com/exitmesh/exitmesh/internal/loop"
)

// Store is the part of domain.Store the Sender uses.
type Store interface {
	RouteWebhookEvents(ctx context.Context, routes []domain.WebhookRoute, limit int) (int, error)
	ClaimWebhookDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]domain.WebhookDelivery, error)
	FinishWebhookDelivery(ctx context.Context, id int64, a domain.WebhookAttempt) error
	NoteExpiringTokens(ctx context.Context, now time.Time, limit int) (int, error)
}

// Route is an operator webhook: a domain.WebhookRoute and the secret its deliveries are signed with.
type Route struct {
	domain.WebhookRoute
	Secret string
}

const (
	// Timeout bounds one delivery: connecting, sending, and reading the answer's status.
	Timeout = 10 * time.Second
	// lease is how long a claimed delivery is the claimer's: longer than a delivery takes, so that
	// only a node that died mid-delivery lets another send it again.
	lease = 4 * Timeout
	// batch bounds the events routed per transaction; parallel bounds the deliveries claimed at
	// once, which are all in flight together.
	batch    = 50
	parallel = 8
	// firstRetry is the wait after a first failure; each failure doubles it, up to maxRetry.
	firstRetry = 10 * time.Second
	maxRetry   = time.Hour
	// tokenScan is how often tokens close to expiry are looked for.
	tokenScan = time.Minute
)

// Sender routes and delivers events. Run is its one loop.
type Sender struct {
	Store    Store
	Routes   []Route
	Dialer   func() *egress.Dialer // the current one: customers' URLs go through its policy; operators' are trusted
	Interval time.Duration         // between steps; how soon an event leaves
	Log      *slog.Logger
	Now      func() time.Time // nil: time.Now
	// Delivered counts attempts by result ("delivered", "failed", "retry"); nil: not counted.
	Delivered func(result string)

	once               sync.Once
	customer, operator *http.Client
	lastTokenScan      time.Time
}

// Run steps every Interval until ctx ends, then closes its idle connections to receivers.
func (s *Sender) Run(ctx context.Context) {
	loop.Loop{Interval: s.Interval, Timeout: lease, Now: true, Step: s.Step, Log: s.log(),
		Failing: "webhook delivery failed", Recovered: "webhook delivery works again"}.Run(ctx)
	s.once.Do(s.init)
	s.customer.CloseIdleConnections()
	s.operator.CloseIdleConnections()
}

// Step notes expiring tokens (once a minute), routes every recorded event, and makes every due
// delivery attempt, waiting for them.
func (s *Sender) Step(ctx context.Context) error {
	s.once.Do(s.init)
	now := s.now()
	if now.Sub(s.lastTokenScan) >= tokenScan {
		if _, err := s.Store.NoteExpiringTokens(ctx, now, batch); err != nil {
			return err
		}
		s.lastTokenScan = now
	}
	routes := make([]domain.WebhookRoute, len(s.Routes))
	for i, r := range s.Routes {
		routes[i] = r.WebhookRoute
	}
	for {
		n, err := s.Store.RouteWebhookEvents(ctx, routes, batch)
		if err != nil {
			return err
		}
		if n < batch {
			break
		}
	}
	// Claim no more than can be sent at once, so that every claimed delivery is attempted within one
	// Timeout, long before its lease ends; and claim no more once the step could not finish them.
	for {
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < 2*Timeout {
			return nil
		}
		ds, err := s.Store.ClaimWebhookDeliveries(ctx, s.now(), lease, parallel)
		if err != nil || len(ds) == 0 {
			return err
		}
		if err := s.deliverAll(ctx, ds); err != nil {
			return err
		}
		if len(ds) < parallel {
			return nil
		}
	}
}

// deliverAll attempts ds, parallel at a time, and records each outcome.
func (s *Sender) deliverAll(ctx context.Context, ds []domain.WebhookDelivery) error {
	var (
		wg    sync.WaitGroup
		slots = make(chan struct{}, parallel)
		mu    sync.Mutex
		errs  []error
	)
	for _, d := range ds {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			if err := s.deliverOne(ctx, d); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s *Sender) deliverOne(ctx context.Context, d domain.WebhookDelivery) error {
	err := s.send(ctx, d)
	if ctx.Err() != nil {
		return nil // stopping: the lease runs out and the delivery is sent again
	}
	a := domain.WebhookAttempt{At: s.now()}
	result := "delivered"
	if err != nil {
		a.Error = err.Error()
		a.Next = nextAttempt(d, a.At)
		result = "retry"
		if a.Next.IsZero() {
			result = "failed"
			s.log().Warn("webhook delivery given up", "event", d.EventID, "type", d.Event, "url", redact(d.URL),
				"attempts", d.Attempts+1, "err", err)
		}
	}
	if s.Delivered != nil {
		s.Delivered(result)
	}
	if err := s.Store.FinishWebhookDelivery(ctx, d.ID, a); err != nil {
		return err
	}
	return nil
}

// nextAttempt is when to try d again after a failure at at: 10 s after the first, doubling up to an
// hour, with ±20% jitter so that a receiver coming back is not hit by every node at once; the last
// attempt is at the end of domain.WebhookRetention, and after it none (zero).
func nextAttempt(d domain.WebhookDelivery, at time.Time) time.Time {
	end := d.Created.Add(domain.WebhookRetention)
	if !at.Before(end) {
		return time.Time{}
	}
	wait := firstRetry
	for i := 0; i < d.Attempts && wait < maxRetry; i++ {
		wait *= 2
	}
	wait = min(wait, maxRetry)
	wait += time.Duration((rand.Float64()*0.4 - 0.2) * float64(wait))
	next := at.Add(wait)
	if next.After(end) {
		next = end
	}
	return next
}

// send makes one attempt: a signed POST of the body, answered 2xx.
func (s *Sender) send(ctx context.Context, d domain.WebhookDelivery) error {
	secret, client := d.Secret, s.customer
	if d.Operator {
		client = s.operator
		secret = ""
		for _, r := range s.Routes {
			if r.URL == d.URL {
				secret = r.Secret
				break
			}
		}
		if secret == "" {
			return fmt.Errorf("no webhook with this URL in this node's config any more")
		}
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(d.Body))
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "exitmesh-webhook/1")
	req.Header.Set("X-Exitmesh-Event", d.Event)
	req.Header.Set("X-Exitmesh-Event-Id", d.EventID)
	req.Header.Set(SignatureHeader, Sign(secret, s.now(), d.Body))
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", redact(d.URL), unwrapURLError(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("POST %s: answered %s", redact(d.URL), resp.Status)
	}
	return nil
}

func unwrapURLError(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}

// redact leaves a URL's query and credentials out of logs: both may hold the receiver's secrets.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

func (s *Sender) init() {
	newClient := func(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Client {
		return &http.Client{
			Transport: &http.Transport{
				Proxy:                 nil, // a webhook goes straight to its receiver
				DialContext:           dial,
				TLSHandshakeTimeout:   Timeout,
				ResponseHeaderTimeout: Timeout,
				MaxIdleConnsPerHost:   2,
				IdleConnTimeout:       time.Minute,
			},
			// A redirect could lead to an address the policy refuses at set time; the receiver's
			// URL is the one it gave.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Timeout:       Timeout,
		}
	}
	s.customer = newClient(func(ctx context.Context, _, addr string) (net.Conn, error) {
		return s.Dialer().Dial(ctx, netip.Addr{}, addr)
	})
	s.operator = newClient(func(ctx context.Context, _, addr string) (net.Conn, error) {
		return s.Dialer().DialTrusted(ctx, addr)
	})
}

func (s *Sender) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Sender) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// CheckURL vets a customer's webhook URL: http or https, a host, no credentials, at most
// domain.MaxWebhookURL bytes, and a destination the egress policy allows now (it is checked again
// at every delivery). It returns the URL as it will be used, or a refusal of the url field in words
// for the customer.
func CheckURL(ctx context.Context, d *egress.Dialer, raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	switch {
	case len(raw) > domain.MaxWebhookURL:
		return "", urlError("The URL is longer than %d characters.", domain.MaxWebhookURL)
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "":
		return "", urlError("Enter an http:// or https:// URL.")
	case u.User != nil:
		return "", urlError("Leave credentials out of the URL; check the signature instead.")
	}
	u.Fragment = ""
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	err = d.Check(ctx, net.JoinHostPort(u.Hostname(), port))
	if denied, ok := errors.AsType[*egress.DeniedError](err); ok {
		return "", urlError("This network does not send webhooks to %s: %s.", u.Host, denyReason(denied))
	} else if err != nil {
		return "", urlError("%s does not resolve to an address webhooks can reach.", u.Hostname())
	}
	return u.String(), nil
}

// urlError is a refusal of the url field, in the customer's words.
func urlError(format string, args ...any) error {
	return domain.FieldError("url", fmt.Sprintf(format, args...))
}

func denyReason(d *egress.DeniedError) string {
	switch d.Reason {
	case "port":
		return "the port is blocked"
	case egress.ReasonSelf:
		return "it is this network's own address"
	}
	return "it is a " + d.Reason + " address"
}
