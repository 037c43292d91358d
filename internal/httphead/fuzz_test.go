package httphead

import "testing"

// FuzzParser checks that a head is refused or accepted the same whether it arrives whole or in two
// pieces, and that net/http reads every accepted head with the framing the Parser found.
func FuzzParser(f *testing.F) {
	for _, c := range heads {
		f.Add([]byte(c.head), uint16(len(c.head)/2))
	}
	f.Fuzz(func(t *testing.T, head []byte, split uint16) {
		lim := Config{MaxBytes: 1024, MaxFields: 16}
		n1, h1, e1 := NewParser(lim).Feed(head)
		p := NewParser(lim)
		cut := int(split) % (len(head) + 1)
		n2, h2, e2 := p.Feed(head[:cut])
		if h2 == nil && e2 == nil {
			n2, h2, e2 = p.Feed(head)
		}
		if e1 != e2 || n1 != n2 || (h1 == nil) != (h2 == nil) || (h1 != nil && *h1 != *h2) {
			t.Fatalf("%q: whole %d %v %v; split at %d: %d %v %v", head, n1, h1, e1, cut, n2, h2, e2)
		}
		if h1 != nil {
			sameAsNetHTTP(t, head[:n1], false)
		}
	})
}

// FuzzStream checks that a connection's bytes get the same verdict in any two pieces.
func FuzzStream(f *testing.F) {
	f.Add([]byte("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), uint16(40))
	f.Add([]byte("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n"), uint16(7))
	f.Fuzz(func(t *testing.T, in []byte, split uint16) {
		lim := Config{MaxBytes: 1024, MaxFields: 16}
		whole := NewStream(lim)
		n1, e1 := whole.Feed(in)
		parts := NewStream(lim)
		cut := int(split) % (len(in) + 1)
		n2, e2 := parts.Feed(in[:cut])
		if e2 == nil {
			var n int
			n, e2 = parts.Feed(in[cut:])
			n2 += n
		}
		if e1 != e2 || whole.Heads() != parts.Heads() {
			t.Fatalf("%q: whole %v after %d heads; split at %d: %v after %d heads", in, e1, whole.Heads(), cut, e2, parts.Heads())
		}
		if e1 == nil && (n1 != len(in) || n2 != len(in)) {
			t.Fatalf("%q: accepted but passed %d and %d bytes", in, n1, n2)
		}
	})
}
