package proxy

import (
	"bufio"
	"net/http"
	"net/netip"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/exitmesh/exitmesh/internal/httphead"
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
	upgrade = upgradeOf(h)
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

// What happens to a field of a client's request head on its way to the origin, or of an origin's
// answer head on its way to the client.
type fieldAction uint8

const (
	fieldKeep       fieldAction = iota // sent on as it came
	fieldDrop                          // never crosses the proxy
	fieldHost                          // request: Host, written with the target's authority
	fieldLength                        // Content-Length: the proxy writes the framing anew
	fieldCoding                        // Transfer-Encoding: likewise
	fieldTE                            // request: TE, of which only "trailers" goes on
	fieldConnection                    // Connection: an upgrade's is written anew, else dropped
	fieldUpgrade                       // Upgrade: sent on with an upgrade, else dropped
	fieldTrailer                       // answer: Trailer, sent on when the answer stays chunked
)

// hopField tells whether a field is hop-by-hop: one of hopHeaders, or named in Connection (whose
// values, as net/http parsed them from the same head, are connection).
func hopField(f httphead.Field, connection []string) bool {
	for _, name := range hopHeaders {
		if asciiEqualFold(f.Name, name) {
			return true
		}
	}
	return namedIn(f, connection)
}

// fateInitials holds the first letters, in both cases, of the names and prefixes fieldFate looks
// for besides those Connection names: a field starting otherwise skips the comparisons.
var fateInitials = func() (t [256]bool) {
	for _, name := range append([]string{"host", "content-length", "transfer-encoding", "te", "trailer",
		"connection", "upgrade", "x-proxymesh-", "x-forwarded-", "proxy-", "forwarded", "expect"}, hopHeaders...) {
		t[name[0]|0x20], t[name[0]&^0x20] = true, true
	}
	return t
}()

// namedIn tells whether Connection names a field.
func namedIn(f httphead.Field, connection []string) bool {
	for _, line := range connection {
		for line != "" {
			var name string
			name, line, _ = strings.Cut(line, ",")
			if name = strings.TrimSpace(name); name != "" && asciiEqualFold(f.Name, name) {
				return true
			}
		}
	}
	return false
}

// fieldFate decides what becomes of a field of a client's request (request) or of an origin's
// answer. What must never reach an origin is dropped — the hop-by-hop headers, every other Proxy-*
// header, the X-ProxyMesh-* steering headers, the Forwarded and X-Forwarded-* headers (nothing
// reveals the client), and Expect, which the proxy answers itself; Host, the body's framing, TE and
// an upgrade's fields are written by the proxy in the place the client put them. Of an answer, the
// hop-by-hop headers are dropped and so are X-ProxyMesh-* (only the proxy says which exit served).
// A name or prefix added here goes into fateInitials too.
func fieldFate(f httphead.Field, connection []string, request bool) fieldAction {
	if !fateInitials[f.Name[0]] { // most fields: only Connection can name them
		if namedIn(f, connection) {
			return fieldDrop
		}
		return fieldKeep
	}
	switch {
	case request && f.Is("host"):
		return fieldHost
	case f.Is("content-length"):
		return fieldLength
	case f.Is("transfer-encoding"):
		return fieldCoding
	case request && f.Is("te"):
		return fieldTE
	case !request && f.Is("trailer"):
		return fieldTrailer
	case f.Is("connection"):
		return fieldConnection
	case f.Is("upgrade"):
		return fieldUpgrade
	case f.HasPrefix("x-proxymesh-"), hopField(f, connection):
		return fieldDrop
	case request && (f.HasPrefix("proxy-") || f.HasPrefix("x-forwarded-") || f.Is("forwarded") || f.Is("expect")):
		return fieldDrop
	}
	return fieldKeep
}

// upgradeOf returns the protocol a request asks to upgrade to ("websocket"), or "".
func upgradeOf(h http.Header) string {
	if httpguts.HeaderValuesContainsToken(h["Connection"], "Upgrade") {
		return h.Get("Upgrade")
	}
	return ""
}

// asciiEqualFold compares b with s ignoring ASCII case, without converting either.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i, c := range b {
		d := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// writeField writes a field under the name its sender used with the proxy's value.
func writeField(w *bufio.Writer, f httphead.Field, value string) {
	w.Write(f.Name)
	w.WriteString(": ")
	w.WriteString(value)
	w.WriteString("\r\n")
}

// writeLine writes a field line as its sender wrote it.
func writeLine(w *bufio.Writer, f httphead.Field) {
	w.Write(f.Line)
	w.WriteString("\r\n")
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
