package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/exits"
	"github.com/exitmesh/exitmesh/internal/metrics"
	"github.com/exitmesh/exitmesh/internal/ratelimit"
	"github.com/exitmesh/exitmesh/internal/relay"
)

// Forwarding a plain HTTP request: the request head is rewritten for the origin (origin-form target,
// hop-by-hop and proxy headers removed, framing written anew), sent over one of the exit's kept-alive
// connections to that origin, and the answer relayed the same way — all on the client connection's
// goroutine. A request body is sent by a goroutine of its own, so an origin may answer before it has
// read the body (or ask for it with 100 Continue).

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// maxInformational bounds the 1xx answers relayed before the final one.
const maxInformational = 16

// exchange is one forwarded request.
type exchange struct {
	cc       *clientConn
	r        *http.Request
	choice   exits.Choice
	tries    attempts        // the exits tried, and the others that may be when choice fails to connect
	key      exits.OriginKey // the login's own connections to the origin through the chosen exit
	upgrade  string          // the protocol the client asks to switch to, or ""
	length   bool            // the client sent Content-Length: it is sent on, even when 0
	deadline time.Time
	oc       *exits.OriginConn
	body     *bodyCopy // the request body on its way, or nil
	hungUp   bool      // the client hung up during the answer and its origin connection was closed
	p        *auth.Principal
	down     atomic.Int64 // the answer's bytes relayed so far
	metered  *transfer    // a long answer or an upgraded connection, metered while it runs; or nil
}

// forward sends r to its origin through the chosen exit and relays the answer. It reports whether
// the client connection may carry another request.
func (s *Server) forward(cc *clientConn, r *http.Request, p *auth.Principal, a *attempts) bool {
	if cc.up != nil && r.Body != http.NoBody { // the plan's speed, for the bytes of this request's body
		r.Body = pacedBody{ratelimit.Reader(cc.ctx, r.Body, cc.up), r.Body}
	}
	_, length := r.Header["Content-Length"]
	key := exits.OriginKey{Login: exits.Login{AccountID: p.AccountID, SubID: p.SubID},
		Scheme: r.URL.Scheme, HostPort: originAddr(r.URL.Scheme, r.URL.Host)}
	x := &exchange{cc: cc, r: r, choice: a.choice, tries: *a, key: key, length: length, deadline: a.deadline, p: p}
	expect := r.ProtoAtLeast(1, 1) && r.Body != http.NoBody && strings.EqualFold(r.Header.Get("Expect"), "100-continue")
	x.upgrade = upgradeOf(r.Header)
	resp, err := x.roundTrip(expect)
	if err != nil {
		c := x.choice
		s.log.Debug("forward failed", "url", r.URL.Redacted(), "exit", c.Exit.IP, "err", err)
		cc.setUpstream(nil)
		x.finishBody() // a body still on its way is abandoned, and the connection closed after the answer
		rf := failure(err)
		if berr := x.bodyFailure(); berr != nil { // the origin's failure came from the client's body
			if readFailed(berr) {
				return false // the client left mid-body: nobody to answer
			}
			rf = errBadBody
		}
		if rf.Status == http.StatusBadGateway && isClientGone(err) {
			return false
		}
		return cc.refuse(r, rf, c.Exit, c.NotFound) && x.body == nil
	}
	defer cc.setUpstream(nil)
	if resp.StatusCode == http.StatusSwitchingProtocols {
		in, out := x.switchProtocols(resp)
		s.account(p, x.choice.Exit.IP, in, out, http.StatusSwitchingProtocols, x.metered)
		cc.entryAnswered(http.StatusSwitchingProtocols, x.choice.Exit.IP, in, out)
		return false
	}
	out, keep := x.relayResponse(resp)
	in, bodyOK := x.finishBody()
	keep = keep && !x.hungUp
	x.release(keep && bodyOK)
	// Counted before the answer's last bytes leave: a client that has read a whole answer finds it
	// counted against its plan's bandwidth when it sends the next request.
	s.account(p, x.choice.Exit.IP, in, out, resp.StatusCode, x.metered)
	cc.entryAnswered(resp.StatusCode, x.choice.Exit.IP, in, out)
	if err := cc.bw.Flush(); err != nil {
		return false
	}
	return keep && bodyOK && !r.Close && r.ProtoAtLeast(1, 1)
}

