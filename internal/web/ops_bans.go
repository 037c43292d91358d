package web

import (
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/internal/bans"
	"github.com/exitmesh/exitmesh/internal/domain"
)

// opsBan is a ban in force as the bans page lists it.
type opsBan struct {
	domain.Ban
	Left string // "14 more minutes"
}

func (s *Server) opsBansPage(w http.ResponseWriter, r *http.Request, v *visitor) {
	s.showOpsBans(w, r, v, page{}, http.StatusOK)
}

// opsBansChange lifts a ban for the whole network: the store forgets it now, this node's tracker
// at once, and every other node within a sync interval (its ban sharing reconciles with the store).
func (s *Server) opsBansChange(w http.ResponseWriter, r *http.Request, v *visitor) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	var p page
	status := http.StatusOK
	ip, err := netip.ParseAddr(strings.TrimSpace(r.PostFormValue("ip")))
	switch {
	case r.PostFormValue("action") != "lift":
		p.Error, status = "Unknown action.", http.StatusBadRequest
	case err != nil:
		p.Error, status = "Invalid IP address.", http.StatusBadRequest
	default:
		if err := s.cfg.Store.LiftBan(r.Context(), ip); err != nil {
			status = s.opsFailed(&p, err)
			break
		}
		s.cfg.Bans.Unban(ip)
		ip = ip.Unmap()
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
	list, err := s.cfg.Store.ListBansPage(r.Context(), domain.BanQuery{Prefix: q, After: after, Limit: opsListMax})
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
	now := time.Now()
	rows := make([]opsBan, 0, len(list.Bans))
	for _, b := range list.Bans {
		if left := b.Until.Sub(now); left > 0 {
			rows = append(rows, opsBan{Ban: b, Left: bans.Remaining(left)})
		}
	}
	p.Data = struct {
		Query, After string
		Bans         []opsBan
		Next         string
	}{q, after, rows, list.Next}
	s.render(w, status, "ops_bans", v, p)
}
