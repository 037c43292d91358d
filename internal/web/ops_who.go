package web

import (
	"net/http"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// whoWindows are the spans the abuse page offers around the complaint's time.
var whoWindows = []string{"1h", "3h", "12h", "24h"}

// opsWhoPage answers an abuse complaint: the accounts and sub-accounts that used an exit IP in the
// hours around a time, from every node's records (operator.Service.WhoUsedExit, as "admin who").
func (s *Server) opsWhoPage(w http.ResponseWriter, r *http.Request, v *visitor) {
	p := page{Title: "Abuse: who used an exit", Nav: "ops-who"}
	q := r.URL.Query()
	data := struct {
		Exit, At, Window string
		Windows          []string
		Asked            bool
		Uses             []domain.ExitUse
	}{Exit: strings.TrimSpace(q.Get("exit")), At: q.Get("at"), Window: q.Get("window"), Windows: whoWindows}
	if data.Window == "" {
		data.Window = "1h"
	}
	status := http.StatusOK
	if data.Exit != "" || data.At != "" {
		data.Asked = true
		// <input type="datetime-local"> sends 2026-12-03T14:32, read as UTC as the page says.
		at, err := time.Parse("2006-01-02T15:04", data.At)
		window, werr := time.ParseDuration(data.Window)
		switch {
		case err != nil:
			p.Error, status = "Give the complaint's time, in UTC.", http.StatusBadRequest
		case werr != nil:
			p.Error, status = "Choose a window.", http.StatusBadRequest
		default:
			data.Uses, err = s.cfg.Operator.WhoUsedExit(r.Context(), data.Exit, at, window)
			if err != nil {
				status = s.opsFailed(&p, err)
			}
		}
	}
	p.Data = data
	s.render(w, status, "ops_who", v, p)
}
