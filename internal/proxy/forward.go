package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/exits"
)

// forwarder sends absolute-URI HTTP requests to their origin through the chosen exit. It builds on
// httputil.ReverseProxy for the hop-by-hop hygiene, 1xx and trailer handling, protocol upgrades and
// streaming flushes that the standard library already gets right.
type forwarder struct {
	s  *Server
	rp *httputil.ReverseProxy
}

// exchange is the state of one forwarded request, carried in its context to the ReverseProxy hooks.
type exchange struct {
	exit      *exits.Exit
	notFound  netip.Addr
	deadline  *time.Timer // fires when the origin has not answered in time
	timedOut  atomic.Bool
	responded bool // the origin answered; set before the response is written
}

type exchangeKey struct{}

func exchangeOf(ctx context.Context) *exchange { return ctx.Value(exchangeKey{}).(*exchange) }

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

type bufferPool struct{}

func (bufferPool) Get() []byte  { return *copyBuffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { copyBuffers.Put(&b) }

func newForwarder(s *Server) *forwarder {
	f := &forwarder{s: s}
	f.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			// Rewrite mode already dropped Forwarded and X-Forwarded-*; nothing reveals the client.
			stripClientHeaders(pr.Out.Header)
		},
		Transport:      roundTripper{},
		ModifyResponse: modifyResponse,
		ErrorHandler:   f.fail,
		BufferPool:     bufferPool{},
		ErrorLog:       s.http.ErrorLog,
	}
	return f
}

// roundTripper sends each request through the exit chosen for it.
type roundTripper struct{}

func (roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	return exchangeOf(req.Context()).exit.RoundTrip(req)
}

func modifyResponse(resp *http.Response) error {
	x := exchangeOf(resp.Request.Context())
	if !x.deadline.Stop() {
		resp.Body.Close()
		return errOriginTimeout
	}
	x.responded = true
	return nil
}

func (f *forwarder) fail(w http.ResponseWriter, r *http.Request, err error) {
	x := exchangeOf(r.Context())
	rf := failure(err)
	if x.timedOut.Load() {
		rf = errOriginTimeout
	}
	if rf.Status == http.StatusBadGateway && isClientGone(err) {
		return // the client left; nobody reads an answer
	}
	f.s.log.Debug("forward failed", "url", r.URL.Redacted(), "exit", x.exit.IP, "err", err)
	f.s.refuse(w, rf, x.exit, x.notFound)
}

func (f *forwarder) serve(w http.ResponseWriter, r *http.Request, p *auth.Principal, c exits.Choice, timeout time.Duration, tracked *inFlight) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	// Past Shutdown's deadline the exchange is cancelled: that ends a stream from the origin, and a
	// connection switched to another protocol (101), which the http.Server no longer closes.
	if !tracked.attach(cancel) {
		cancel()
	}
	x := &exchange{exit: c.Exit, notFound: c.NotFound}
	x.deadline = time.AfterFunc(timeout, func() {
		x.timedOut.Store(true)
		cancel()
	})
	defer x.deadline.Stop()

	body := &countingReader{r: r.Body}
	out := r.WithContext(context.WithValue(ctx, exchangeKey{}, x))
	out.Body = body
	cw := &countingWriter{ResponseWriter: w, x: x}
	// Deferred: ReverseProxy ends a response cut off mid-body (the client left, the origin broke off,
	// Shutdown's deadline passed) with panic(http.ErrAbortHandler), and what it delivered until then
	// counts all the same.
	defer f.record(p, x, body, cw)
	f.rp.ServeHTTP(cw, out)
}

// record counts a forwarded request's bytes in the metrics and, once the origin answered, in usage.
func (f *forwarder) record(p *auth.Principal, x *exchange, body *countingReader, cw *countingWriter) {
	in, out := body.n, cw.n
	if u := cw.upgraded; u != nil {
		in += u.in.Load()
		out += u.out.Load()
	}
	m := f.s.metrics
	m.BytesIn.Add(float64(in))
	m.BytesOut.Add(float64(out))
	if x.responded {
		m.Request(cw.status)
	}
	if f.s.cfg.Usage != nil && x.responded { // a request the origin never answered is not billed
		f.s.cfg.Usage.Add(p.AccountID, p.SubID, f.s.cfg.Name, domain.UsageCounts{
			BytesIn: in, BytesOut: out, Requests: 1,
		})
	}
}

// countingReader counts the request body bytes read from the client.
type countingReader struct {
	r io.ReadCloser
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }

// countingWriter counts the response body bytes written to the client, remembers the status, and
// marks an origin's response with the exit it came through. It does the marking here rather than in
// ModifyResponse because ReverseProxy canonicalizes header names when it copies them (X-Proxymesh-Ip),
// and clients written for ProxyMesh deserve its spelling. Unwrap lets http.ResponseController reach
// Flush and Hijack of the real writer.
type countingWriter struct {
	http.ResponseWriter
	x        *exchange
	n        int64
	status   int
	upgraded *countingConn // the client connection, once an origin's 101 handed it over
}

func (c *countingWriter) WriteHeader(code int) {
	if code >= 200 || c.status == 0 {
		c.status = code
	}
	if code >= 200 && c.x.responded {
		setExitHeaders(c.Header(), c.x.exit.IP, c.x.notFound)
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// Hijack hands ReverseProxy the client connection when the origin switched protocols (101); it then
// relays that connection both ways, bypassing Write, so the connection itself counts the bytes.
func (c *countingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(c.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	c.upgraded = &countingConn{Conn: conn}
	return c.upgraded, brw, nil
}

// countingConn counts the bytes read from and written to a client connection. Its two directions
// run in two goroutines, and the total is read after the handler's relay returned, while the slower
// direction may still be ending.
type countingConn struct {
	net.Conn
	in, out atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	return n, err
}
