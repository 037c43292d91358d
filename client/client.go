// Package client is the Go client of the exitmesh account API: every endpoint of API.md, one error
// kind per status class with the server's sentence and a hint, and the retry policy the contract
// recommends.
//
// Retries: a 500 is retried at least three times with exponential backoff and jitter starting at one
// second; a 503 is retried after its Retry-After (two minutes without one) if the caller's context
// allows the wait; a broken connection is retried like a 500. 4xx answers are never retried. Every
// change (POST) carries an Idempotency-Key that stays the same across its retries, so a change whose
// answer was lost is not applied twice: the server replays its first answer (on any node of the
// network); a retry that arrives while the first attempt still runs gets 409 and waits its Retry-After.
//
// Credentials never travel over plain HTTP: with an http:// base URL the client sends its first request
// without them and follows the server's 302 only to https:// on the same host.
package client

import (
	"context"
	cryptorand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// RetryPolicy says how the client retries. The zero value of each field takes its default.
type RetryPolicy struct {
	ServerErrorRetries int           // retries of a 500 or a broken connection; default (and minimum) 3
	InitialBackoff     time.Duration // the first wait after a 500; default (and minimum) 1s; doubles each time
	MaxBackoff         time.Duration // default 30s
	DefaultRetryAfter  time.Duration // the wait after a 503 without Retry-After; default 2m
	UnavailableRetries int           // retries of a 503; default 5
}

func (p *RetryPolicy) applyDefaults() {
	p.ServerErrorRetries = max(p.ServerErrorRetries, 3)
	p.InitialBackoff = max(p.InitialBackoff, time.Second)
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 30 * time.Second
	}
	if p.DefaultRetryAfter <= 0 {
		p.DefaultRetryAfter = 2 * time.Minute
	}
	if p.UnavailableRetries <= 0 {
		p.UnavailableRetries = 5
	}
}

// Client calls the account API of one exitmesh network as one account, with its username and
// password or with one of its API tokens.
type Client struct {
	base               *url.URL
	username, password string
	token              string // an API token, instead of the username and password
	sub                string // the sub-account the calls act on (ForSubAccount); "" for the account
	http               *http.Client
	retry              RetryPolicy
	sleep              func(ctx context.Context, d time.Duration) error
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient uses hc for requests (its CheckRedirect is replaced: the client follows redirects itself).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithRootCAs trusts the certificates in pool, e.g. a node's self-signed exitmesh-api.crt.
func WithRootCAs(pool *x509.CertPool) Option {
	return func(c *Client) {
		c.http = &http.Client{Timeout: c.http.Timeout, Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
}

// WithRetryPolicy replaces the retry policy.
func WithRetryPolicy(p RetryPolicy) Option { return func(c *Client) { c.retry = p } }

// WithSleep replaces how the client waits between attempts (tests record the waits instead).
func WithSleep(sleep func(ctx context.Context, d time.Duration) error) Option {
	return func(c *Client) { c.sleep = sleep }
}

// New returns a client of the API at baseURL (https://host:port, or http:// to be redirected).
func New(baseURL, username, password string, opts ...Option) (*Client, error) {
	if username == "" || password == "" {
		return nil, errors.New("exitmesh client: the account's username and password are required")
	}
	return newClient(baseURL, &Client{username: username, password: password}, opts)
}

// NewWithToken returns a client that authenticates with an API token (Authorization: Bearer). A
// token cannot manage tokens: those calls answer ErrForbidden.
func NewWithToken(baseURL, token string, opts ...Option) (*Client, error) {
	if token == "" {
		return nil, errors.New("exitmesh client: the API token is required")
	}
	return newClient(baseURL, &Client{token: token}, opts)
}

func newClient(baseURL string, c *Client, opts []Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("exitmesh client: API address %q must be https://HOST[:PORT]", baseURL)
	}
	c.base, c.http, c.sleep = &url.URL{Scheme: u.Scheme, Host: u.Host}, &http.Client{Timeout: time.Minute}, sleepContext
	for _, o := range opts {
		o(c)
	}
	c.retry.applyDefaults()
	hc := *c.http
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.http = &hc
	return c, nil
}

// cloneWith returns a copy of params with name set to value.
func cloneWith(params url.Values, name, value string) url.Values {
	out := make(url.Values, len(params)+1)
	for k, v := range params {
		out[k] = v
	}
	out.Set(name, value)
	return out
}

func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// call is one API call across its attempts.
type call struct {
	method, path string
	params       url.Values
	idemKey      string
	target       *url.URL
}

// ForSubAccount returns a client whose calls on IPs, hostnames, proxy servers, tokens and usage act
// on the account's sub-account sub (API.md §1) instead of the account.
func (c *Client) ForSubAccount(sub string) *Client {
	cc := *c
	cc.sub = sub
	return &cc
}

// do performs method on path with params and decodes a JSON answer into out (nil: none expected).
func (c *Client) do(ctx context.Context, method, path string, params url.Values, out any) error {
	if c.sub != "" && !strings.HasPrefix(path, "/api/sub") && params.Get("username") == "" {
		params = cloneWith(params, "username", c.sub)
	}
	k := &call{method: method, path: path, params: params, target: c.base}
	if method == http.MethodPost {
		k.idemKey = cryptorand.Text()
	}
	serverFailures, unavailable, redirects := 0, 0, 0
	for {
		resp, err := c.attempt(ctx, k)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("exitmesh API %s %s: %w", method, path, ctx.Err())
			}
			if untrusted := untrustedCertificate(err); untrusted != nil {
				return untrusted // no retry makes a certificate trusted
			}
			if serverFailures++; serverFailures > c.retry.ServerErrorRetries {
				return &Error{kind: ErrServer, Status: 0, Message: "The API could not be reached: " + err.Error(),
					Hint: fmt.Sprintf("tried %d times; check the address and the network", serverFailures)}
			}
			if serr := c.sleep(ctx, c.backoff(serverFailures)); serr != nil {
				return fmt.Errorf("exitmesh API %s %s: %w before the API could be reached (last attempt: %v)", method, path, serr, err)
			}
			continue
		}
		switch {
		case resp.StatusCode == http.StatusFound:
			if redirects++; redirects > 3 {
				return errTooManyRedirects
			}
			if err := c.follow(k, resp); err != nil {
				return err
			}
		case resp.StatusCode < 300:
			return decode(resp, out)
		case resp.StatusCode == http.StatusInternalServerError:
			apiErr := readError(resp)
			if serverFailures++; serverFailures > c.retry.ServerErrorRetries {
				apiErr.Hint = fmt.Sprintf("the service failed %d times; retry later and quote request id %s", serverFailures, apiErr.RequestID)
				return apiErr
			}
			if err := c.sleep(ctx, c.backoff(serverFailures)); err != nil {
				return err
			}
		case resp.StatusCode == http.StatusServiceUnavailable, resp.StatusCode == http.StatusConflict && k.idemKey != "":
			// A 409 to a retry says its first attempt is still running on the server: wait for its answer.
			apiErr := readError(resp)
			wait := apiErr.RetryAfter
			if wait <= 0 {
				wait = c.retry.DefaultRetryAfter
			}
			if deadline, ok := ctx.Deadline(); unavailable >= c.retry.UnavailableRetries || ok && time.Until(deadline) < wait {
				return apiErr // the wait would outlast the caller's deadline: say so now
			}
			unavailable++
			if err := c.sleep(ctx, wait); err != nil {
				return err
			}
		default:
			return readError(resp) // 4xx: never retried
		}
	}
}