// release hands the origin connection back to its exit when reusable, else closes it; an origin
// that sent more than the answer asked for is closed whatever reusable says, and counted.
func (x *exchange) release(reusable bool) {
	if x.oc.Release(reusable) {
		x.cc.s.metrics.Unsolicited.Inc()
		x.cc.s.log.Debug("origin sent bytes no request asked for; connection closed",
			"origin", x.key.HostPort, "exit", x.choice.Exit.IP)
	}
}

// account counts a request the origin answered; one it never answered is not billed. The bytes a
// meter already reported (metered, when not nil) are not counted again.
func (s *Server) account(p *auth.Principal, exit netip.Addr, in, out int64, status int, metered *transfer) {
	m := s.metrics
	m.BytesIn.Add(float64(in))
	m.BytesOut.Add(float64(out))
	m.Request(status)
	if s.cfg.Usage != nil {
		in, out = s.finishTransfer(metered, in, out)
		s.cfg.Usage.Add(usageLogin(p), s.cfg.Name, exit, domain.UsageCounts{BytesIn: in, BytesOut: out, Requests: 1})
	}
}

// meterAnswer meters the exchange while its answer streams, when the answer is long or of unknown
// length, or the connection was upgraded.
func (x *exchange) meterAnswer(length int64) {
	if length >= 0 && length <= longAnswer {
		return
	}
	x.metered = x.cc.s.startTransfer(x.p, x.choice.Exit.IP, func() (int64, int64) {
		var up int64
		if x.body != nil {
			up = x.body.read.Load()
		}
		return up, x.down.Load()
	}, x.cc.closeAll)
}

// originAddr returns an origin's host:port, with the scheme's port when the URL names none.
func originAddr(scheme, host string) string {
	if i := strings.LastIndexByte(host, ':'); i > strings.LastIndexByte(host, ']') {
		return host
	}
	if scheme == "https" {
		return host + ":443"
	}
	return host + ":80"
}

// originForm returns the request target to send an origin: the path and query of an absolute URI,
// exactly as the client wrote them.
func originForm(requestURI string) string {
	_, rest, ok := strings.Cut(requestURI, "://")
	if !ok {
		return requestURI
	}
	i := strings.IndexAny(rest, "/?")
	switch {
	case i < 0:
		return "/"
	case rest[i] == '?':
		return "/" + rest[i:]
	}
	return rest[i:]
}

// roundTrip sends the request and reads the origin's final answer (or 101), relaying 1xx answers to
// the client. A request without a body that fails on a reused connection before any answer is sent
// once more on a new one: the origin may have closed the kept-alive connection as it was taken.
func (x *exchange) roundTrip(expect bool) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		oc, err := x.choice.Exit.OriginConn(x.cc.ctx, x.tries.connectDeadline(), x.key)
		if err != nil {
			if x.tries.retry(err) { // nothing was sent: another exit may connect
				x.choice = x.tries.choice
				attempt--
				continue
			}
			return nil, err
		}
		if oc.Unsolicited > 0 {
			x.cc.s.metrics.Unsolicited.Add(float64(oc.Unsolicited))
		}
		x.oc = oc
		x.cc.setUpstream(oc.Conn)
		oc.SetDeadline(x.deadline)
		resp, err := x.send(expect)
		if err == nil {
			oc.SetDeadline(time.Time{})
			return resp, nil
		}
		oc.Release(false)
		if attempt > 0 || !oc.Reused() || x.body != nil || !idempotent(x.r) || errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, err
		}
	}
}

func idempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// send writes the request head, starts the body, and reads the answer.
func (x *exchange) send(expect bool) (*http.Response, error) {
	r, w := x.r, x.oc.W
	chunked := len(r.TransferEncoding) > 0 && r.TransferEncoding[0] == "chunked"
	x.writeRequestHead(w, chunked)
	if r.Body == http.NoBody {
		if err := w.Flush(); err != nil {
			return nil, err
		}
	} else {
		if expect { // the proxy has decided; the client may send its body
			x.cc.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			if err := x.cc.bw.Flush(); err != nil {
				return nil, err
			}
		}
		oc := x.oc
		x.body = startBody(w, r.Body, chunked, func() { oc.Conn.Close() })
	}
	for range maxInformational {
		head := x.peekAnswerHead()
		resp, err := http.ReadResponse(x.oc.R, r)
		if err != nil {
			return nil, err
		}
		x.cc.answerLen = head
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
		if r.ProtoAtLeast(1, 1) { // 1xx: Early Hints and the like reach an HTTP/1.1 client
			x.cc.bw.WriteString("HTTP/1.1 " + resp.Status + "\r\n")
			x.writeInformational(x.cc.bw, resp)
			x.cc.bw.WriteString("\r\n")
			if err := x.cc.bw.Flush(); err != nil {
				return nil, err
			}
		}
	}
	return nil, fmt.Errorf("origin sent more than %d informational answers", maxInformational)
}

