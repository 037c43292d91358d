package web

import (
	"net/http"
	"strings"

	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/operator"
)

func (s *Server) opsBansPage(w http.ResponseWriter, r *http.Request, v *visitor) {
	s.showOpsBans(w, r, v, page{}, http.StatusOK)
}

// opsBansChange lifts a ban for the whole network (operator.Service.LiftBan).
func (s *Server) opsBansChange(w http.ResponseWriter, r *http.Request, v *visitor) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	var p page
	status := http.StatusOK
	if r.PostFormValue("action") != "lift" {
		p.Error, status = "Unknown action.", http.StatusBadRequest
	} else if ip, err := s.cfg.Operator.LiftBan(r.Context(), r.PostFormValue("ip")); err != nil {
		status = s.opsFailed(&p, err)
	} else {
		s.opsDone(&p, v, "lift-ban", ip.String(), ip.String()+" is no longer banned: every node accepts it again within a sync interval.")
	}
	s.showOpsBans(w, r, v, p, status)
}

// showOpsBans renders a page of the bans in force whose IP starts with the search q, from after the
// IP in after, in the order of the IPs' text.
func (s *Server) showOpsBans(w http.ResponseWriter, r *http.Request, v *visitor, p page, status int) {
	p.Title, p.Nav = "Bans", "ops-bans"
	q := strings.TrimSpace(r.FormValue("q"))
	after := r.FormValue("after")
	list, err := s.cfg.Operator.BansPage(r.Context(), domain.BanQuery{Prefix: q, After: after, Limit: opsListMax})
	if domain.ErrorCode(err) == domain.EINVALID { // a search or a link the store refuses: say why, beside the form
		if p.Error == "" {
			p.Error = domain.ErrorMessage(err)
		}
		if status == http.StatusOK {
			status = http.StatusBadRequest
		}
	} else if err != nil {
		s.opsPageFailed(w, r, v, err)
		return
	}
	p.Data = struct {
		Query, After string
		Bans         []operator.BanRow
		Next         string
	}{q, after, list.Bans, list.Next}
	s.render(w, status, "ops_bans", v, p)
}
