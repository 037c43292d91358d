package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/exitmesh/exitmesh/internal/bans"
	"github.com/exitmesh/exitmesh/internal/egress"
	"github.com/exitmesh/exitmesh/internal/exits"
	"github.com/exitmesh/exitmesh/internal/ratelimit"
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
	Status     int
	Reason     string
	Message    string
	RetryAfter time.Duration // sent as Retry-After when positive
	Close      bool          // close the client's connection after the answer
	// Type is the RFC 9209 error type of the answer's Proxy-Status, with Params after it (e.g.
	// `rcode="NXDOMAIN"`); "" takes the type of Reason (statusTypes).
	Type, Params string
}

// statusTypes are the RFC 9209 error types of the proxy's refusals, by reason.
var statusTypes = map[string]string{
	"bad-request": "http_request_error", "bad-steering": "http_request_error",
	"auth-required": "http_request_denied", "auth-failed": "http_request_denied", "banned": "http_request_denied",
	"account-disabled": "http_request_denied", "proxy-not-authorized": "http_request_denied",
	"bandwidth-exceeded": "http_request_denied", "rate-limited": "http_request_denied", "egress-denied": "destination_ip_prohibited",
	"port-denied": "http_request_denied", "too-many-connections": "connection_limit_reached",
	"timeout": "connection_timeout", "dns-failed": "dns_error", "upstream-failed": "destination_unavailable",
	"no-exit": "destination_unavailable", "no-exit-in-country": "destination_unavailable", "no-exit-for-target": "destination_unavailable",
	"session-exit-unavailable": "destination_unavailable", "shutting-down": "proxy_internal_error",
}

// proxyStatus is the Proxy-Status field (RFC 9209) of a refusal from the proxy called name: an RFC
// 8941 list of one item, the proxy's name as a string, with the error type and its parameters.
func proxyStatus(name string, rf *refusal) string {
	t := rf.Type
	if t == "" {
		if t = statusTypes[rf.Reason]; t == "" {
			t = "proxy_internal_error"
		}
	}
	v := sfString(name) + "; error=" + t
	if rf.Params != "" {
		v += "; " + rf.Params
	}
	return v
}

// sfString is s as an RFC 8941 string: quoted, with \ and \" escaped, and only printable ASCII.
func sfString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := range len(s) {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c >= 0x20 && c < 0x7f:
			b.WriteByte(c)
		default:
			b.WriteByte('?')
		}
	}
	b.WriteByte('"')
	return b.String()
}

func (r *refusal) Error() string { return r.Message }

var (
	errAuthRequired  = &refusal{Status: http.StatusProxyAuthRequired, Reason: "auth-required", Message: "Proxy authentication required: send Proxy-Authorization (Basic, or Bearer with an API token) or use an authorized IP."}
	errAuthFailed    = &refusal{Status: http.StatusProxyAuthRequired, Reason: "auth-failed", Message: "Proxy authentication failed: wrong username or password."}
	errDisabled      = &refusal{Status: http.StatusForbidden, Reason: "account-disabled", Message: "This account is disabled."}
	errNotAuthorized = &refusal{Status: http.StatusForbidden, Reason: "proxy-not-authorized", Message: "This proxy server is not authorized for your account; add it to your account's proxy servers."}
	errNotProxy      = &refusal{Status: http.StatusBadRequest, Reason: "bad-request", Message: "Not a proxy request: send an absolute http:// URI or CONNECT host:port."}
	errShuttingDown  = &refusal{Status: http.StatusServiceUnavailable, Reason: "shutting-down", Message: "This proxy server is shutting down; retry.", Close: true}
	// errTooManyConnections answers an account over limits.connections_per_account; nothing was dialled.
	errTooManyConnections = &refusal{Status: http.StatusTooManyRequests, Reason: "too-many-connections", Message: "Too many requests and tunnels in flight for this account on this node; retry when one ends.", RetryAfter: time.Second}
	errOriginTimeout      = &refusal{Status: http.StatusGatewayTimeout, Reason: "timeout", Message: "The origin did not answer in time."}
	// errClientGone answers a client that left before the proxy could decide (while its password was
	// being checked). Nobody reads it; the status is nginx's "client closed request", for the metric.
	errClientGone = &refusal{Status: 499, Reason: "client-gone", Message: "The client closed the request."}
)

// errRateLimited answers a request over its plan's rate; one is allowed again after wait.
func errRateLimited(wait time.Duration) *refusal {
	return &refusal{Status: http.StatusTooManyRequests, Reason: "rate-limited",
		Message:    "Too many requests per second for this account's plan on this node; slow down.",
		RetryAfter: time.Duration(ratelimit.RetryAfter(wait)) * time.Second}
}

// errBanned answers a client whose IP is banned for retryAfter more. The connection is closed: a
// banned client gets nothing more on it.
func errBanned(retryAfter time.Duration) *refusal {
	return &refusal{
		Status:     http.StatusForbidden,
		Reason:     "banned",
		Message:    "Your IP address is temporarily banned for " + bans.Remaining(retryAfter) + " after too many failed authentications or requests.",
		RetryAfter: retryAfter,
		Close:      true,
	}
}

