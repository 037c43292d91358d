package web

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/exitmesh/exitmesh/client"
)

func (s *Server) hostnamesPage(w http.ResponseWriter, r *http.Request, v *visitor) {
	s.showHostnames(w, r, v, page{}, http.StatusOK)
}

// hostnamesChange adds or deletes an authorized hostname through the API.
func (s *Server) hostnamesChange(w http.ResponseWriter, r *http.Request, v *visitor) {
	var p page
	var status int
	name := strings.TrimSpace(r.PostFormValue("hostname"))
	params := url.Values{"hostname": {name}}
	switch r.PostFormValue("action") {
	case "delete":
		status = s.change(r, v, &p, "/api/hostname/delete/", params, nil,
			func() string { return name + " is no longer authorized." })
	default:
		var added client.Hostname
		status = s.change(r, v, &p, "/api/hostname/add/", params, &added, func() string {
			return added.Hostname + " is authorized: requests from " + added.IP + " need no password while it resolves there."
		})
	}
	s.showHostnames(w, r, v, p, status)
}

func (s *Server) showHostnames(w http.ResponseWriter, r *http.Request, v *visitor, p page, status int) {
	p.Title, p.Nav = "Hostnames", "hostnames"
	var list struct{ Hostnames []client.Hostname }
	status = s.read(r, v, &p, status, "/api/hostnames/", nil, &list)
	p.Data = list.Hostnames
	s.render(w, status, "hostnames", v, p)
}
