// Package mail sends the dashboard's emails (confirmation links) through an SMTP server with
// net/smtp: STARTTLS when required (never a silent fall back to plain text), AUTH PLAIN when a
// username is set, and one deadline over the whole exchange, so a server that stalls at any step
// costs at most Config.Timeout.
package mail

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"strconv"
	"strings"
	"time"
)

// Config is how to reach the mail server. Zero values take the defaults noted.
type Config struct {
	Host     string
	Port     int    // default 587
	Username string // if set, AUTH PLAIN, which net/smtp sends only over TLS or to a loopback server
	Password string
	From     string // the sender: "exitmesh <noreply@example.net>" or a bare address
	StartTLS bool   // refuse to send unless the server upgrades the connection to TLS
	// Timeout bounds the whole exchange, from the dial to QUIT; default 10s.
	Timeout time.Duration
	// TLSConfig, if set, is used for STARTTLS (tests trust their own CA with it); nil verifies the
	// server's certificate for Host against the system's roots.
	TLSConfig *tls.Config
	LocalName string           // the name sent with EHLO; default "localhost"
	Now       func() time.Time // the Date header; default time.Now
}

// Message is one plain-text email to one recipient.
type Message struct {
	To      string // a bare address, such as alice@example.com
	Subject string
	Body    string // plain text; line ends are sent as CRLF
}

// Sender sends messages through one SMTP server. It is safe for concurrent use: each Send is its own
// connection.
type Sender struct {
	cfg  Config
	from *mail.Address
}

// New checks cfg and returns a Sender.
func New(cfg Config) (*Sender, error) {
	if cfg.Host == "" {
		return nil, errors.New("mail: no SMTP host")
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("mail: sender %q: %w", cfg.From, err)
	}
	if cfg.Port == 0 {
		cfg.Port = 587
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.LocalName == "" {
		cfg.LocalName = "localhost"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sender{cfg: cfg, from: from}, nil
}

// Server names the server for logs: host:port, never the credentials.
func (s *Sender) Server() string { return net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port)) }

// Send delivers m to the server, within ctx and the configured timeout.
func (s *Sender) Send(ctx context.Context, m Message) error {
	to, err := mail.ParseAddress(m.To)
	if err != nil || to.Name != "" {
		return fmt.Errorf("mail: recipient %q is not a bare email address", m.To)
	}
	data, err := s.compose(to, m)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if err := s.deliver(ctx, to.Address, data); err != nil {
		return fmt.Errorf("mail: send to %s through %s: %w", to.Address, s.Server(), err)
	}
	return nil
}

func (s *Sender) deliver(ctx context.Context, to string, data []byte) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.Server())
	if err != nil {
		return err
	}
	// Every read and write of the exchange shares the context's deadline; cancelling the context
	// ends a wait at once.
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c, err := smtp.NewClient(conn, s.cfg.Host)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if err := c.Hello(s.cfg.LocalName); err != nil {
		return err
	}
	if s.cfg.StartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return errors.New("the server does not offer STARTTLS, which smtp.starttls requires")
		}
		tc := &tls.Config{ServerName: s.cfg.Host, MinVersion: tls.VersionTLS12}
		if s.cfg.TLSConfig != nil {
			tc = s.cfg.TLSConfig.Clone()
		}
		if err := c.StartTLS(tc); err != nil {
			return fmt.Errorf("starttls: %w", err)
		}
	}
	if s.cfg.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", s.cfg.Username, s.cfg.Password, s.cfg.Host)); err != nil {
			return fmt.Errorf("auth as %s: %w", s.cfg.Username, err)
		}
	}
	if err := c.Mail(s.from.Address); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// compose writes m as an RFC 5322 message: plain text in UTF-8, 7bit when it is ASCII with short
// lines, quoted-printable otherwise.
func (s *Sender) compose(to *mail.Address, m Message) ([]byte, error) {
	if strings.ContainsAny(m.Subject, "\r\n") {
		return nil, errors.New("mail: the subject has a line break")
	}
	var b bytes.Buffer
	header := func(name, value string) { b.WriteString(name + ": " + value + "\r\n") }
	header("From", s.from.String())
	header("To", to.String())
	header("Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	header("Date", s.cfg.Now().Format(time.RFC1123Z))
	header("Message-ID", "<"+messageID()+"@"+domainOf(s.from.Address)+">")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Auto-Submitted", "auto-generated") // RFC 3834: no vacation replies
	body := strings.ReplaceAll(strings.ReplaceAll(m.Body, "\r\n", "\n"), "\n", "\r\n")
	if sevenBit(body) {
		header("Content-Transfer-Encoding", "7bit")
		b.WriteString("\r\n" + body)
		return b.Bytes(), nil
	}
	header("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(body)); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// sevenBit reports whether body can go as it is: ASCII without NUL or bare CR, lines of at most
// 998 characters (RFC 5322 §2.1.1).
func sevenBit(body string) bool {
	for line := range strings.SplitSeq(body, "\r\n") {
		if len(line) > 998 {
			return false
		}
		for i := range len(line) {
			if c := line[i]; c == 0 || c == '\r' || c >= 0x80 {
				return false
			}
		}
	}
	return true
}

func messageID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return "localhost"
}