// backoff is the wait before retry n (1, 2, …): InitialBackoff·2^(n-1), capped, plus up to half again
// of jitter so that clients failed together do not retry together.
func (c *Client) backoff(n int) time.Duration {
	d := c.retry.InitialBackoff << (n - 1)
	if d <= 0 || d > c.retry.MaxBackoff {
		d = c.retry.MaxBackoff
	}
	return d + rand.N(d/2+1)
}

// attempt sends one request. Credentials go only to https:// targets.
func (c *Client) attempt(ctx context.Context, k *call) (*http.Response, error) {
	u := *k.target
	u.Path = k.path
	var body io.Reader
	if k.method == http.MethodGet {
		u.RawQuery = k.params.Encode()
	} else {
		body = strings.NewReader(k.params.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, k.method, u.String(), body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if k.idemKey != "" {
		req.Header.Set("Idempotency-Key", k.idemKey)
	}
	switch {
	case u.Scheme != "https":
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	default:
		req.SetBasicAuth(c.username, c.password)
	}
	return c.http.Do(req)
}

// ErrUntrustedCertificate is returned, without retries, when the API's TLS certificate does not verify.
var ErrUntrustedCertificate = errors.New("the API's TLS certificate is not trusted")

func untrustedCertificate(err error) error {
	var verify *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	if errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) {
		return fmt.Errorf("exitmesh API: %w (trust the node's certificate with WithRootCAs, or --cacert on the command line): %v",
			ErrUntrustedCertificate, err)
	}
	return nil
}

// ErrInsecureRedirect is returned when the server redirects anywhere but https:// on the same host.
var ErrInsecureRedirect = errors.New("exitmesh API redirected to another host or to plain HTTP; credentials were not sent")

var errTooManyRedirects = errors.New("exitmesh API redirected more than 3 times")

// follow accepts a 302 only to https:// on the same host name, for the rest of this call.
func (c *Client) follow(k *call, resp *http.Response) error {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Scheme != "https" || loc.Hostname() != k.target.Hostname() {
		return ErrInsecureRedirect
	}
	k.target = &url.URL{Scheme: loc.Scheme, Host: loc.Host}
	return nil
}

func decode(resp *http.Response, out any) error {
	defer resp.Body.Close()
	if out == nil || resp.StatusCode == http.StatusNoContent {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(out); err != nil {
		return fmt.Errorf("exitmesh API answer: %w", err)
	}
	return nil
}

// retryAfter reads a Retry-After in seconds.
func retryAfter(h http.Header) time.Duration {
	s, err := strconv.Atoi(h.Get("Retry-After"))
	if err != nil || s < 0 {
		return 0
	}
	return time.Duration(s) * time.Second
}
