package proxy

import (
	"bufio"
	"net/http"
	"net/netip"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// hopHeaders are the hop-by-hop headers of RFC 9110 §7.6.1, with the non-standard ones proxies
// have always dropped, as httputil.ReverseProxy lists them. They never cross the proxy; Transfer-
// Encoding and Content-Length are written anew for the next hop's framing.
var hopHeaders = []string{
	"Connection",
	"Proxy-Connection", // non-standard but still sent by libcurl and rejected by e.g. google
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",      // canonicalized version of "TE"
	"Trailer", // not Trailers as per rfc2616; see errata https://www.rfc-editor.org/errata_search.php?eid=4522
	"Transfer-Encoding",
	"Upgrade",
}

// removeHopHeaders removes the hop-by-hop headers and every header named in Connection. It returns
// the protocol a request asks to upgrade to ("websocket"), or "".
func removeHopHeaders(h http.Header) (upgrade string) {
	if httpguts.HeaderValuesContainsToken(h["Connection"], "Upgrade") {
		upgrade = h.Get("Upgrade")
	}
	for _, line := range h["Connection"] {
		for name := range strings.SplitSeq(line, ",") {
			if name = strings.TrimSpace(name); name != "" {
				delete(h, http.CanonicalHeaderKey(name))
			}
		}
	}
	for _, name := range hopHeaders {
		delete(h, name)
	}
	return upgrade
}

// cleanRequestHeader removes from a client's request header what must never reach an origin: the
// hop-by-hop headers, every other Proxy-* header, the X-ProxyMesh-* steering headers, and the
// Forwarded and X-Forwarded-* headers (nothing reveals the client). Host is written apart, and so is
// the body's framing. Keys are canonical because net/http canonicalizes parsed header names. It
// returns the protocol the request asks to upgrade to, if any.
func cleanRequestHeader(h http.Header) (upgrade string) {
	te := httpguts.HeaderValuesContainsToken(h["Te"], "trailers")
	upgrade = removeHopHeaders(h)
	for k := range h {
		if strings.HasPrefix(k, "Proxy-") || strings.HasPrefix(k, "X-Proxymesh-") || strings.HasPrefix(k, "X-Forwarded-") {
			delete(h, k)
		}
	}
	for _, k := range []string{"Host", "Forwarded", "Content-Length", "Expect"} {
		delete(h, k)
	}
	if te {
		h["Te"] = []string{"trailers"} // the one TE value an end-to-end client may rely on
	}
	return upgrade
}

// setExitHeaders marks a response as served through exit ip, replacing any such header an origin sent.
func setExitHeaders(h http.Header, ip, notFound netip.Addr) {
	stripExitHeaders(h)
	h[headerExitIP] = []string{ip.String()}
	if notFound.IsValid() {
		h[headerNotFound] = []string{notFound.String()}
	}
}

// stripExitHeaders removes the X-ProxyMesh-* headers an origin sent: only the proxy says which exit
// served.
func stripExitHeaders(h http.Header) {
	for k := range h {
		if strings.HasPrefix(http.CanonicalHeaderKey(k), "X-Proxymesh-") {
			delete(h, k)
		}
	}
}

// writeExitHeaders writes the lines setExitHeaders would add, without building them first.
func writeExitHeaders(w *bufio.Writer, ip, notFound netip.Addr) {
	w.WriteString(headerExitIP + ": ")
	w.Write(ip.AppendTo(w.AvailableBuffer()))
	w.WriteString("\r\n")
	if notFound.IsValid() {
		w.WriteString(headerNotFound + ": ")
		w.Write(notFound.AppendTo(w.AvailableBuffer()))
		w.WriteString("\r\n")
	}
}

// writeHeader writes every header line of h.
func writeHeader(w *bufio.Writer, h http.Header) {
	for k, vs := range h {
		for _, v := range vs {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
}
