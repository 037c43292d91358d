package node

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/exitmesh/exitmesh/internal/mail"
	"github.com/exitmesh/exitmesh/internal/web"
)

// dashboardSignup is the dashboard's sign-up and email confirmation: links start with
// dashboard.public_url, or https://<the API listener's address>, and go out through smtp, or to
// the log when smtp.host is not set. It runs once the API listener is bound.
func (n *Node) dashboardSignup() (web.Signup, error) {
	d, m := n.cfg.Dashboard, n.cfg.SMTP
	s := web.Signup{Enabled: d.Signup.Enabled, Plan: d.Signup.Plan, Proxies: d.Signup.Proxies, PublicURL: d.PublicURL,
		LinkTTL: d.Signup.LinkTTL.D(), RateLimit: d.Signup.RateLimit, RateWindow: d.Signup.RateWindow.D()}
	if s.PublicURL == "" {
		s.PublicURL = "https://" + n.apiAddr
		if host, _, _ := net.SplitHostPort(n.apiAddr); d.Signup.Enabled && isUnspecified(host) {
			n.log.Warn("dashboard.public_url is not set and the API listens on every address: confirmation links name an address customers cannot open",
				"link_base", s.PublicURL)
		}
	}
	if m.Host == "" {
		if d.Signup.Enabled {
			n.log.Info("smtp.host is not set: confirmation links are logged, not emailed")
		}
		return s, nil
	}
	sender, err := mail.New(mail.Config{Host: m.Host, Port: m.Port, Username: m.Username, Password: m.Password,
		From: m.From, StartTLS: m.StartTLS, Timeout: m.Timeout.D()})
	if err != nil {
		return s, fmt.Errorf("smtp: %w", err)
	}
	s.Mailer = sender
	n.log.Info("confirmation links are emailed", "smtp", sender.Server(), "starttls", m.StartTLS)
	return s, nil
}

func isUnspecified(host string) bool {
	ip, err := netip.ParseAddr(host)
	return host == "" || err == nil && ip.IsUnspecified()
}
