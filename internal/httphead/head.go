// Package httphead checks HTTP/1.1 request heads byte by byte before anything parses them, and
// refuses the ones that parsers read differently: the request-smuggling vectors of RFC 9112 §11.2
// that Go's net/http tolerates (both Content-Length and Transfer-Encoding, obs-fold, bare LF,
// an absolute URI whose authority is not the Host header) and heads too large or with too many
// fields. The proxy runs the Parser on each head in its buffer; the API's net/http server gets its
// connections through a Listener that runs the same Parser on the stream.
package httphead

import (
	"bytes"
	"net/http"
	"strconv"
)

// Config is what a head may hold.
type Config struct {
	MaxBytes  int // the whole head: request line, fields and the empty line; default 64 KiB
	MaxFields int // header field lines; default 100
	// ProxyPort is a forward proxy's own port. An absolute URI's Host must name the URI's authority,
	// or the proxy itself by this port: Node's http module, given the proxy as host and the URL as
	// path, sends Host: <proxy>:<port>. Such a Host names no other destination.
	ProxyPort int
}

func (l Config) withDefaults() Config {
	if l.MaxBytes <= 0 {
		l.MaxBytes = 64 << 10
	}
	if l.MaxFields <= 0 {
		l.MaxFields = 100
	}
	return l
}

// Error is a refused head: the status to answer and why, in words a client's developer can act on.
type Error struct {
	Status int
	Reason string
}

func (e *Error) Error() string {
	return strconv.Itoa(e.Status) + " " + http.StatusText(e.Status) + ": " + e.Reason
}

// AppendResponse appends the complete answer to a refused head: the status, the extra header lines
// given (each ending in CRLF), Connection: close and the Error's text as the body. The connection
// must be closed after it, since its framing can no longer be trusted.
func (e *Error) AppendResponse(b []byte, extraHeaders string) []byte {
	body := e.Error() + "\n"
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(e.Status)...)
	b = append(b, "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"...)
	b = append(b, extraHeaders...)
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	return append(b, body...)
}

func refuse(status int, reason string) *Error { return &Error{Status: status, Reason: reason} }

// Refusals, one value each so that checking a head allocates nothing.
var (
	ErrTooLarge         = refuse(http.StatusRequestHeaderFieldsTooLarge, "request head too large")
	ErrTooManyFields    = refuse(http.StatusRequestHeaderFieldsTooLarge, "too many header fields")
	errBareLF           = refuse(http.StatusBadRequest, "line ends in LF without CR")
	errRequestLine      = refuse(http.StatusBadRequest, "malformed request line")
	errMethod           = refuse(http.StatusBadRequest, "invalid method")
	errTarget           = refuse(http.StatusBadRequest, "malformed request target")
	errUserinfo         = refuse(http.StatusBadRequest, "user information in the request target")
	errVersion          = refuse(http.StatusHTTPVersionNotSupported, "only HTTP/1.0 and HTTP/1.1 are spoken here")
	errObsFold          = refuse(http.StatusBadRequest, "obsolete line folding in the header")
	errFieldName        = refuse(http.StatusBadRequest, "invalid header field name")
	errFieldValue       = refuse(http.StatusBadRequest, "invalid character in a header field value")
	errContentLength    = refuse(http.StatusBadRequest, "invalid Content-Length")
	errDupLength        = refuse(http.StatusBadRequest, "more than one Content-Length")
	errDupEncoding      = refuse(http.StatusBadRequest, "more than one Transfer-Encoding")
	errLengthAndChunked = refuse(http.StatusBadRequest, "both Content-Length and Transfer-Encoding")
	errEncoding         = refuse(http.StatusNotImplemented, "unsupported Transfer-Encoding: only chunked is")
	errEncodingHTTP10   = refuse(http.StatusBadRequest, "Transfer-Encoding in an HTTP/1.0 request")
	errNoHost           = refuse(http.StatusBadRequest, "missing Host header")
	errDupHost          = refuse(http.StatusBadRequest, "more than one Host header")
	errHost             = refuse(http.StatusBadRequest, "malformed Host header")
	errHostMismatch     = refuse(http.StatusBadRequest, "Host header does not match the request target")
	errConnectTarget    = refuse(http.StatusBadRequest, "CONNECT needs host:port")
	errConnectBody      = refuse(http.StatusBadRequest, "CONNECT with a body")
	errAsterisk         = refuse(http.StatusBadRequest, "* is a target only for OPTIONS")
)

