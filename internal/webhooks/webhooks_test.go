package webhooks

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/egress"
)

// A signature verifies with the secret and body it was made with, and with nothing else; an old one
// is refused as a replay.
func TestSignAndVerify(t *testing.T) {
	body := []byte(`{"id":"evt_1","type":"bandwidth.80"}`)
	at := time.Unix(1_800_000_000, 0)
	sig := Sign("s3cret", at, body)
	if !strings.HasPrefix(sig, "t=1800000000,v1=") || len(sig) != len("t=1800000000,v1=")+64 {
		t.Fatalf("signature %q", sig)
	}
	if err := Verify("s3cret", sig, body, at.Add(time.Minute), 5*time.Minute); err != nil {
		t.Errorf("own signature: %v", err)
	}
	for _, c := range []struct {
		name, secret, header string
		body                 []byte
		now                  time.Time
	}{
		{"other secret", "other", sig, body, at},
		{"other body", "s3cret", sig, []byte(`{"id":"evt_2"}`), at},
		{"time changed", "s3cret", strings.Replace(sig, "t=1800000000", "t=1800000001", 1), body, at},
		{"replayed an hour later", "s3cret", sig, body, at.Add(time.Hour)},
		{"no signature", "s3cret", "t=1800000000", body, at},
		{"garbage", "s3cret", "sha256=abc", body, at},
	} {
		if err := Verify(c.secret, c.header, c.body, c.now, 5*time.Minute); err == nil {
			t.Errorf("%s: verified", c.name)
		}
	}
}

// Retries wait 10 s, then twice as long each time up to an hour (±20%), never past the 24 h
// retention, after which the delivery is given up.
func TestNextAttempt(t *testing.T) {
	created := time.Unix(1_800_000_000, 0)
	for _, c := range []struct {
		attempts int
		at       time.Time
		want     time.Duration // the wait before jitter
	}{
		{0, created, 10 * time.Second},
		{1, created.Add(10 * time.Second), 20 * time.Second},
		{3, created.Add(time.Minute), 80 * time.Second},
		{12, created.Add(5 * time.Hour), time.Hour},
	} {
		d := domain.WebhookDelivery{Created: created, Attempts: c.attempts}
		got := nextAttempt(d, c.at).Sub(c.at)
		if got < c.want*8/10 || got > c.want*12/10 {
			t.Errorf("after %d attempts: wait %v, want %v ±20%%", c.attempts, got, c.want)
		}
	}
	last := created.Add(domain.WebhookRetention - time.Minute)
	if got := nextAttempt(domain.WebhookDelivery{Created: created, Attempts: 30}, last); !got.Equal(created.Add(domain.WebhookRetention)) {
		t.Errorf("near the end: next %v, want the retention's end", got)
	}
	if got := nextAttempt(domain.WebhookDelivery{Created: created, Attempts: 31}, created.Add(domain.WebhookRetention)); !got.IsZero() {
		t.Errorf("at the end: next %v, want none (give up)", got)
	}
}

// CheckURL refuses internal and blocked destinations by the egress policy, resolving names through
// the dialer's lookup, and connects to nothing.
func TestCheckURLRefusesWithoutDialing(t *testing.T) {
	var dials []netip.AddrPort
	d := &egress.Dialer{
		Policy: &egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, DenyPorts: egress.DefaultDenyPorts},
		Lookup: func(_ context.Context, host string) ([]netip.Addr, error) {
			switch host {
			case "public.example":
				return []netip.Addr{netip.MustParseAddr("203.0.113.7")}, nil
			case "mixed.example": // one public address, one private: refused
				return []netip.Addr{netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("192.168.1.1")}, nil
			}
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		},
		DialTCP: func(_ context.Context, _, remote netip.AddrPort) (net.Conn, error) {
			dials = append(dials, remote)
			return nil, errors.New("no dial in this test")
		},
	}
	for _, c := range []struct{ url, want string }{
		{"https://public.example/hook?x=1", ""},
		{"http://127.0.0.1:8080/hook", ""},
		{"http://mixed.example/hook", "private address"},
		{"http://127.0.0.2/hook", "loopback address"},
		{"http://169.254.169.254/latest", "link-local"},
		{"http://[fd00::1]/hook", "private"},
		{"http://public.example:25/hook", "port is blocked"},
		{"http://nowhere.example/hook", "does not resolve"},
		{"mailto:ops@example.net", "http:// or https://"},
		{"https://user:pw@public.example/", "credentials"},
		{"https://public.example/" + strings.Repeat("a", domain.MaxWebhookURL), "longer than"},
	} {
		got, err := CheckURL(t.Context(), d, c.url)
		switch {
		case c.want == "" && (err != nil || got != c.url):
			t.Errorf("%s: %q, %v; want accepted", c.url, got, err)
		case c.want != "" && (err == nil || !strings.Contains(domain.ErrorMessage(err)+strings.Join(domain.ErrorFields(err)["url"], " "), c.want)):
			t.Errorf("%s: %v; want a refusal saying %q", c.url, err, c.want)
		}
	}
	if len(dials) != 0 {
		t.Errorf("CheckURL dialed %v", dials)
	}
}
