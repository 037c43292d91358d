package httphead

import (
	"bytes"
	"net/netip"
)

// tchar of RFC 9110 §5.6.2, as a table: a lookup per byte on the hot path.
var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// hostChar are the characters of a reg-name or IPv4 address (RFC 3986 §3.2.2): unreserved,
// sub-delims and the % of pct-encoding.
var hostChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "-._~!$&'()*+,;=%" {
		t[c] = true
	}
	return t
}()

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tchar[c] {
			return false
		}
	}
	return true
}

// isScheme checks ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
func isScheme(b []byte) bool {
	for i, c := range b {
		alpha := 'a' <= c|0x20 && c|0x20 <= 'z'
		if !alpha && (i == 0 || !(isDigit(c) || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return len(b) > 0
}

// asciiEqualFold compares b with a lower-case ASCII word, ignoring case.
func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// splitAuthority splits host [":" port]; an IPv6 host keeps its brackets. ok is false when a
// bracket is unbalanced.
func splitAuthority(a []byte) (host, port []byte, hasPort, ok bool) {
	if len(a) > 0 && a[0] == '[' {
		end := bytes.IndexByte(a, ']')
		if end < 0 {
			return nil, nil, false, false
		}
		host, rest := a[:end+1], a[end+1:]
		if len(rest) == 0 {
			return host, nil, false, true
		}
		if rest[0] != ':' {
			return nil, nil, false, false
		}
		return host, rest[1:], true, true
	}
	if i := bytes.LastIndexByte(a, ':'); i >= 0 {
		return a[:i], a[i+1:], true, true
	}
	return a, nil, false, true
}

// validAuthority checks host [":" port] with a non-empty host; needPort asks for a port in
// 1–65535, as CONNECT's target must have.
func validAuthority(a []byte, needPort bool) bool {
	host, port, hasPort, ok := splitAuthority(a)
	if !ok || len(host) == 0 {
		return false
	}
	if host[0] == '[' {
		ip, err := netip.ParseAddr(string(host[1 : len(host)-1]))
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return false
		}
	} else {
		for _, c := range host {
			if !hostChar[c] {
				return false
			}
		}
	}
	n, digits := portValue(port)
	if !digits {
		return false
	}
	if needPort {
		return hasPort && n >= 1 && n <= 65535
	}
	return n <= 65535
}

// portValue reads *DIGIT (up to 5 digits); the empty port is 0.
func portValue(p []byte) (int, bool) {
	if len(p) > 5 {
		return 0, false
	}
	n := 0
	for _, c := range p {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// sameAuthority tells whether two authorities name the same host and port, hosts compared without
// case and a missing or empty port taken as defaultPort.
func sameAuthority(a, b []byte, defaultPort int) bool {
	ah, ap, _, aok := splitAuthority(a)
	bh, bp, _, bok := splitAuthority(b)
	if !aok || !bok || !bytes.EqualFold(ah, bh) {
		return false
	}
	an, _ := portValue(ap)
	bn, _ := portValue(bp)
	if len(ap) == 0 {
		an = defaultPort
	}
	if len(bp) == 0 {
		bn = defaultPort
	}
	return an == bn
}

// hostPart is an authority without its port.
func hostPart(a []byte) []byte {
	host, _, _, _ := splitAuthority(a)
	return host
}
