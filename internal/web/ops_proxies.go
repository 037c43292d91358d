package web

import "net/http"

// opsProxiesPage shows the catalogue with each proxy server's exits' health board and traffic
// today and this month (UTC).
func (s *Server) opsProxiesPage(w http.ResponseWriter, r *http.Request, v *visitor) {
	board, err := s.cfg.Operator.ProxyBoard(r.Context())
	if err != nil {
		s.opsPageFailed(w, r, v, err)
		return
	}
	s.render(w, http.StatusOK, "ops_proxies", v, page{Title: "Proxy servers", Nav: "ops-proxies", Data: board})
}