// Form is the form of a request target (RFC 9112 §3.2).
type Form uint8

const (
	Origin    Form = iota + 1 // /path?query
	Absolute                  // http://host/path
	Authority                 // host:port, for CONNECT
	Asterisk                  // *, for OPTIONS
)

// Head is what a checked head says about the request and its body.
type Head struct {
	Form    Form
	Connect bool
	// Chunked is set when the body is chunked; otherwise Length is its size (0 without Content-Length).
	Chunked bool
	Length  int64
	Fields  int
}

// span locates bytes in the head by offsets, which stay valid when a buffer moves the head.
type span struct{ from, to int }

func (s span) of(head []byte) []byte { return head[s.from:s.to] }

// Parser checks one request head as its bytes arrive. The caller passes the head from its first
// byte, longer each time; the Parser looks at each complete line once.
type Parser struct {
	lim     Config
	off     int // the head's bytes before this are checked
	started bool
	http10  bool
	target  span // the request target
	auth    span // the authority of an absolute or authority-form target
	scheme  int  // default port of an absolute target's scheme: 80, 443, or 0 for another scheme
	host    span
	hosts   int
	lengths int
	codings int
	head    Head
}

// NewParser returns a Parser for one head.
func NewParser(lim Config) *Parser {
	p := &Parser{}
	p.Reset(lim)
	return p
}

// Reset readies the Parser for the next head.
func (p *Parser) Reset(lim Config) { *p = Parser{lim: lim.withDefaults()} }

// Checked is how many bytes of the head are known good; the rest wait for their line's end.
func (p *Parser) Checked() int { return p.off }

// Feed checks the complete lines of buf not yet checked; buf holds the head from its first byte
// and may run past its end. It returns the head's length once its empty line has arrived (0 while
// more is needed), or the refusal. A head longer than the limit is refused without waiting for
// its end.
func (p *Parser) Feed(buf []byte) (n int, h *Head, err *Error) {
	for {
		rest := buf[p.off:]
		if len(rest) > p.lim.MaxBytes-p.off {
			rest = rest[:p.lim.MaxBytes-p.off]
		}
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			if len(buf) >= p.lim.MaxBytes {
				return 0, nil, ErrTooLarge
			}
			return 0, nil, nil
		}
		if i == 0 || rest[i-1] != '\r' {
			return 0, nil, errBareLF
		}
		line := span{p.off, p.off + i - 1}
		p.off += i + 1
		if !p.started {
			if err := p.requestLine(buf, line); err != nil {
				return 0, nil, err
			}
			p.started = true
			continue
		}
		if line.from == line.to {
			if err := p.finish(buf); err != nil {
				return 0, nil, err
			}
			return p.off, &p.head, nil
		}
		if err := p.field(buf, line); err != nil {
			return 0, nil, err
		}
	}
}

// requestLine checks method SP request-target SP HTTP-version, single spaces only.
func (p *Parser) requestLine(buf []byte, ln span) *Error {
	line := ln.of(buf)
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 < 0 {
		return errRequestLine
	}
	sp2 := bytes.IndexByte(line[sp1+1:], ' ')
	if sp2 < 0 {
		return errRequestLine
	}
	sp2 += sp1 + 1
	method, target, version := line[:sp1], line[sp1+1:sp2], line[sp2+1:]
	if !isToken(method) {
		return errMethod
	}
	switch string(version) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		p.http10 = true
	default:
		if len(version) == 8 && string(version[:5]) == "HTTP/" && isDigit(version[5]) && version[6] == '.' && isDigit(version[7]) {
			return errVersion
		}
		return errRequestLine
	}
	p.target = span{ln.from + sp1 + 1, ln.from + sp2}
	for _, c := range target {
		if c <= ' ' || c == 0x7f || c == '#' { // a fragment is never sent (RFC 9112 §3.2)
			return errTarget
		}
	}
	p.head.Connect = string(method) == http.MethodConnect
	return p.targetForm(target, string(method) == http.MethodOptions)
}

