package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/exitmesh/exitmesh/internal/peek"
)

// A client connection's state, as Shutdown sees it.
const (
	stateIdle   int32 = iota // between requests: Shutdown closes it
	stateActive              // a request or tunnel in flight: Shutdown waits for it
	stateClosed              // Shutdown closed it
)

// clientConn is one client connection and the requests it carries, one at a time.
type clientConn struct {
	s      *Server
	conn   net.Conn
	src    netip.Addr // the client's address, unmapped
	remote string     // conn.RemoteAddr(), formatted once
	lr     limitedReader
	br     *bufio.Reader
	bw     *bufio.Writer
	ctx    context.Context // ends when Shutdown gives up on the connection
	cancel context.CancelFunc
	state  atomic.Int32
	// lent is set when a goroutine that reads br may outlive the connection's loop (a request body
	// still being sent when the origin already answered): br and bw are then not pooled.
	lent bool
	// tunnel is set when the connection became a CONNECT tunnel, served by goroutines of its own
	// that close and untrack it.
	tunnel bool
	// readTimedOut is set when a read hit its deadline (a head's, or keep-alive idle): the
	// connection's loop ends.
	readTimedOut bool

	mu       sync.Mutex // guards upstream
	upstream net.Conn   // the origin or tunnel connection in use: Shutdown closes it with the client's
}

var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

// track registers a new client connection from src; it returns nil (and closes c) once Shutdown has
// begun.
func (s *Server) track(c net.Conn, src netip.Addr) *clientConn {
	cc := &clientConn{s: s, conn: c, src: src, remote: c.RemoteAddr().String()}
	cc.ctx, cc.cancel = context.WithCancel(context.Background())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		c.Close()
		cc.cancel()
		return nil
	}
	s.conns[cc] = struct{}{}
	s.metrics.ClientConns.Inc()
	return cc
}

func (s *Server) untrack(cc *clientConn) {
	s.cfg.ConnsPerIP.Release(cc.src)
	s.metrics.ClientConns.Dec()
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, cc)
	if len(s.conns) == 0 && s.drained != nil {
		close(s.drained)
		s.drained = nil
	}
}

// end closes a client connection and forgets it.
func (s *Server) end(cc *clientConn) {
	cc.closeAll()
	s.untrack(cc)
}

// setUpstream records the origin or tunnel connection in use, for Shutdown; nil when done.
func (cc *clientConn) setUpstream(c net.Conn) {
	cc.mu.Lock()
	cc.upstream = c
	cc.mu.Unlock()
}

// closeAll closes the client connection and the upstream connection in use, which ends whatever
// the connection's goroutine waits for.
func (cc *clientConn) closeAll() {
	cc.cancel()
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.conn.Close()
	if cc.upstream != nil {
		cc.upstream.Close()
	}
}

// watchHangup ends the relay of an answer when the client hangs up: an answer streamed without a
// length may stay silent for long, and only a write would notice that the client is gone, so the
// exit's connection and the account's usage would wait for the origin to speak again. It watches the
// client's socket without reading from it and closes upstream when the client closes; stop ends the
// watch. Nothing is watched when the client already sent more (a pipelined request) or when the
// socket cannot be peeked at (TLS to the proxy). *hungUp tells, once stop returned, whether the
// watch closed upstream, which then must not go back to the exit's pool.
func (cc *clientConn) watchHangup(upstream io.Closer, hungUp *bool) (stop func()) {
	sc, ok := cc.conn.(syscall.Conn)
	if !ok || cc.br.Buffered() > 0 {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if peek.Wait(sc) == nil && peek.Closed(sc) {
			*hungUp = true // read by the caller after stop: the close of done orders the two
			upstream.Close()
		}
	}()
	return func() {
		cc.conn.SetReadDeadline(time.Unix(1, 0)) // wakes the watch; the loop sets the next deadline
		<-done
		cc.conn.SetReadDeadline(time.Time{})
	}
}

// releaseBuffers returns the connection's buffers to their pools: when it closes, or when it
// becomes a tunnel, which needs neither.
func (cc *clientConn) releaseBuffers() {
	if cc.br != nil {
		cc.br.Reset(nil)
		readers.Put(cc.br)
		cc.bw.Reset(nil)
		writers.Put(cc.bw)
		cc.br, cc.bw = nil, nil
	}
}

