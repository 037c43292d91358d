package httphead

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"testing"
)

// heads are the cases every parser test and the fuzz seed corpus share: a raw head and the status
// it gets (0: accepted).
var heads = []struct {
	name, head string
	status     int
}{
	{"absolute GET", "GET http://example.com/a?b HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8\r\n\r\n", 0},
	{"absolute GET default port", "GET http://example.com:80/ HTTP/1.1\r\nHost: EXAMPLE.com\r\n\r\n", 0},
	{"https default port", "GET https://example.com/ HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 0},
	{"origin form", "POST /api/ip/ HTTP/1.1\r\nHost: 127.0.0.1:8443\r\nContent-Length: 12\r\n\r\n", 0},
	{"chunked", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 0},
	{"HTTP/1.0 without Host", "GET http://example.com/ HTTP/1.0\r\n\r\n", 0},
	{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nProxy-Authorization: Basic YTpi\r\n\r\n", 0},
	{"CONNECT bare host", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n", 0},
	{"CONNECT IPv6", "CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n", 0},
	{"CONNECT Content-Length 0", "CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\nContent-Length: 0\r\n\r\n", 0},
	{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 0},
	{"tab and obs-text in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\tb \xe9t\xe9\r\n\r\n", 0},
	{"empty Host with origin form", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 0},

	{"CL and TE", "POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
	{"TE and CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400},
	{"duplicate CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400},
	{"differing CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n", 400},
	{"CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400},
	{"CL sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400},
	{"CL hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", 400},
	{"CL huge", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
	{"TE twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
	{"TE gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
	{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
	{"obs-fold", "GET http://a/ HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400},
	{"obs-fold tab", "GET http://a/ HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n", 400},
	{"bare LF request line", "GET http://a/ HTTP/1.1\nHost: a\r\n\r\n", 400},
	{"bare LF field", "GET http://a/ HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 400},
	{"bare LF end", "GET http://a/ HTTP/1.1\r\nHost: a\r\n\n", 400},
	{"bare CR in value", "GET http://a/ HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400},
	{"NUL in value", "GET http://a/ HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400},
	{"space before colon", "GET http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n", 400},
	{"invalid name", "GET http://a/ HTTP/1.1\r\nHost: a\r\nX(y): 1\r\n\r\n", 400},
	{"no colon", "GET http://a/ HTTP/1.1\r\nHost: a\r\nJunk\r\n\r\n", 400},
	{"Host mismatch", "GET http://internal.example/ HTTP/1.1\r\nHost: example.com\r\n\r\n", 400},
	{"Host port mismatch", "GET http://a:8080/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
	{"no Host in 1.1", "GET http://a/ HTTP/1.1\r\n\r\n", 400},
	{"malformed Host", "GET / HTTP/1.1\r\nHost: a b/c\r\n\r\n", 400},
	{"userinfo", "GET http://user:pw@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"CONNECT path", "CONNECT / HTTP/1.1\r\nHost: evil.example:443\r\n\r\n", 400},
	{"CONNECT URI", "CONNECT http://a:443/ HTTP/1.1\r\nHost: a:443\r\n\r\n", 400},
	{"CONNECT without port", "CONNECT a HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"CONNECT port 0", "CONNECT a:0 HTTP/1.1\r\nHost: a:0\r\n\r\n", 400},
	{"CONNECT port too big", "CONNECT a:65536 HTTP/1.1\r\nHost: a:65536\r\n\r\n", 400},
	{"CONNECT userinfo", "CONNECT u@a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 400},
	{"CONNECT Host mismatch", "CONNECT a:443 HTTP/1.1\r\nHost: b:443\r\n\r\n", 400},
	{"CONNECT with body", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: 3\r\n\r\n", 400},
	{"two spaces", "GET  http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"tab separator", "GET\thttp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"control in target", "GET http://a/\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"no version", "GET http://a/\r\nHost: a\r\n\r\n", 400},
	{"HTTP/2.0", "GET http://a/ HTTP/2.0\r\nHost: a\r\n\r\n", 505},
	{"lower-case version", "GET http://a/ http/1.1\r\nHost: a\r\n\r\n", 400},
	{"bad method", "G(T http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"empty first line", "\r\nGET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"scheme-less target", "GET example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n", 400},
	{"asterisk GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"empty authority", "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
}

func TestParserCases(t *testing.T) {
	for _, c := range heads {
		t.Run(c.name, func(t *testing.T) {
			n, h, err := NewParser(Config{}).Feed([]byte(c.head + "BODY"))
			switch {
			case c.status == 0 && err != nil:
				t.Fatalf("refused with %v, want accepted", err)
			case c.status == 0 && (h == nil || n != len(c.head)):
				t.Fatalf("accepted %d bytes, head %v; want the %d bytes of the head", n, h, len(c.head))
			case c.status != 0 && err == nil:
				t.Fatalf("accepted (head %+v), want %d", h, c.status)
			case c.status != 0 && err.Status != c.status:
				t.Fatalf("refused with %v, want %d", err, c.status)
			}
		})
	}
}

// TestAcceptedHeadsParseAlike checks that what the Parser accepts, net/http reads the same way.
func TestAcceptedHeadsParseAlike(t *testing.T) {
	for _, c := range heads {
		if c.status == 0 {
			sameAsNetHTTP(t, []byte(c.head), true)
		}
	}
}

func TestFraming(t *testing.T) {
	_, h, _ := NewParser(Config{}).Feed([]byte("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n"))
	if h.Length != 12 || h.Chunked || h.Form != Origin {
		t.Errorf("Content-Length head: %+v", h)
	}
	_, h, _ = NewParser(Config{}).Feed([]byte("POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"))
	if !h.Chunked || h.Form != Absolute {
		t.Errorf("chunked head: %+v", h)
	}
	_, h, _ = NewParser(Config{}).Feed([]byte("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"))
	if !h.Connect || h.Form != Authority {
		t.Errorf("CONNECT head: %+v", h)
	}
}

// TestHostNamingTheProxy: a Host naming the proxy by its port passes with an absolute URI, as
// Node's http module sends it; any other mismatch is still refused.
func TestHostNamingTheProxy(t *testing.T) {
	cfg := Config{ProxyPort: 31280}
	for head, want := range map[string]*Error{
		"GET http://api.ipify.org/ HTTP/1.1\r\nHost: us-ca.example.net:31280\r\n\r\n": nil,
		"GET http://api.ipify.org/ HTTP/1.1\r\nHost: 127.0.0.1:31280\r\n\r\n":         nil,
		"GET http://api.ipify.org/ HTTP/1.1\r\nHost: us-ca.example.net:31281\r\n\r\n": errHostMismatch,
		"GET http://api.ipify.org/ HTTP/1.1\r\nHost: us-ca.example.net\r\n\r\n":       errHostMismatch,
		"POST /api/ HTTP/1.1\r\nHost: a:31280\r\nHost: b\r\n\r\n":                     errDupHost,
	} {
		if _, _, err := NewParser(cfg).Feed([]byte(head)); err != want {
			t.Errorf("%q: %v, want %v", head, err, want)
		}
	}
	if _, _, err := NewParser(Config{}).Feed([]byte("GET http://a/ HTTP/1.1\r\nHost: b:31280\r\n\r\n")); err != errHostMismatch {
		t.Errorf("without ProxyPort: %v, want %v", err, errHostMismatch)
	}
}

func TestLimits(t *testing.T) {
	many := "GET http://a/ HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X: y\r\n", 9) + "\r\n"
	if _, _, err := NewParser(Config{MaxFields: 10}).Feed([]byte(many)); err != nil {
		t.Errorf("10 fields with MaxFields 10: %v", err)
	}
	if _, _, err := NewParser(Config{MaxFields: 9}).Feed([]byte(many)); err != ErrTooManyFields {
		t.Errorf("10 fields with MaxFields 9: %v, want %v", err, ErrTooManyFields)
	}
	if _, _, err := NewParser(Config{MaxBytes: len(many)}).Feed([]byte(many)); err != nil {
		t.Errorf("head of exactly MaxBytes: %v", err)
	}
	if _, _, err := NewParser(Config{MaxBytes: len(many) - 1}).Feed([]byte(many)); err != ErrTooLarge {
		t.Errorf("head one byte over MaxBytes: %v, want %v", err, ErrTooLarge)
	}
	// A head that never ends is refused as soon as it passes the limit, without its end.
	endless := []byte("GET http://a/ HTTP/1.1\r\nCookie: " + strings.Repeat("a", 2000))
	if _, _, err := NewParser(Config{MaxBytes: 1024}).Feed(endless); err != ErrTooLarge {
		t.Errorf("endless line: %v, want %v", err, ErrTooLarge)
	}
	if n, h, err := NewParser(Config{MaxBytes: 4096}).Feed(endless); n != 0 || h != nil || err != nil {
		t.Errorf("endless line under the limit: %d, %v, %v; want to wait for more", n, h, err)
	}
}

// TestFeedByteByByte feeds every case one byte more at a time, as a slow client sends it: the
// verdict is the same as in one piece, and no line is looked at before its end.
func TestFeedByteByByte(t *testing.T) {
	for _, c := range heads {
		p := NewParser(Config{})
		var err *Error
		var h *Head
		for i := 1; i <= len(c.head) && err == nil && h == nil; i++ {
			_, h, err = p.Feed([]byte(c.head[:i]))
		}
		got := 0
		if err != nil {
			got = err.Status
		}
		if got != c.status || (c.status == 0 && h == nil) {
			t.Errorf("%s byte by byte: status %d head %v, want %d", c.name, got, h, c.status)
		}
	}
}

func TestErrorResponse(t *testing.T) {
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(ErrTooManyFields.AppendResponse(nil, "X-ProxyMesh-Error: bad-request\r\n"))), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 431 || !resp.Close || resp.Header.Get("X-ProxyMesh-Error") != "bad-request" ||
		string(body) != "431 Request Header Fields Too Large: too many header fields\n" {
		t.Errorf("answer: %d close=%v %v %q", resp.StatusCode, resp.Close, resp.Header, body)
	}
}

// sameAsNetHTTP fails when net/http reads another framing or method from a head the Parser
// accepted, or, with mustParse, cannot read it. net/http refuses some heads the Parser lets by (a
// bad percent-escape in a path): the client then gets net/http's 400, which is as safe.
func sameAsNetHTTP(t testing.TB, head []byte, mustParse bool) {
	t.Helper()
	_, h, perr := NewParser(Config{}).Feed(head)
	if perr != nil || h == nil {
		return
	}
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		if mustParse {
			t.Fatalf("accepted %q, which net/http refuses: %v", head, err)
		}
		return
	}
	if h.Chunked != (len(r.TransferEncoding) > 0) || (!h.Chunked && r.ContentLength != h.Length) {
		t.Fatalf("accepted %q with framing chunked=%v length=%d; net/http reads %v %d", head, h.Chunked, h.Length, r.TransferEncoding, r.ContentLength)
	}
	if h.Connect != (r.Method == http.MethodConnect) {
		t.Fatalf("%q: CONNECT %v, net/http method %s", head, h.Connect, r.Method)
	}
	// A proxy relays the head line by line: the lines must be the fields net/http read.
	fields := http.Header{}
	n := 0
	for fs := FieldsOf(head); fs.Next(); n++ {
		k := textproto.CanonicalMIMEHeaderKey(string(fs.Name))
		fields[k] = append(fields[k], string(fs.Value()))
	}
	if n != h.Fields {
		t.Fatalf("%q: %d field lines walked, %d checked", head, n, h.Fields)
	}
	for k, vs := range r.Header {
		if k == "Cache-Control" && fields[k] == nil { // net/http's own, from Pragma: no-cache
			continue
		}
		if !slices.Equal(fields[k], vs) {
			t.Fatalf("%q: %s is %q line by line, %q to net/http", head, k, fields[k], vs)
		}
	}
}

// BenchmarkParser checks a head as curl sends it through a proxy, with Basic credentials.
func BenchmarkParser(b *testing.B) {
	head := []byte("GET http://example.com:8080/path/to/page?q=1 HTTP/1.1\r\nHost: example.com:8080\r\n" +
		"User-Agent: curl/8.5.0\r\nAccept: */*\r\nProxy-Authorization: Basic YWxpY2U6YWxpY2UtcGFzc3dvcmQ=\r\n" +
		"Proxy-Connection: Keep-Alive\r\nX-ProxyMesh-Country: US\r\n\r\n")
	var p Parser
	b.SetBytes(int64(len(head)))
	b.ReportAllocs()
	for b.Loop() {
		p.Reset(Config{})
		if _, h, err := p.Feed(head); h == nil || err != nil {
			b.Fatal(err)
		}
	}
}
