package config

import (
	"fmt"
	"net/mail"
	"net/netip"
	"net/url"
	"strings"
)

// validateSignup checks dashboard.public_url, dashboard.signup and smtp. Messages never repeat
// smtp.password.
func (c *Config) validateSignup(p *problems) {
	if raw := c.Dashboard.PublicURL; raw != "" {
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			p.add("dashboard.public_url", "want an https:// URL such as https://dashboard.example.net, got %q", raw)
		}
	}
	s := c.Dashboard.Signup
	if s.Enabled {
		validName(p, "dashboard.signup.plan", s.Plan)
	}
	for i, name := range s.Proxies {
		validName(p, fmt.Sprintf("dashboard.signup.proxies[%d]", i), name)
	}
	positive(p, "dashboard.signup.link_ttl", s.LinkTTL)
	positive(p, "dashboard.signup.rate_window", s.RateWindow)
	if s.RateLimit <= 0 {
		p.add("dashboard.signup.rate_limit", "must be positive")
	}

	m := c.SMTP
	if m.Port < 1 || m.Port > 65535 {
		p.add("smtp.port", "port %d out of range 1-65535", m.Port)
	}
	if t := m.Timeout; t <= 0 || t > MaxSMTPTimeout {
		p.add("smtp.timeout", "must be positive and at most %s, got %s", MaxSMTPTimeout, t)
	}
	if m.Password != "" && m.Username == "" {
		p.add("smtp.password", "set without smtp.username")
	}
	if m.Host == "" {
		return
	}
	if _, err := netip.ParseAddr(m.Host); err != nil && strings.ContainsAny(m.Host, ":/ []") {
		p.add("smtp.host", "want a host name or IP address without a port (the port is smtp.port), got %q", m.Host)
	}
	if m.From == "" {
		p.add("smtp.from", "required when smtp.host is set")
	} else if _, err := mail.ParseAddress(m.From); err != nil {
		p.add("smtp.from", "want an email address such as \"exitmesh <noreply@example.net>\", got %q", m.From)
	}
}