// targetForm classifies the target and finds its authority.
func (p *Parser) targetForm(target []byte, options bool) *Error {
	switch {
	case len(target) == 0:
		return errTarget
	case p.head.Connect:
		if !validAuthority(target, true) {
			return errConnectTarget
		}
		p.head.Form, p.auth = Authority, p.target
	case target[0] == '/':
		p.head.Form = Origin
	case len(target) == 1 && target[0] == '*':
		if !options {
			return errAsterisk
		}
		p.head.Form = Asterisk
	default:
		return p.absolute(target)
	}
	return nil
}

// absolute checks scheme "://" authority of an absolute-form target.
func (p *Parser) absolute(target []byte) *Error {
	i := bytes.Index(target, []byte("://"))
	if i <= 0 || !isScheme(target[:i]) {
		return errTarget
	}
	switch {
	case asciiEqualFold(target[:i], "http"):
		p.scheme = 80
	case asciiEqualFold(target[:i], "https"):
		p.scheme = 443
	}
	from := i + 3
	to := from
	for to < len(target) && target[to] != '/' && target[to] != '?' {
		to++
	}
	auth := target[from:to]
	if bytes.IndexByte(auth, '@') >= 0 {
		return errUserinfo
	}
	if len(auth) == 0 || !validAuthority(auth, false) {
		return errTarget
	}
	p.head.Form = Absolute
	p.auth = span{p.target.from + from, p.target.from + to}
	return nil
}

// field checks one header field line: a token, a colon with no space before it, a value without
// control characters other than tab.
func (p *Parser) field(buf []byte, ln span) *Error {
	line := ln.of(buf)
	if line[0] == ' ' || line[0] == '\t' {
		return errObsFold
	}
	p.head.Fields++
	if p.head.Fields > p.lim.MaxFields {
		return ErrTooManyFields
	}
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 || !isToken(line[:colon]) {
		return errFieldName
	}
	name := line[:colon]
	vfrom, vto := colon+1, len(line)
	for vfrom < vto && (line[vfrom] == ' ' || line[vfrom] == '\t') {
		vfrom++
	}
	for vto > vfrom && (line[vto-1] == ' ' || line[vto-1] == '\t') {
		vto--
	}
	value := line[vfrom:vto]
	for _, c := range value {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return errFieldValue
		}
	}
	switch {
	case asciiEqualFold(name, "host"):
		p.hosts++
		p.host = span{ln.from + vfrom, ln.from + vto}
	case asciiEqualFold(name, "content-length"):
		p.lengths++
		if p.lengths > 1 {
			return errDupLength
		}
		n, ok := parseLength(value)
		if !ok {
			return errContentLength
		}
		p.head.Length = n
	case asciiEqualFold(name, "transfer-encoding"):
		p.codings++
		if p.codings > 1 {
			return errDupEncoding
		}
		if !asciiEqualFold(value, "chunked") {
			return errEncoding
		}
		p.head.Chunked = true
	}
	return nil
}

// finish makes the checks that need the whole head.
func (p *Parser) finish(buf []byte) *Error {
	switch {
	case p.codings > 0 && p.lengths > 0:
		return errLengthAndChunked
	case p.codings > 0 && p.http10:
		return errEncodingHTTP10
	case p.head.Connect && (p.head.Chunked || p.head.Length > 0):
		return errConnectBody
	case p.hosts > 1:
		return errDupHost
	case p.hosts == 0 && !p.http10:
		return errNoHost
	}
	if p.hosts == 0 {
		return nil
	}
	host := p.host.of(buf)
	if len(host) > 0 && !validAuthority(host, false) {
		return errHost
	}
	switch p.head.Form {
	case Absolute:
		if !sameAuthority(p.auth.of(buf), host, p.scheme) && !p.namesProxy(host) {
			return errHostMismatch
		}
	case Authority:
		// Clients send CONNECT's Host as host:port (curl, Go, Python) or, rarely, as the bare host.
		target := p.auth.of(buf)
		if !sameAuthority(target, host, 0) && !sameAuthority(hostPart(target), host, 0) {
			return errHostMismatch
		}
	}
	return nil
}

// namesProxy tells whether a Host names the proxy itself by its port.
func (p *Parser) namesProxy(host []byte) bool {
	_, port, hasPort, ok := splitAuthority(host)
	n, digits := portValue(port)
	return p.lim.ProxyPort != 0 && ok && hasPort && digits && n == p.lim.ProxyPort
}

// parseLength parses 1*DIGIT, at most 18 digits so that it cannot overflow.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