// relayResponse writes the origin's answer to the client, all but what is still buffered when the
// body ends (the caller flushes it). It returns the body bytes relayed and whether both connections
// are still fit for another request.
func (x *exchange) relayResponse(resp *http.Response) (int64, bool) {
	r, w := x.r, x.cc.bw
	keep := !resp.Close
	f := answerFraming{length: -1}
	switch {
	case !bodyAllowed(r, resp.StatusCode):
		if resp.ContentLength >= 0 && r.Method == http.MethodHead { // the size a GET would have
			f.length = resp.ContentLength
		}
	case resp.ContentLength >= 0:
		f.length = resp.ContentLength
	case r.ProtoAtLeast(1, 1):
		f.chunked = true
	default:
		keep = false // an HTTP/1.0 client reads to the end of the connection
	}
	w.WriteString("HTTP/1.1 ")
	w.WriteString(resp.Status)
	w.WriteString("\r\n")
	x.writeAnswerFields(w, resp, f)
	chunked := f.chunked
	if !keep || r.Close || !r.ProtoAtLeast(1, 1) {
		w.WriteString("Connection: close\r\n")
	}
	w.WriteString("\r\n")
	if resp.ContentLength < 0 && x.body == nil {
		defer x.cc.watchHangup(x.oc, &x.hungUp)()
	}
	if bodyAllowed(r, resp.StatusCode) {
		x.meterAnswer(resp.ContentLength)
	}
	n, err := copyBody(w, resp.Body, chunked, &x.down)
	if err == nil && chunked {
		w.WriteString("0\r\n")
		writeHeader(w, resp.Trailer)
		w.WriteString("\r\n")
	}
	if err != nil {
		x.cc.s.log.Debug("response cut short", "url", r.URL.Redacted(), "exit", x.choice.Exit.IP, "err", err)
		return n, false
	}
	return n, keep
}

// bodyAllowed reports whether an answer with status to r has a body (RFC 9112 §6.3).
func bodyAllowed(r *http.Request, status int) bool {
	return r.Method != http.MethodHead && status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

func trailerNames(t http.Header) string {
	var b strings.Builder
	for k := range t {
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k)
	}
	return b.String()
}

// copyBody copies a body to w — chunk-encoded when chunked, without the last chunk — flushing after
// every read but the last, so that a streamed body goes on as it comes while a small one leaves
// with its head in one write once the caller flushes.
func copyBody(w *bufio.Writer, body io.Reader, chunked bool, moved *atomic.Int64) (int64, error) {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	var total int64
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if chunked {
				w.Write(strconv.AppendInt(w.AvailableBuffer(), int64(n), 16))
				w.WriteString("\r\n")
			}
			w.Write(buf[:n])
			if chunked {
				w.WriteString("\r\n")
			}
			total += int64(n)
			moved.Add(int64(n))
		}
		switch {
		case rerr == io.EOF:
			return total, nil
		case rerr != nil:
			return total, rerr
		}
		if err := w.Flush(); err != nil {
			return total, err
		}
	}
}

// bodyCopy is a request body on its way to the origin.
type bodyCopy struct {
	done chan struct{} // closed when the copy ended
	err  error         // how it ended; read after done
	read atomic.Int64  // bytes read from the client
	eof  atomic.Bool   // the client's body was read to its end
	// readErr is set when reading the client's body failed: its framing broke (a malformed chunk)
	// or the client left before its end.
	readErr atomic.Pointer[error]
	body    io.Reader
}

func (b *bodyCopy) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	b.read.Add(int64(n))
	switch {
	case err == io.EOF:
		b.eof.Store(true)
	case err != nil:
		b.readErr.Store(&err)
	}
	return n, err
}

