// Package dnstest runs a small authoritative DNS server on loopback UDP for tests. It answers A
// and AAAA questions for the names a test sets, an empty answer for other types of a known name,
// and NXDOMAIN for any other name. Answers must fit a 512-byte UDP message (about 25 addresses
// per name); there is no TCP fallback.
package dnstest

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// Server is a running DNS server. Its methods are safe for concurrent use.
type Server struct {
	conn net.PacketConn
	done chan struct{} // closed when serve returns

	mu    sync.RWMutex // guards names
	names map[string][]netip.Addr
}

// Start starts a server on 127.0.0.1 with a port the system picks. t.Cleanup stops it.
func Start(t testing.TB) *Server {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("dnstest: %v", err)
	}
	s := &Server{conn: conn, done: make(chan struct{}), names: make(map[string][]netip.Addr)}
	go s.serve()
	t.Cleanup(func() {
		conn.Close()
		<-s.done
	})
	return s
}

// Addr returns the server's address, host:port, for a resolver to dial.
func (s *Server) Addr() string { return s.conn.LocalAddr().String() }

// Set makes name resolve to ips (IPv4 addresses answer A questions, IPv6 ones AAAA), replacing what
// it resolved to before. With no ips, name is removed: it gets NXDOMAIN. Names are
// case-insensitive; a trailing dot is optional.
func (s *Server) Set(name string, ips ...netip.Addr) {
	key := canonical(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(ips) == 0 {
		delete(s.names, key)
		return
	}
	s.names[key] = append([]netip.Addr(nil), ips...)
}

func canonical(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, ".")) + "."
}

// lookup returns name's addresses answering a question of type qtype, and whether name is known.
func (s *Server) lookup(name string, qtype dnsmessage.Type) ([]netip.Addr, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	all, ok := s.names[canonical(name)]
	var answer []netip.Addr
	for _, ip := range all {
		ip = ip.Unmap()
		if qtype == dnsmessage.TypeA && ip.Is4() || qtype == dnsmessage.TypeAAAA && ip.Is6() {
			answer = append(answer, ip)
		}
	}
	return answer, ok
}

func (s *Server) serve() {
	defer close(s.done)
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		if reply, ok := s.answer(buf[:n]); ok {
			s.conn.WriteTo(reply, from)
		}
	}
}

// answer builds the reply to one query. Messages that do not parse get none.
func (s *Server) answer(query []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil || h.Response {
		return nil, false
	}
	questions, err := p.AllQuestions()
	if err != nil {
		return nil, false
	}
	reply := dnsmessage.Message{
		// Authoritative: Go's resolver takes an empty answer that is neither authoritative nor
		// recursive for a lame referral.
		Header:    dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired},
		Questions: questions,
	}
	switch {
	case h.OpCode != 0:
		reply.RCode = dnsmessage.RCodeNotImplemented
	case len(questions) != 1:
		reply.RCode = dnsmessage.RCodeFormatError
	default:
		reply.RCode, reply.Answers = s.resolve(questions[0])
	}
	b, err := reply.Pack()
	return b, err == nil
}

// resolve answers one question.
func (s *Server) resolve(q dnsmessage.Question) (dnsmessage.RCode, []dnsmessage.Resource) {
	ips, known := s.lookup(q.Name.String(), q.Type)
	if !known {
		return dnsmessage.RCodeNameError, nil
	}
	var answers []dnsmessage.Resource
	for _, ip := range ips {
		h := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1}
		if ip.Is4() {
			answers = append(answers, dnsmessage.Resource{Header: h, Body: &dnsmessage.AResource{A: ip.As4()}})
		} else {
			answers = append(answers, dnsmessage.Resource{Header: h, Body: &dnsmessage.AAAAResource{AAAA: ip.As16()}})
		}
	}
	return dnsmessage.RCodeSuccess, answers
}
