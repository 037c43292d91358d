package config

import (
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSignupAndSMTPKeys(t *testing.T) {
	const file = `
dashboard:
  public_url: https://dash.example.net
  signup: {enabled: true, plan: starter, proxies: [us-ca, de], link_ttl: 24h, rate_limit: 3, rate_window: 30m}
smtp: {host: smtp.example.net, port: 2525, username: mailer, password: s3cret, from: "exitmesh <noreply@example.net>", starttls: false, timeout: 5s}
`
	c, err := Parse([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	wantSignup := Signup{Enabled: true, Plan: "starter", Proxies: []string{"us-ca", "de"}, LinkTTL: Duration(24 * time.Hour),
		RateLimit: 3, RateWindow: Duration(30 * time.Minute)}
	if c.Dashboard.PublicURL != "https://dash.example.net" || !reflect.DeepEqual(c.Dashboard.Signup, wantSignup) {
		t.Errorf("dashboard = %+v, want public_url https://dash.example.net and signup %+v", c.Dashboard, wantSignup)
	}
	wantSMTP := SMTP{Host: "smtp.example.net", Port: 2525, Username: "mailer", Password: "s3cret",
		From: "exitmesh <noreply@example.net>", StartTLS: false, Timeout: Duration(5 * time.Second)}
	if c.SMTP != wantSMTP {
		t.Errorf("smtp = %+v, want %+v", c.SMTP, wantSMTP)
	}

	// Absent keys: sign-up off, STARTTLS required, defaults for the rest.
	c, err = Parse([]byte("smtp: {host: smtp.example.net, from: noreply@example.net}"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.SMTP.StartTLS || c.SMTP.Port != 587 || c.SMTP.Timeout != Duration(10*time.Second) || c.Dashboard.Signup.Enabled {
		t.Errorf("defaults: smtp %+v, signup %+v; want starttls, port 587, timeout 10s, sign-up off", c.SMTP, c.Dashboard.Signup)
	}

	if _, err := Parse([]byte("dashboard: {signup: {enabeld: true}}")); err == nil || !strings.Contains(err.Error(), "dashboard.signup.enabeld: unknown key") {
		t.Errorf("a misspelled signup key: %v, want an unknown-key error", err)
	}
	if _, err := Parse([]byte("smtp: {start_tls: true}")); err == nil || !strings.Contains(err.Error(), "smtp.start_tls: unknown key") {
		t.Errorf("a misspelled smtp key: %v, want an unknown-key error", err)
	}
}

func TestValidateSignupAndSMTP(t *testing.T) {
	withSMTP := func(c *Config) {
		c.SMTP.Host, c.SMTP.From, c.SMTP.Username, c.SMTP.Password = "smtp.example.net", "noreply@example.net", "mailer", "secret"
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // the only error, or "" for none
	}{
		{"sign-up off by default", func(*Config) {}, ""},
		{"sign-up on", func(c *Config) { c.Dashboard.Signup.Enabled, c.Dashboard.Signup.Plan = true, "starter" }, ""},
		{"sign-up without a plan", func(c *Config) { c.Dashboard.Signup.Enabled = true }, "dashboard.signup.plan: required"},
		{"sign-up plan name", func(c *Config) { c.Dashboard.Signup.Enabled, c.Dashboard.Signup.Plan = true, "Starter" }, `dashboard.signup.plan: "Starter" must be`},
		{"sign-up proxy name", func(c *Config) { c.Dashboard.Signup.Proxies = []string{"us-ca", ""} }, "dashboard.signup.proxies[1]: required"},
		{"link ttl", func(c *Config) { c.Dashboard.Signup.LinkTTL = -1 }, "dashboard.signup.link_ttl: must be positive"},
		{"rate limit", func(c *Config) { c.Dashboard.Signup.RateLimit = -1 }, "dashboard.signup.rate_limit: must be positive"},
		{"rate window", func(c *Config) { c.Dashboard.Signup.RateWindow = -1 }, "dashboard.signup.rate_window: must be positive"},
		{"public url", func(c *Config) { c.Dashboard.PublicURL = "https://dash.example.net/base" }, ""},
		{"public url http", func(c *Config) { c.Dashboard.PublicURL = "http://dash.example.net" }, `dashboard.public_url: want an https:// URL such as https://dashboard.example.net, got "http://dash.example.net"`},
		{"public url host", func(c *Config) { c.Dashboard.PublicURL = "dash.example.net" }, "dashboard.public_url: want an https:// URL"},
		{"public url query", func(c *Config) { c.Dashboard.PublicURL = "https://dash.example.net/?a=b" }, "dashboard.public_url: want an https:// URL"},
		{"smtp", withSMTP, ""},
		{"smtp by ipv6", func(c *Config) { withSMTP(c); c.SMTP.Host = "::1" }, ""},
		{"smtp host with port", func(c *Config) { withSMTP(c); c.SMTP.Host = "smtp.example.net:25" }, `smtp.host: want a host name or IP address without a port (the port is smtp.port), got "smtp.example.net:25"`},
		{"smtp from required", func(c *Config) { withSMTP(c); c.SMTP.From = "" }, "smtp.from: required when smtp.host is set"},
		{"smtp from", func(c *Config) { withSMTP(c); c.SMTP.From = "exitmesh" }, `smtp.from: want an email address such as "exitmesh <noreply@example.net>", got "exitmesh"`},
		{"smtp port", func(c *Config) { withSMTP(c); c.SMTP.Port = 70000 }, "smtp.port: port 70000 out of range 1-65535"},
		{"smtp timeout", func(c *Config) { c.SMTP.Timeout = Duration(30 * time.Second) }, "smtp.timeout: must be positive and at most 20s, got 30s"},
		{"smtp password alone", func(c *Config) { withSMTP(c); c.SMTP.Username = "" }, "smtp.password: set without smtp.username"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig(t)
			tt.mutate(c)
			msgs := errorLines(c.Validate())
			switch {
			case tt.want == "" && len(msgs) != 0:
				t.Errorf("Validate() = %q, want no error", msgs)
			case tt.want != "" && (len(msgs) != 1 || !strings.HasPrefix(msgs[0], tt.want)):
				t.Errorf("Validate() = %q, want one error starting %q", msgs, tt.want)
			}
			for _, m := range msgs {
				if strings.Contains(m, "secret") {
					t.Errorf("Validate() leaks the SMTP password: %q", m)
				}
			}
		})
	}
}

func TestSMTPLogValueHidesPassword(t *testing.T) {
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("mail", "smtp", SMTP{Host: "smtp.example.net", Username: "mailer", Password: "s3cret"})
	if strings.Contains(b.String(), "s3cret") || !strings.Contains(b.String(), "smtp.host=smtp.example.net") {
		t.Errorf("logged %q: want the host and not the password", b.String())
	}
}