// startBody copies body to the origin through w on a goroutine of its own. When the client's body
// fails, abort ends the exchange at once: the origin would otherwise wait for the rest of a body
// that will never come whole, and the proxy for its answer, until the origin timeout.
func startBody(w *bufio.Writer, body io.Reader, chunked bool, abort func()) *bodyCopy {
	b := &bodyCopy{done: make(chan struct{}), body: body}
	go func() {
		defer close(b.done)
		var sent atomic.Int64 // b.read counts the body as it comes
		if _, b.err = copyBody(w, b, chunked, &sent); b.err != nil {
			if b.readErr.Load() != nil {
				abort()
			}
			return
		}
		if chunked {
			w.WriteString("0\r\n\r\n")
		}
		b.err = w.Flush()
	}()
	return b
}

// errBadBody answers a request whose body broke its framing before the origin answered.
var errBadBody = &refusal{Status: http.StatusBadRequest, Reason: "bad-request", Close: true,
	Message: "Malformed request body: its framing broke before its end."}

// bodyFailure returns the error that ended reading the client's body, or nil.
func (x *exchange) bodyFailure() error {
	if x.body == nil {
		return nil
	}
	if err := x.body.readErr.Load(); err != nil {
		return *err
	}
	return nil
}

// bodyDrain bounds waiting for the last bytes of a request body, already read from the client, to
// reach an origin that has answered.
const bodyDrain = time.Second

// finishBody returns the request body bytes read from the client and whether the body went out
// whole. Once the answer is complete, a body read to its end is waited for (its last bytes are on
// their way to the origin); one the client is still sending is abandoned: neither connection can
// carry another request.
func (x *exchange) finishBody() (int64, bool) {
	b := x.body
	if b == nil {
		return 0, true
	}
	if b.eof.Load() {
		x.oc.SetWriteDeadline(time.Now().Add(bodyDrain))
		<-b.done
		return b.read.Load(), b.err == nil
	}
	select {
	case <-b.done:
		return b.read.Load(), b.err == nil
	default:
		x.oc.Release(false) // ends the copy's writes; its reads end when the client connection closes
		x.cc.lent = true
		return b.read.Load(), false
	}
}

// switchProtocols relays an accepted protocol upgrade (WebSocket over plain HTTP): the 101 goes to
// the client, then bytes flow both ways as through a tunnel.
func (x *exchange) switchProtocols(resp *http.Response) (in, out int64) {
	got := resp.Header.Get("Upgrade")
	if x.upgrade == "" || !strings.EqualFold(got, x.upgrade) {
		x.oc.Release(false)
		x.cc.refuse(x.r, &refusal{Status: http.StatusBadGateway, Reason: "upstream-failed",
			Message: "The destination switched to a protocol the client did not ask for."}, x.choice.Exit, x.choice.NotFound)
		return 0, 0
	}
	w := x.cc.bw
	w.WriteString("HTTP/1.1 " + resp.Status + "\r\n")
	x.writeSwitchFields(w, resp, got)
	w.WriteString("\r\n")
	if err := w.Flush(); err != nil {
		x.oc.Release(false)
		return 0, 0
	}
	in, _ = x.finishBody()
	client := bufferedConn(x.cc.conn, x.cc.br)
	origin := bufferedConn(x.oc.Conn, x.oc.R)
	var moved relay.Counters
	x.metered = x.cc.s.startTransfer(x.p, x.choice.Exit.IP, func() (int64, int64) { return in + moved.Up.Load(), moved.Down.Load() }, x.cc.closeAll)
	up, down, idled := relay.Pipe(client, origin, x.cc.s.cfg.TunnelIdle, &moved)
	x.oc.Release(false)
	if idled {
		x.cc.s.metrics.Limits.Hit(metrics.LimitTunnelIdle)
	}
	return in + up, down
}

// bufferedConn returns c reading first what r has buffered from it.
func bufferedConn(c net.Conn, r *bufio.Reader) net.Conn {
	if r.Buffered() == 0 {
		return c
	}
	return &readerConn{Conn: c, r: r}
}

type readerConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite passes a half-close on, so a tunnel's end of stream reaches the other side.
func (c *readerConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}