// failure maps an error from steering, exit choice or dialling to the proxy's answer. It is the one
// place where such errors become status codes.
func failure(err error) *refusal {
	var (
		r        *refusal
		steering *exits.SteeringError
		target   exits.TargetError
		denied   *egress.DeniedError
		netErr   net.Error
		dnsErr   *net.DNSError
	)
	switch {
	case errors.As(err, &r):
		return r
	case errors.As(err, &steering):
		return &refusal{Status: http.StatusBadRequest, Reason: "bad-steering", Message: "Invalid steering header " + steering.Error() + "."}
	case errors.Is(err, egress.ErrBadDestination):
		return &refusal{Status: http.StatusBadRequest, Reason: "bad-request", Message: "Invalid destination: want host:port with a port from 1 to 65535."}
	case errors.As(err, &denied) && denied.Reason == "port":
		return &refusal{Status: http.StatusForbidden, Reason: "port-denied", Message: "Destination port is blocked on this proxy."}
	case errors.As(err, &denied) && denied.Reason == egress.ReasonSelf:
		return &refusal{Status: http.StatusForbidden, Reason: "egress-denied", Message: "Destination not allowed: the proxy itself."}
	case errors.As(err, &denied):
		return &refusal{Status: http.StatusForbidden, Reason: "egress-denied", Message: fmt.Sprintf("Destination not allowed: %s address.", denied.Reason)}
	case errors.Is(err, exits.ErrSessionExit):
		return &refusal{Status: http.StatusServiceUnavailable, Reason: "session-exit-unavailable", Message: "The exit of this strict session is unavailable; the session does not move to another exit."}
	case errors.As(err, &target):
		return &refusal{Status: http.StatusServiceUnavailable, Reason: "no-exit-for-target", Message: "No exit is available for " + target.Target + " on this proxy server."}
	case errors.Is(err, exits.ErrNoCountryExit):
		return &refusal{Status: http.StatusServiceUnavailable, Reason: "no-exit-in-country", Message: "No exit is available in the requested country on this proxy server."}
	case errors.Is(err, exits.ErrNoExit):
		return &refusal{Status: http.StatusServiceUnavailable, Reason: "no-exit", Message: "No exit is available for this request."}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return errOriginTimeout
	case errors.As(err, &dnsErr):
		rf := &refusal{Status: http.StatusBadGateway, Reason: "dns-failed", Message: "Could not resolve " + dnsErr.Name + ".", Type: "dns_error"}
		if dnsErr.IsNotFound {
			rf.Params = `rcode="NXDOMAIN"`
		}
		return rf
	default:
		rf := &refusal{Status: http.StatusBadGateway, Reason: "upstream-failed", Message: "Could not connect to the destination."}
		var errno syscall.Errno
		switch {
		case errors.As(err, &errno) && errno == syscall.ECONNREFUSED:
			rf.Type = "connection_refused"
		case errors.As(err, &errno) && (errno == syscall.EHOSTUNREACH || errno == syscall.ENETUNREACH):
			rf.Type = "destination_ip_unroutable"
		}
		return rf
	}
}

// refuse writes the proxy's own answer to r and reports whether the connection may carry another
// request. exit is the exit chosen, if any. The answer names it in X-ProxyMesh-IP only when the exit
// was really used — it tried to reach the destination and failed (502, 504) — so clients can tell
// the proxy's refusals from an origin's answers.
func (cc *clientConn) refuse(r *http.Request, rf *refusal, exit *exits.Exit, notFound netip.Addr) bool {
	// A request body the proxy did not read would be taken for the next request: close instead. So
	// would the bytes a client sent behind a CONNECT head for the tunnel that did not open.
	keep := !rf.Close && !r.Close && r.Body == http.NoBody && r.ProtoAtLeast(1, 1) &&
		(r.Method != http.MethodConnect || cc.br.Buffered() == 0)
	text := statusText(rf.Status)
	h := http.Header{
		"Content-Type":           {"text/plain; charset=utf-8"},
		"X-Content-Type-Options": {"nosniff"},
		"Content-Length":         {strconv.Itoa(len(rf.Message) + 1)},
	}
	if rf.Status == http.StatusProxyAuthRequired {
		h.Set("Proxy-Authenticate", `Basic realm="exitmesh"`)
	}
	if rf.RetryAfter > 0 {
		h.Set("Retry-After", bans.RetryAfter(rf.RetryAfter))
	}
	if !keep {
		h.Set("Connection", "close")
	}
	if exit != nil && rf.Status >= http.StatusBadGateway && rf.Status != StatusBandwidthExceeded {
		setExitHeaders(h, exit.IP, notFound)
	} else if notFound.IsValid() {
		h[headerNotFound] = []string{notFound.String()}
	}
	h[headerError] = []string{rf.Reason}
	if cc.logging {
		var ip netip.Addr
		if exit != nil {
			ip = exit.IP
		}
		cc.entryOutcome(rf.Status, ip, rf.Reason)
	}
	h["Proxy-Status"] = []string{proxyStatus(cc.s.cfg.NodeName, rf)}
	w := cc.bw
	w.WriteString("HTTP/1.1 " + strconv.Itoa(rf.Status) + " " + text + "\r\n")
	writeHeader(w, h)
	w.WriteString("\r\n")
	if r.Method != http.MethodHead {
		w.WriteString(rf.Message + "\n")
	}
	err := w.Flush()
	cc.s.metrics.Error(rf.Reason)
	return keep && err == nil
}
