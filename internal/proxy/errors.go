package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"

	"github.com/exitmesh/exitmesh/internal/egress"
	"github.com/exitmesh/exitmesh/internal/exits"
)

// Response headers the proxy adds, spelled as ProxyMesh spells them. They are set as exact map keys
// so they reach the wire in this case; clients compare header names case-insensitively anyway.
const (
	headerExitIP   = "X-ProxyMesh-IP"
	headerNotFound = "X-ProxyMesh-IP-Not-Found"
	headerError    = "X-ProxyMesh-Error"
)

// refusal is an answer the proxy itself gives instead of an origin's. Reason is the machine-readable
// X-ProxyMesh-Error value; Message is the sentence in the body.
type refusal struct {
	Status  int
	Reason  string
	Message string
}

func (r *refusal) Error() string { return r.Message }

var (
	errAuthRequired  = &refusal{http.StatusProxyAuthRequired, "auth-required", "Proxy authentication required: send Proxy-Authorization (Basic) or use an authorized IP."}
	errAuthFailed    = &refusal{http.StatusProxyAuthRequired, "auth-failed", "Proxy authentication failed: wrong username or password."}
	errDisabled      = &refusal{http.StatusForbidden, "account-disabled", "This account is disabled."}
	errNotAuthorized = &refusal{http.StatusForbidden, "proxy-not-authorized", "This proxy server is not authorized for your account; add it to your account's proxy servers."}
	errNotProxy      = &refusal{http.StatusBadRequest, "bad-request", "Not a proxy request: send an absolute http:// URI or CONNECT host:port."}
	errShuttingDown  = &refusal{http.StatusServiceUnavailable, "shutting-down", "This proxy server is shutting down; retry."}
	errOriginTimeout = &refusal{http.StatusGatewayTimeout, "timeout", "The origin did not answer in time."}
)

// failure maps an error from steering, exit choice or dialling to the proxy's answer. It is the one
// place where such errors become status codes.
func failure(err error) *refusal {
	var (
		r        *refusal
		steering *exits.SteeringError
		denied   *egress.DeniedError
		netErr   net.Error
	)
	switch {
	case errors.As(err, &r):
		return r
	case errors.As(err, &steering):
		return &refusal{http.StatusBadRequest, "bad-steering", "Invalid steering header " + steering.Error() + "."}
	case errors.Is(err, egress.ErrBadDestination):
		return &refusal{http.StatusBadRequest, "bad-request", "Invalid destination: want host:port with a port from 1 to 65535."}
	case errors.As(err, &denied) && denied.Reason == "port":
		return &refusal{http.StatusForbidden, "port-denied", "Destination port is blocked on this proxy."}
	case errors.As(err, &denied):
		return &refusal{http.StatusForbidden, "egress-denied", fmt.Sprintf("Destination not allowed: %s address.", denied.Reason)}
	case errors.Is(err, exits.ErrNoCountryExit):
		return &refusal{http.StatusServiceUnavailable, "no-exit-in-country", "No exit is available in the requested country on this proxy server."}
	case errors.Is(err, exits.ErrNoExit):
		return &refusal{http.StatusServiceUnavailable, "no-exit", "No exit is available for this request."}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return errOriginTimeout
	default:
		return &refusal{http.StatusBadGateway, "upstream-failed", "Could not connect to the destination."}
	}
}

// refuse writes the proxy's own answer. exit is the exit chosen, if any. The answer names it in
// X-ProxyMesh-IP only when the exit was really used — it tried to reach the destination and failed
// (502, 504) — so clients can tell the proxy's refusals from an origin's answers.
func (s *Server) refuse(w http.ResponseWriter, r *refusal, exit *exits.Exit, notFound netip.Addr) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	if r.Status == http.StatusProxyAuthRequired {
		h.Set("Proxy-Authenticate", `Basic realm="exitmesh"`)
	}
	if exit != nil && r.Status >= http.StatusBadGateway {
		setExitHeaders(h, exit.IP, notFound)
	} else if notFound.IsValid() {
		h[headerNotFound] = []string{notFound.String()}
	}
	h[headerError] = []string{r.Reason}
	w.WriteHeader(r.Status)
	w.Write([]byte(r.Message + "\n"))
	s.metrics.Error(r.Reason)
}
