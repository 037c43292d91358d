package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/exitmesh/exitmesh/internal/exits"
	"github.com/exitmesh/exitmesh/internal/httphead"
)

// BenchmarkFaithfulHeads measures writing a browser-like request head for the origin and an
// answer head for the client from the raw heads, without the network around them: the part of
// BenchmarkForward that faithful forwarding changed. Neither may allocate.
func BenchmarkFaithfulHeads(b *testing.B) {
	reqHead := []byte("GET http://example.com/path?q=1 HTTP/1.1\r\nHost: example.com\r\n" +
		"Proxy-Connection: keep-alive\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\r\n" +
		"Accept: text/html,application/xhtml+xml\r\nAccept-Encoding: gzip, deflate\r\n" +
		"Accept-Language: en-US,en;q=0.9\r\nProxy-Authorization: Basic YWxpY2U6YWxpY2UtcGFzc3dvcmQ=\r\n" +
		"Cookie: a=1; b=2\r\nX-ProxyMesh-Country: US\r\n\r\n")
	answerHead := []byte("HTTP/1.1 200 OK\r\nDate: Thu, 03 Dec 2026 17:00:00 GMT\r\nContent-Type: text/html\r\n" +
		"Set-Cookie: a=1; Path=/\r\nSet-Cookie: b=2; Path=/\r\nCache-Control: private\r\n" +
		"Connection: keep-alive\r\nContent-Length: 5\r\n\r\n")
	cc := &clientConn{}
	cc.saveHead(reqHead)
	cc.saveAnswerHead(answerHead)
	cc.answerLen = len(answerHead)
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(reqHead)))
	if err != nil {
		b.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(answerHead)), r)
	if err != nil {
		b.Fatal(err)
	}
	x := &exchange{cc: cc, r: r, choice: exits.Choice{Exit: exits.NewLocal(netip.MustParseAddr("192.0.2.1"), "US", nil)}}
	w := bufio.NewWriter(io.Discard)
	b.ReportAllocs()
	for b.Loop() {
		x.writeRequestHead(w, false)
		x.writeAnswerFields(w, resp, answerFraming{length: 5})
		w.Flush()
	}
}

// TestFieldFate holds every field the proxy removes, in any letter case, to its fate.
func TestFieldFate(t *testing.T) {
	conn := []string{"keep-alive, X-Hop", " x-other "}
	for _, tt := range []struct {
		name            string
		request, answer fieldAction
	}{
		{"Host", fieldHost, fieldKeep},
		{"Content-Length", fieldLength, fieldLength},
		{"Transfer-Encoding", fieldCoding, fieldCoding},
		{"TE", fieldTE, fieldDrop},
		{"Trailer", fieldDrop, fieldTrailer},
		{"Connection", fieldConnection, fieldConnection},
		{"Upgrade", fieldUpgrade, fieldUpgrade},
		{"Keep-Alive", fieldDrop, fieldDrop},
		{"Proxy-Connection", fieldDrop, fieldDrop},
		{"Proxy-Authorization", fieldDrop, fieldDrop},
		{"Proxy-Authenticate", fieldDrop, fieldDrop},
		{"Proxy-Other", fieldDrop, fieldKeep},
		{"X-ProxyMesh-IP", fieldDrop, fieldDrop},
		{"X-ProxyMesh-Country", fieldDrop, fieldDrop},
		{"X-Forwarded-For", fieldDrop, fieldKeep},
		{"Forwarded", fieldDrop, fieldKeep},
		{"Expect", fieldDrop, fieldKeep},
		{"X-Hop", fieldDrop, fieldDrop},
		{"X-Other", fieldDrop, fieldDrop},
		{"Cookie", fieldKeep, fieldKeep},
		{"Set-Cookie", fieldKeep, fieldKeep},
		{"User-Agent", fieldKeep, fieldKeep},
		{"X-Custom", fieldKeep, fieldKeep},
		{"Hosts", fieldKeep, fieldKeep},
	} {
		for _, name := range []string{tt.name, strings.ToLower(tt.name), strings.ToUpper(tt.name)} {
			f := httphead.Field{Name: []byte(name)}
			if got := fieldFate(f, conn, true); got != tt.request {
				t.Errorf("request field %s: %d, want %d", name, got, tt.request)
			}
			if got := fieldFate(f, conn, false); got != tt.answer {
				t.Errorf("answer field %s: %d, want %d", name, got, tt.answer)
			}
		}
	}
}
