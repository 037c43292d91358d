package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/exitmesh/exitmesh/internal/accesslog"
	"github.com/exitmesh/exitmesh/internal/httphead"
	"github.com/exitmesh/exitmesh/internal/peek"
	"golang.org/x/time/rate"
)

// A client connection's state, as Shutdown sees it.
const (
	stateIdle   int32 = iota // between requests: Shutdown closes it
	stateActive              // a request or tunnel in flight: Shutdown waits for it
	stateClosed              // Shutdown closed it
)

// clientConn is one client connection and the requests it carries, one at a time.
type clientConn struct {
	s       *Server
	conn    net.Conn
	src     netip.Addr // the client's address, unmapped
	remote  string     // conn.RemoteAddr(), formatted once
	br      *bufio.Reader
	grown   bool // br is not the pooled reader but one a large head needed (growReader)
	head    httphead.Parser
	headCfg httphead.Config // the server's, with the port the client connected to
	bw      *bufio.Writer
	ctx     context.Context // ends when Shutdown gives up on the connection
	cancel  context.CancelFunc
	state   atomic.Int32
	// lent is set when a goroutine that reads br may outlive the connection's loop (a request body
	// still being sent when the origin already answered): br and bw are then not pooled.
	lent bool
	// tunnel is set when the connection became a CONNECT tunnel, served by goroutines of its own
	// that close and untrack it.
	tunnel bool

	// entry is the access log's entry of the request or tunnel in flight, while logging (see
	// accesslog.go).
	entry   accesslog.Entry
	logging bool
	// up and down pace the request or tunnel in flight to its plan's speed (nil: not paced).
	up, down *rate.Limiter

	mu       sync.Mutex // guards upstream
	upstream net.Conn   // the origin or tunnel connection in use: Shutdown closes it with the client's

	// heads holds the request head as the client sent it (its first reqLen bytes), for the origin
	// to get its fields in their order and case, then the head of the origin's answer being
	// relayed (answerLen bytes; 0 when it is written from net/http's map). The request head must be
	// copied out of br before the body is read, which refills br's buffer.
	heads     *[]byte
	reqLen    int
	answerLen int
}

var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
	heads   = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}
)

// maxPooledHeads bounds the heads buffer that goes back to its pool: one a rare large head grew is
// left to the collector.
const maxPooledHeads = 16 << 10

// saveHead copies a request head out of br's buffer.
func (cc *clientConn) saveHead(head []byte) {
	if cc.heads == nil {
		cc.heads = heads.Get().(*[]byte)
	}
	*cc.heads = append((*cc.heads)[:0], head...)
	cc.reqLen = len(head)
}

// requestHead returns the request head saveHead copied.
func (cc *clientConn) requestHead() []byte { return (*cc.heads)[:cc.reqLen] }

// saveAnswerHead copies an origin's answer head after the request head, which stays whole for a
// request sent again.
func (cc *clientConn) saveAnswerHead(head []byte) {
	*cc.heads = append((*cc.heads)[:cc.reqLen], head...)
}

// answerHead returns the answer head saveAnswerHead copied, or nil when the answer being relayed is
// written from net/http's map.
func (cc *clientConn) answerHead() []byte {
	if cc.answerLen == 0 {
		return nil
	}
	return (*cc.heads)[cc.reqLen : cc.reqLen+cc.answerLen]
}

// track registers a new client connection from src; it returns nil (and closes c) once Shutdown has
// begun.
func (s *Server) track(c net.Conn, src netip.Addr) *clientConn {
	cc := &clientConn{s: s, conn: c, src: src, remote: c.RemoteAddr().String(), headCfg: s.headCfg}
	if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
		cc.headCfg.ProxyPort = a.Port
	}
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
	if cc.grown {
		cc.br, cc.grown = nil, false // not the pool's size: the collector takes it
	}
	if cc.heads != nil {
		if cap(*cc.heads) <= maxPooledHeads {
			heads.Put(cc.heads)
		}
		cc.heads, cc.reqLen, cc.answerLen = nil, 0, 0
	}
	if cc.br != nil {
		cc.br.Reset(nil)
		readers.Put(cc.br)
		cc.bw.Reset(nil)
		writers.Put(cc.bw)
		cc.br, cc.bw = nil, nil
	}
}

// tlsHandshake is the first byte of a TLS ClientHello (a handshake record).
const tlsHandshake = 0x16

// startTLS runs the server side of a TLS handshake on the connection, under the read-header
// deadline already set (so it counts toward timeouts.read_header, and the connection toward the
// per-IP limit since it was accepted), and from then on reads and writes inside TLS. The reader that
// holds the ClientHello's first bytes stays with the raw connection TLS reads from.
func (cc *clientConn) startTLS(cfg *tls.Config) error {
	tc := tls.Server(&readerConn{Conn: cc.conn, r: cc.br}, cfg)
	if err := tc.HandshakeContext(cc.ctx); err != nil {
		return err
	}
	cc.mu.Lock()
	cc.conn = tc
	cc.mu.Unlock()
	cc.br = readers.Get().(*bufio.Reader)
	cc.br.Reset(tc)
	cc.grown = false
	return nil
}

// errMalformed refuses a head that passed checkHead but not net/http's stricter URL parser.
var errMalformed = &httphead.Error{Status: http.StatusBadRequest, Reason: "malformed request"}

