package httphead

import (
	"strings"
	"testing"
)

// TestStreamFindsEachHead follows pipelined requests with bodies of both framings, fed in pieces
// of every size, and finds the bad head after them where it starts.
func TestStreamFindsEachHead(t *testing.T) {
	good := "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nGET / HTTP/1.1" + // a body that looks like a head
		"POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: t\r\n\r\n" +
		"GET /c HTTP/1.1\r\nHost: a\r\n\r\n"
	bad := "GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n"
	for piece := 1; piece <= len(good+bad); piece++ {
		s := NewStream(Config{})
		in := good + bad
		passed := 0
		var err *Error
		for off := 0; off < len(in) && err == nil; off += piece {
			var n int
			n, err = s.Feed([]byte(in[off:min(off+piece, len(in))]))
			passed += n
		}
		if err != errHostMismatch || s.Heads() != 3 {
			t.Fatalf("pieces of %d: err %v after %d heads, want %v after 3", piece, err, s.Heads(), errHostMismatch)
		}
		// What passed is the good requests and, at most, the bad head's lines before its last piece.
		if passed < len(good)-piece || passed > len(good)+len(bad)-1 {
			t.Fatalf("pieces of %d: %d bytes passed, want about %d", piece, passed, len(good))
		}
	}
}

func TestStreamRefusesBadChunking(t *testing.T) {
	head := "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	for _, body := range []string{
		"zz\r\n",                  // not hex
		"5\nhello\r\n",            // bare LF
		"5\r\nhelloXY",            // no CRLF after the data
		"10000000000000000\r\n",   // 17 hex digits
		"5 junk\r\n",              // junk, not an extension
		strings.Repeat("1", 5000), // endless size line
	} {
		_, err := NewStream(Config{}).Feed([]byte(head + body))
		if err == nil || err.Status != 400 {
			t.Errorf("chunked body %.20q: %v, want 400", body, err)
		}
	}
}
