package mail_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/certs"
	"github.com/exitmesh/exitmesh/internal/mail"
	"github.com/exitmesh/exitmesh/internal/smtptest"
	"github.com/exitmesh/exitmesh/internal/tcptest"
)

func sender(t *testing.T, cfg mail.Config) *mail.Sender {
	t.Helper()
	s, err := mail.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// parse reads a recorded message and returns its headers and decoded body.
func parse(t *testing.T, m smtptest.Message) (netmail.Header, string) {
	t.Helper()
	msg, err := netmail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatalf("the message does not parse: %v\n%s", err, m.Data)
	}
	body := msg.Body
	if msg.Header.Get("Content-Transfer-Encoding") == "quoted-printable" {
		body = quotedprintable.NewReader(body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return msg.Header, string(b)
}

func TestSendPlainText(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	s := sender(t, mail.Config{Host: "127.0.0.1", Port: srv.Port(), From: "exitmesh <noreply@example.net>",
		Now: func() time.Time { return now }})
	if err := s.Send(t.Context(), mail.Message{To: "alice@example.com", Subject: "Confirm your email address",
		Body: "Hello.\n\n.A line starting with a dot.\nhttps://127.0.0.1:8443/confirm?token=abc\n"}); err != nil {
		t.Fatal(err)
	}
	m := srv.Wait(t)
	if m.From != "noreply@example.net" || len(m.To) != 1 || m.To[0] != "alice@example.com" || m.TLS || m.Username != "" {
		t.Errorf("envelope %q → %q (tls %v, auth %q), want noreply@example.net → alice@example.com, no TLS, no auth", m.From, m.To, m.TLS, m.Username)
	}
	h, body := parse(t, m)
	for name, want := range map[string]string{
		"From":                      `"exitmesh" <noreply@example.net>`,
		"To":                        "<alice@example.com>",
		"Subject":                   "Confirm your email address",
		"Date":                      "Wed, 04 Mar 2026 05:06:07 +0000",
		"MIME-Version":              "1.0",
		"Content-Type":              "text/plain; charset=utf-8",
		"Content-Transfer-Encoding": "7bit",
		"Auto-Submitted":            "auto-generated",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if id := h.Get("Message-ID"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@example.net>") {
		t.Errorf("Message-ID %q, want <random@example.net>", id)
	}
	want := "Hello.\r\n\r\n.A line starting with a dot.\r\nhttps://127.0.0.1:8443/confirm?token=abc\r\n"
	if body != want {
		t.Errorf("body %q, want %q (CRLF line ends, the dot line intact)", body, want)
	}
}

func TestSendUTF8(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	s := sender(t, mail.Config{Host: "127.0.0.1", Port: srv.Port(), From: "noreply@example.net"})
	subject, text := "Bestätigen Sie Ihre E-Mail-Adresse", "Grüße — "+strings.Repeat("x", 120)+"\n"
	if err := s.Send(t.Context(), mail.Message{To: "alice@example.com", Subject: subject, Body: text}); err != nil {
		t.Fatal(err)
	}
	h, body := parse(t, srv.Wait(t))
	got, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if err != nil || got != subject || h.Get("Subject") == subject {
		t.Errorf("Subject %q decodes to %q (%v), want it encoded and decoding to %q", h.Get("Subject"), got, err, subject)
	}
	if h.Get("Content-Transfer-Encoding") != "quoted-printable" || body != strings.ReplaceAll(text, "\n", "\r\n") {
		t.Errorf("body (%s) %q, want %q", h.Get("Content-Transfer-Encoding"), body, text)
	}
}

func TestSendSTARTTLSAndAuth(t *testing.T) {
	cert, certPEM, _, err := certs.SelfSigned("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	srv := smtptest.Start(t, smtptest.Options{TLS: &tls.Config{Certificates: []tls.Certificate{cert}},
		Username: "mailer", Password: "s3cret"})
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	cfg := mail.Config{Host: "127.0.0.1", Port: srv.Port(), From: "noreply@example.net", StartTLS: true,
		Username: "mailer", Password: "s3cret", TLSConfig: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}}
	if err := sender(t, cfg).Send(t.Context(), mail.Message{To: "bob@example.com", Subject: "s", Body: "b"}); err != nil {
		t.Fatal(err)
	}
	if m := srv.Wait(t); !m.TLS || m.Username != "mailer" {
		t.Errorf("message over TLS %v, authenticated as %q; want TLS and mailer", m.TLS, m.Username)
	}

	cfg.Password = "wrong"
	err = sender(t, cfg).Send(t.Context(), mail.Message{To: "bob@example.com", Subject: "s", Body: "b"})
	if err == nil || !strings.Contains(err.Error(), "auth as mailer") || strings.Contains(err.Error(), "wrong") {
		t.Errorf("wrong password: %v, want an auth error that does not repeat the password", err)
	}

	cfg.Password, cfg.TLSConfig = "s3cret", nil // the system roots do not trust the test certificate
	if err := sender(t, cfg).Send(t.Context(), mail.Message{To: "bob@example.com", Subject: "s", Body: "b"}); err == nil || !strings.Contains(err.Error(), "starttls") {
		t.Errorf("untrusted certificate: %v, want a starttls error", err)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("the server has %d messages, want only the first", n)
	}
}

func TestSendRefusesPlainTextWhenSTARTTLSIsRequired(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	s := sender(t, mail.Config{Host: "127.0.0.1", Port: srv.Port(), From: "noreply@example.net", StartTLS: true})
	err := s.Send(t.Context(), mail.Message{To: "alice@example.com", Subject: "s", Body: "b"})
	if err == nil || !strings.Contains(err.Error(), "does not offer STARTTLS") {
		t.Errorf("Send = %v, want a refusal naming STARTTLS", err)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d messages sent in plain text", n)
	}
}

// TestSendTimeout: a server that accepts and never answers costs the configured timeout, no more.
func TestSendTimeout(t *testing.T) {
	silent := tcptest.Serve(t, func(net.Conn) { <-t.Context().Done() })
	port := net.TCPAddrFromAddrPort(netip.MustParseAddrPort(silent)).Port
	s := sender(t, mail.Config{Host: "127.0.0.1", Port: port, From: "noreply@example.net",
		Timeout: 200 * time.Millisecond})
	start := time.Now()
	err := s.Send(t.Context(), mail.Message{To: "alice@example.com", Subject: "s", Body: "b"})
	if took := time.Since(start); err == nil || took > 5*time.Second {
		t.Errorf("Send = %v after %v, want an error after about 200ms", err, took)
	}

	// Cancelling the caller's context ends the wait too.
	s = sender(t, mail.Config{Host: "127.0.0.1", Port: port, From: "noreply@example.net", Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	if err := s.Send(ctx, mail.Message{To: "alice@example.com", Subject: "s", Body: "b"}); err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("Send with a cancelled context = %v after %v", err, time.Since(start))
	}
}

func TestSendRefusesBadInput(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	s := sender(t, mail.Config{Host: "127.0.0.1", Port: srv.Port(), From: "noreply@example.net"})
	for _, m := range []mail.Message{
		{To: "alice@example.com\r\nBcc: eve@example.com", Subject: "s"},
		{To: "Alice <alice@example.com>", Subject: "s"},
		{To: "alice@example.com", Subject: "s\r\nBcc: eve@example.com"},
	} {
		if err := s.Send(t.Context(), m); err == nil {
			t.Errorf("Send(%q, %q) succeeded", m.To, m.Subject)
		}
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d messages sent", n)
	}
	if _, err := mail.New(mail.Config{Host: "127.0.0.1", From: "not an address"}); err == nil {
		t.Error("New accepted a sender that is no address")
	}
}
