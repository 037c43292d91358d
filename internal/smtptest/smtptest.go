// Package smtptest runs a small SMTP server on loopback for tests. It speaks enough of RFC 5321 for
// net/smtp — EHLO/HELO, STARTTLS (when given a certificate), AUTH PLAIN, MAIL, RCPT, DATA, RSET,
// NOOP and QUIT — and records every message it accepts. It relays nothing.
package smtptest

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options configure a server. The zero value offers neither STARTTLS nor checked AUTH.
type Options struct {
	TLS *tls.Config // offer STARTTLS with this config
	// Username and Password, if set, are the only credentials AUTH PLAIN accepts; otherwise any are.
	Username, Password string
}

// Message is a message the server accepted.
type Message struct {
	From     string   // the MAIL FROM address
	To       []string // the RCPT TO addresses
	Data     []byte   // the message as sent after DATA, dot-unstuffed, CRLF line ends
	TLS      bool     // the message came over a connection upgraded by STARTTLS
	Username string   // who authenticated, "" if nobody
}

// Server is a running SMTP server. Its methods are safe for concurrent use.
type Server struct {
	opts     Options
	ln       net.Listener
	received chan Message // every accepted message, in order, for Wait
	wg       sync.WaitGroup

	mu    sync.Mutex // guards the following fields
	msgs  []Message
	conns map[net.Conn]struct{}
}

// Start starts a server on 127.0.0.1 with a port the system picks. t.Cleanup stops it and waits
// for its connections to end.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: %v", err)
	}
	s := &Server{opts: opts, ln: ln, received: make(chan Message, 100), conns: make(map[net.Conn]struct{})}
	s.wg.Go(s.serve)
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// Addr returns the server's address, 127.0.0.1:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Port returns the server's port.
func (s *Server) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// Messages returns the messages accepted so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Wait returns the next message not yet returned by Wait, waiting up to 10 s for it; then it fails
// the test.
func (s *Server) Wait(t testing.TB) Message {
	t.Helper()
	select {
	case m := <-s.received:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("smtptest: no message arrived within 10s")
		return Message{}
	}
}

func (s *Server) serve() {
	for {
		conn, err := s.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		s.conns[conn] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() {
			defer func() {
				s.mu.Lock()
				delete(s.conns, conn)
				s.mu.Unlock()
				conn.Close()
			}()
			conn.SetDeadline(time.Now().Add(30 * time.Second)) // a stuck client cannot hold a test
			s.session(conn)
		})
	}
}

// session is one SMTP conversation.
func (s *Server) session(conn net.Conn) {
	tp := textproto.NewConn(conn)
	tp.PrintfLine("220 smtptest ready")
	var (
		secure   bool
		username string
		msg      *Message
	)
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			ext := []string{"smtptest greets " + arg}
			if s.opts.TLS != nil && !secure {
				ext = append(ext, "STARTTLS")
			}
			ext = append(ext, "AUTH PLAIN", "8BITMIME")
			for i, e := range ext {
				sep := "-"
				if i == len(ext)-1 {
					sep = " "
				}
				tp.PrintfLine("250%s%s", sep, e)
			}
		case "HELO":
			tp.PrintfLine("250 smtptest")
		case "STARTTLS":
			if s.opts.TLS == nil || secure {
				tp.PrintfLine("502 not available")
				continue
			}
			tp.PrintfLine("220 go ahead")
			tc := tls.Server(conn, s.opts.TLS)
			if err := tc.Handshake(); err != nil {
				return
			}
			tp, secure, username, msg = textproto.NewConn(tc), true, "", nil // RFC 3207: forget everything
		case "AUTH":
			user, ok := s.auth(arg)
			if !ok {
				tp.PrintfLine("535 authentication failed")
				continue
			}
			username = user
			tp.PrintfLine("235 authenticated")
		case "MAIL":
			msg = &Message{From: address(arg, "FROM:"), TLS: secure, Username: username}
			tp.PrintfLine("250 ok")
		case "RCPT":
			if msg == nil {
				tp.PrintfLine("503 MAIL first")
				continue
			}
			msg.To = append(msg.To, address(arg, "TO:"))
			tp.PrintfLine("250 ok")
		case "DATA":
			if msg == nil || len(msg.To) == 0 {
				tp.PrintfLine("503 RCPT first")
				continue
			}
			tp.PrintfLine("354 end with a dot")
			data, err := io.ReadAll(tp.DotReader())
			if err != nil {
				return
			}
			// DotReader turns CRLF into LF; keep the message as it was on the wire.
			msg.Data = bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n"))
			s.mu.Lock()
			s.msgs = append(s.msgs, *msg)
			s.mu.Unlock()
			select {
			case s.received <- *msg:
			default: // nobody waits for that many: Messages still has it
			}
			msg = nil
			tp.PrintfLine("250 accepted")
		case "RSET":
			msg = nil
			tp.PrintfLine("250 ok")
		case "NOOP":
			tp.PrintfLine("250 ok")
		case "QUIT":
			tp.PrintfLine("221 bye")
			return
		default:
			tp.PrintfLine("500 unknown command")
		}
	}
}

// auth checks "PLAIN <base64 of authzid NUL user NUL password>", the form net/smtp sends.
func (s *Server) auth(arg string) (string, bool) {
	mech, resp, _ := strings.Cut(arg, " ")
	raw, err := base64.StdEncoding.DecodeString(resp)
	if !strings.EqualFold(mech, "PLAIN") || err != nil {
		return "", false
	}
	parts := strings.Split(string(raw), "\x00")
	if len(parts) != 3 || parts[1] == "" {
		return "", false
	}
	if s.opts.Username != "" && (parts[1] != s.opts.Username || parts[2] != s.opts.Password) {
		return "", false
	}
	return parts[1], true
}

// address takes the address out of "FROM:<a@b> SIZE=1" or "TO:<a@b>".
func address(arg, prefix string) string {
	if len(arg) >= len(prefix) && strings.EqualFold(arg[:len(prefix)], prefix) {
		arg = arg[len(prefix):]
	}
	arg, _, _ = strings.Cut(strings.TrimSpace(arg), " ")
	return strings.Trim(arg, "<>")
}