// serveConn reads requests from a client connection and answers them one after the other until the
// client leaves, idles out, asks to close, or Shutdown.
func (s *Server) serveConn(cc *clientConn) {
	growStack()
	cc.br = readers.Get().(*bufio.Reader)
	cc.br.Reset(cc.conn)
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
		if first {
			b, err := cc.br.Peek(1)
			switch {
			case err != nil:
				return
			case b[0] == socksVersion:
				s.serveSOCKS(cc)
				return
			case b[0] == tlsHandshake && s.takesTLS():
				if err := cc.startTLS(s.tls); err != nil {
					s.log.Debug("tls handshake failed", "client", cc.src, "err", err)
					return
				}
			}
		}
		if herr, err := cc.checkHead(); herr != nil || err != nil {
			cc.badRequest(herr, err)
			return
		}
		r, err := http.ReadRequest(cc.br)
		if err != nil {
			cc.badRequest(nil, err)
			return
		}
		if r.Body != http.NoBody {
			cc.conn.SetReadDeadline(time.Time{}) // the head's deadline does not bound the body
		}
		r.RemoteAddr = cc.remote
		if !first && s.closing.Load() {
			// A request that crossed Shutdown on a kept-alive connection: the client is told to
			// retry elsewhere, and that this connection ends.
			cc.refuse(r, errShuttingDown, nil, netip.Addr{})
			return
		}
		if !s.serveRequest(cc, r) {
			return
		}
		if !cc.state.CompareAndSwap(stateActive, stateIdle) {
			return
		}
		if s.closing.Load() && cc.br.Buffered() == 0 {
			return // nothing more was asked: the client finds the connection closed, as when idle
		}
	}
}

// checkHead waits until the whole request head is in the buffer and checks it byte by byte before
// net/http's parser reads it: that parser tolerates what other parsers read differently (both
// Content-Length and Transfer-Encoding, obs-fold, bare LF, a Host unlike the absolute URI's). It
// returns the refusal, or the read error when the client left or went silent.
func (cc *clientConn) checkHead() (*httphead.Error, error) {
	cc.head.Reset(cc.headCfg)
	for {
		buf, _ := cc.br.Peek(cc.br.Buffered()) // what is buffered: never blocks
		n, h, herr := cc.head.Feed(buf)
		if herr != nil {
			return herr, nil
		}
		if n > 0 {
			if !h.Connect { // a tunnel's head goes nowhere
				cc.saveHead(buf[:n])
			}
			return nil, nil
		}
		if cc.br.Buffered() == cc.br.Size() && !cc.growReader() {
			return httphead.ErrTooLarge, nil
		}
		if _, err := cc.br.Peek(cc.br.Buffered() + 1); err != nil {
			return nil, err
		}
	}
}

// growReader gives a head larger than the pooled 4 KiB buffer a reader of the largest head allowed,
// for the rest of the connection; false when it has that size already. The new reader takes over
// what the pooled one held in its first fill, and reads the connection itself after that, so that
// every byte the client sent is in cc.br (a tunnel's early bytes are taken from there).
func (cc *clientConn) growReader() bool {
	if cc.grown || cc.br.Size() >= cc.s.cfg.MaxHeaderBytes {
		return false
	}
	held, _ := cc.br.Peek(cc.br.Buffered())
	rest := io.MultiReader(bytes.NewReader(bytes.Clone(held)), cc.conn)
	cc.br.Reset(nil)
	readers.Put(cc.br)
	cc.br, cc.grown = bufio.NewReaderSize(rest, cc.s.cfg.MaxHeaderBytes), true
	return true
}

// badRequest answers a request head that was refused or could not be read, as net/http's server
// does; a client that left or went silent gets nothing. Anything else that stopped the parser, a
// target the URL parser refused included, is the client's malformed request and gets a 400.
func (cc *clientConn) badRequest(herr *httphead.Error, err error) {
	cc.s.countHeadRefusal(herr, err)
	switch {
	case herr != nil:
	case readFailed(err):
		return
	default:
		herr = errMalformed
	}
	cc.bw.Write(herr.AppendResponse(cc.bw.AvailableBuffer(), headerError+": bad-request\r\nProxy-Status: "+
		proxyStatus(cc.s.cfg.NodeName, &refusal{Type: "http_request_error"})+"\r\n")) // bounded by timeouts.write
	cc.bw.Flush()
}

// readFailed reports whether err is the connection failing, not its bytes: the client left, reset
// it, went silent past a deadline, or Shutdown closed it. A *url.Error is not one, although it
// satisfies net.Error.
func readFailed(err error) bool {
	var op *net.OpError
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, net.ErrClosed) || errors.As(err, &op)
}

// stackReserve is what growStack asks for: with the frames below it, the goroutine of a new
// connection goes from its first 2 KiB stack straight to the 8 KiB that the deepest path of a
// forwarded request needs (serveRequest → forward → net/http's response parser → the poller).
const stackReserve = 6 << 10

// stackIndex keeps growStack's frame from being optimized away.
var stackIndex = 0

// growStack grows a new connection's stack once, while it is still shallow. Left to grow on demand,
// the stack doubled twice in the middle of the first request, each time copying every frame above
// (issue 14's measurement: 1–2 µs of proxy CPU per new connection, 7% of the new-connection figure).
//
//go:noinline
func growStack() byte {
	var pad [stackReserve]byte
	return pad[stackIndex]
}
