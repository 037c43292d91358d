package web

import (
	"context"
	"net/http"
	"strings"

	"github.com/exitmesh/exitmesh/internal/account"
	"github.com/exitmesh/exitmesh/internal/domain"
)

func (s *Server) hostnamesPage(w http.ResponseWriter, r *http.Request, v *visitor) {
	s.showHostnames(w, r, v, page{}, http.StatusOK)
}

// hostnamesChange adds or deletes an authorized hostname.
func (s *Server) hostnamesChange(w http.ResponseWriter, r *http.Request, v *visitor) {
	var p page
	name := strings.TrimSpace(r.PostFormValue("hostname"))
	status := s.change(r, v, &p, func(ctx context.Context, c *account.Caller) (string, error) {
		if r.PostFormValue("action") == "delete" {
			return name + " is no longer authorized.", s.cfg.Accounts.RemoveHostname(ctx, c, "", name)
		}
		h, err := s.cfg.Accounts.AddHostname(ctx, c, "", name)
		return h.Name + " is authorized: requests from " + h.IP.String() + " need no password while it resolves there.", err
	})
	s.showHostnames(w, r, v, p, status)
}

// hostnameRow is an authorized hostname as the page lists it.
type hostnameRow struct {
	Hostname, IP string // IP is "" while the hostname does not resolve
}

func (s *Server) showHostnames(w http.ResponseWriter, r *http.Request, v *visitor, p page, status int) {
	p.Title, p.Nav = "Hostnames", "hostnames"
	c, status := s.read(r, v, &p, status)
	var rows []hostnameRow
	if c != nil {
		for _, h := range c.Account.Hostnames {
			rows = append(rows, hostnameRow{Hostname: h.Name, IP: hostnameIP(h)})
		}
	}
	p.Data = rows
	s.render(w, status, "hostnames", v, p)
}

func hostnameIP(h domain.Hostname) string {
	if h.IP.IsValid() {
		return h.IP.String()
	}
	return ""
}