// errHeadTooLarge is what the connection's reader returns once a request head outgrows the limit.
var errHeadTooLarge = errors.New("request head too large")

// limitedReader reads from the connection, at most remain bytes while a request head is read.
type limitedReader struct {
	r      io.Reader
	remain int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.remain <= 0 {
		return 0, errHeadTooLarge
	}
	if int64(len(p)) > l.remain {
		p = p[:l.remain]
	}
	n, err := l.r.Read(p)
	l.remain -= int64(n)
	return n, err
}

// serveConn reads requests from a client connection and answers them one after the other until the
// client leaves, idles out, asks to close, or Shutdown.
func (s *Server) serveConn(cc *clientConn) {
	cc.lr.r = clientReader{cc}
	cc.br = readers.Get().(*bufio.Reader)
	cc.br.Reset(&cc.lr)
	cc.bw = writers.Get().(*bufio.Writer)
	cc.bw.Reset(clientWriter{cc})
	defer func() {
		if cc.tunnel {
			return
		}
		if !cc.lent {
			cc.releaseBuffers()
		}
		s.end(cc)
	}()
	for first := true; ; first = false {
		if !first {
			cc.conn.SetReadDeadline(time.Now().Add(s.cfg.Idle))
			if _, err := cc.br.Peek(1); err != nil {
				return
			}
		}
		if !cc.state.CompareAndSwap(stateIdle, stateActive) {
			return // Shutdown closed it
		}
		cc.conn.SetReadDeadline(time.Now().Add(s.cfg.ReadHeader))
		cc.lr.remain = int64(s.cfg.MaxHeaderBytes) + 4096 // net/http's allowance for the request line
		r, err := http.ReadRequest(cc.br)
		if err != nil {
			if !s.headCut(cc, err) {
				cc.badRequest(err)
			}
			return
		}
		cc.lr.remain = math.MaxInt64
		if rf := checkHead(r); rf != "" {
			cc.writeRaw(rf)
			return
		}
		if r.Body != http.NoBody {
			cc.conn.SetReadDeadline(time.Time{}) // the head's deadline does not bound the body
		}
		r.RemoteAddr = cc.remote
		if !s.serveRequest(cc, r) {
			return
		}
		if !cc.state.CompareAndSwap(stateActive, stateIdle) || s.closing.Load() {
			return
		}
	}
}

// checkHead applies the checks net/http's server makes beyond parsing; it returns the raw answer
// for a request that fails one, or "". ReadRequest has already taken the host from an absolute
// URI (which wins over Host, RFC 9112 §3.2.2) or from the one Host header allowed.
func checkHead(r *http.Request) string {
	switch {
	case r.ProtoMajor != 1:
		return "505 HTTP Version Not Supported"
	case r.Host == "" && r.ProtoAtLeast(1, 1):
		return "400 Bad Request: missing required Host header"
	case !httpguts.ValidHostHeader(r.Host):
		return "400 Bad Request: malformed Host header"
	}
	return ""
}

// badRequest answers a request head that could not be read, as net/http's server does; a client
// that left or went silent gets nothing.
func (cc *clientConn) badRequest(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, errHeadTooLarge):
		cc.writeRaw("431 Request Header Fields Too Large")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne), errors.Is(err, net.ErrClosed):
	default:
		cc.writeRaw("400 Bad Request")
	}
}

// writeRaw answers with a status line ("431 Request Header Fields Too Large") and closes: the
// connection's framing can no longer be trusted.
func (cc *clientConn) writeRaw(statusAndText string) {
	status, text, _ := cutStatus(statusAndText)
	cc.conn.SetWriteDeadline(time.Now().Add(time.Second))
	cc.bw.WriteString("HTTP/1.1 " + status + "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(text)) + "\r\n\r\n" + text)
	cc.bw.Flush()
}

// cutStatus splits "400 Bad Request: detail" into the status line's "400 Bad Request" and the body.
func cutStatus(s string) (status, body string, ok bool) {
	status, _, ok = strings.Cut(s, ": ")
	return status, s, ok
}
