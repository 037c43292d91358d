package httphead

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// Listen returns a listener whose connections check what a net/http server reads from them: a
// refused head never reaches the server. The server must set ConnState to this package's ConnState
// (or call it), which tells a connection when no handler is answering on it, so that it may answer
// a refused head itself with the exact status; while a handler answers, net/http's own "400 Bad
// Request" closes the connection instead. The server must not offer HTTP/2 (it would not see a
// *tls.Conn) nor tunnel or upgrade connections (the Stream would read a tunnel as requests). Its
// requests' TLS field is nil.
func Listen(ln net.Listener, lim Config) net.Listener { return &listener{Listener: ln, lim: lim} }

type listener struct {
	net.Listener
	lim Config
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &Conn{Conn: c, s: NewStream(l.lim)}, nil
}

// Conn is a connection whose incoming requests are checked. Reads are net/http's: one at a time,
// from the connection's goroutine or its background reader, never both at once.
type Conn struct {
	net.Conn
	s        *Stream
	bad      *Error
	answered bool
	heads    atomic.Int64 // heads passed to the server
	idle     atomic.Int64 // heads when the server last went idle: equal to heads, no handler runs
}

// NetConn returns the connection below the check.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// ConnState is the http.Server.ConnState hook that Listen's connections need.
func ConnState(c net.Conn, st http.ConnState) {
	if g, ok := c.(*Conn); ok && st == http.StateIdle {
		g.idle.Store(g.heads.Load())
	}
}

// answerTimeout bounds the write of a refusal to a client that does not read it.
const answerTimeout = 5 * time.Second

func (c *Conn) Read(p []byte) (int, error) {
	if c.bad != nil {
		return c.refuse(p)
	}
	n, err := c.Conn.Read(p)
	if n == 0 {
		plainHTTPToTLS(err)
		return n, err
	}
	k, bad := c.s.Feed(p[:n])
	c.heads.Store(c.s.Heads())
	if bad == nil {
		return n, err
	}
	c.bad = bad
	if k > 0 {
		return k, nil
	}
	return c.refuse(p)
}

// refuse ends the connection's requests after a refused head or body.
func (c *Conn) refuse(p []byte) (int, error) {
	switch {
	case c.heads.Load() == c.idle.Load():
		// No handler is answering: the refusal is the next thing the client reads. io.EOF makes
		// net/http close the connection without an answer of its own.
		if !c.answered {
			c.answered = true
			c.Conn.SetWriteDeadline(time.Now().Add(answerTimeout))
			c.Conn.Write(c.bad.AppendResponse(nil, ""))
		}
		return 0, io.EOF
	case len(p) == 1:
		return c.waitAbort()
	default:
		// A handler may be writing: net/http answers "400 Bad Request" once it has finished.
		return 0, c.bad
	}
}

// waitAbort stands in for net/http's one-byte background read while a handler answers: an error
// now would cancel that handler's request, so it waits, as the read would, until net/http ends it
// with a deadline or the client leaves. What the client sends meanwhile follows a refused head
// and is dropped.
func (c *Conn) waitAbort() (int, error) {
	var scratch [512]byte
	for {
		if _, err := c.Conn.Read(scratch[:]); err != nil {
			return 0, err
		}
	}
}

// plainHTTPToTLS answers a client that spoke plain HTTP to the TLS port as net/http would, had it
// seen the *tls.Conn this package hides.
func plainHTTPToTLS(err error) {
	var re tls.RecordHeaderError
	if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader[:]) {
		re.Conn.SetWriteDeadline(time.Now().Add(answerTimeout))
		io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
	}
}

func looksLikeHTTP(hdr []byte) bool {
	switch string(hdr) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}
