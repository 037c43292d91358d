package web

import "net/http"

// opsWebhooksPage lists the newest webhook deliveries, to the operator's webhooks and customers',
// with their state and last attempt, so that an operator sees a receiver that stopped answering.
func (s *Server) opsWebhooksPage(w http.ResponseWriter, r *http.Request, v *visitor) {
	p := page{Title: "Webhooks", Nav: "ops-webhooks"}
	ds, err := s.cfg.Operator.WebhookDeliveries(r.Context())
	status := http.StatusOK
	if err != nil {
		status = s.opsFailed(&p, err)
	}
	p.Data = ds
	s.render(w, status, "ops_webhooks", v, p)
}
