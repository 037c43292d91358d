package proxy

import (
	"net/http"
	"net/netip"
	"strings"
)

// stripClientHeaders removes what must never reach an origin. httputil.ReverseProxy has already
// removed the RFC 9110 §7.6.1 hop-by-hop headers (Proxy-Authorization and Proxy-Connection among them)
// and every header named in Connection; this adds every other Proxy-* header and the X-ProxyMesh-*
// steering headers. Keys are canonical because net/http canonicalizes parsed header names.
func stripClientHeaders(h http.Header) {
	for k := range h {
		if strings.HasPrefix(k, "Proxy-") || strings.HasPrefix(k, "X-Proxymesh-") {
			delete(h, k)
		}
	}
}

// setExitHeaders marks a response as served through exit ip, replacing any such header an origin sent.
func setExitHeaders(h http.Header, ip, notFound netip.Addr) {
	for k := range h {
		if strings.HasPrefix(http.CanonicalHeaderKey(k), "X-Proxymesh-") {
			delete(h, k)
		}
	}
	h[headerExitIP] = []string{ip.String()}
	if notFound.IsValid() {
		h[headerNotFound] = []string{notFound.String()}
	}
}
