package proxy

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"syscall"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/exits"
)

// SOCKS5 (RFC 1928) with username/password authentication (RFC 1929), on the same port as HTTP: a
// connection whose first byte is 5 is a SOCKS5 greeting (an HTTP request starts with a letter, a TLS
// ClientHello with 22). Only CONNECT is served; BIND and UDP ASSOCIATE answer "command not
// supported". Authentication, steering (username parameters), egress policy, denied ports, bans,
// limits, quotas and metering are the HTTP proxy's; every refusal maps to a reply code and is logged
// with its reason.

const (
	socksVersion    = 5
	socksAuthVer    = 1 // RFC 1929's sub-negotiation version
	socksNoAuth     = 0
	socksUserPass   = 2
	socksNoMethod   = 0xff
	socksCmdConnect = 1
	socksAddrIPv4   = 1
	socksAddrName   = 3
	socksAddrIPv6   = 4

	// TokenUser is the SOCKS5 (and Basic) username that says the password is an API token.
	TokenUser = "token"
)

// Reply codes (RFC 1928 §6).
const (
	socksSucceeded       = 0x00
	socksGeneralFailure  = 0x01
	socksNotAllowed      = 0x02
	socksNetUnreachable  = 0x03
	socksHostUnreachable = 0x04
	socksRefused         = 0x05
	socksTTLExpired      = 0x06
	socksCmdUnsupported  = 0x07
	socksAddrUnsupported = 0x08
)

// errSOCKS is a malformed SOCKS5 exchange: the connection is closed without a reply.
var errSOCKS = errors.New("malformed SOCKS5 handshake")

// serveSOCKS runs one SOCKS5 connection: the handshake under the connection's read-header deadline,
// then the tunnel. The connection carries nothing else.
func (s *Server) serveSOCKS(cc *clientConn) {
	src := cc.src
	if left, banned := s.cfg.Bans.Banned(src); banned {
		s.socksRefused(cc, "banned", "left", left)
		return // the HTTP proxy answers a banned client 403 and closes: here, nothing but the close
	}
	methods, err := readGreeting(cc.br)
	if err != nil {
		s.socksRefused(cc, "malformed", "err", err)
		return
	}
	p, steer, ok := s.socksAuthenticate(cc, methods)
	if !ok {
		return
	}
	target, err := readRequest(cc.br)
	if err != nil {
		var unsupported socksError
		if errors.As(err, &unsupported) {
			s.socksReply(cc, byte(unsupported), nil)
		}
		s.socksRefused(cc, "request", "err", err, "login", p.Login)
		return
	}
	if s.cfg.AccessLog.Enabled() {
		cc.beginTunnelEntry("SOCKS5", target, p)
	}
	if code, reason := s.socksAdmit(p); code != socksSucceeded {
		s.socksReply(cc, code, nil)
		s.socksRefused(cc, reason, "login", p.Login, "target", target)
		return
	}
	cc.pace(p)
	if !s.socksConnect(cc, p, steer, target) {
		s.releaseAccount(p)
	}
}

// socksAuthenticate picks the method the client offered — username/password when offered, else "no
// authentication" for a client whose address is authorized — and authenticates it.
func (s *Server) socksAuthenticate(cc *clientConn, methods []byte) (*auth.Principal, exits.Steering, bool) {
	var steer exits.Steering
	offers := func(m byte) bool { return slices.Contains(methods, m) }
	if offers(socksUserPass) {
		if !s.socksChoose(cc, socksUserPass) {
			return nil, steer, false
		}
		login, password, err := readUserPass(cc.br)
		if err != nil {
			s.socksRefused(cc, "malformed", "err", err)
			return nil, steer, false
		}
		p, steer, rf := s.socksLogin(cc.ctx, login, password)
		status := byte(0)
		if rf != nil {
			status = 1
			if rf == errAuthFailed { // counted before the client hears of it, as over HTTP
				s.countAuthFailure(cc.src)
			}
			s.socksRefused(cc, rf.Reason)
		}
		cc.bw.Write([]byte{socksAuthVer, status})
		if err := cc.bw.Flush(); err != nil || rf != nil {
			return nil, steer, false
		}
		return p, steer, true
	}
	if offers(socksNoAuth) {
		if p, ok := s.cfg.Accounts.ByIP(cc.src); ok {
			return p, steer, s.socksChoose(cc, socksNoAuth)
		}
	}
	s.socksChoose(cc, socksNoMethod)
	s.socksRefused(cc, "auth-required", "methods", methods)
	return nil, steer, false
}

// socksLogin checks a username and password: a login (with steering parameters) and its password,
// or the username "token" and an API token.
func (s *Server) socksLogin(ctx context.Context, login, password string) (*auth.Principal, exits.Steering, *refusal) {
	var steer exits.Steering
	if login == TokenUser && auth.WellFormedToken(password) {
		p, err := s.cfg.Accounts.AuthenticateToken(password)
		if err != nil {
			return nil, steer, errAuthFailed
		}
		return p, steer, nil
	}
	base, steer, err := exits.ParseUsername(login)
	if err != nil {
		return nil, steer, failure(err)
	}
	p, err := s.cfg.Accounts.Authenticate(ctx, base, password)
	switch {
	case errors.Is(err, auth.ErrBadCredentials):
		return nil, steer, errAuthFailed
	case err != nil:
		return nil, steer, errClientGone
	}
	return p, steer, nil
}

// socksChoose answers the greeting with the method chosen; it reports whether the answer went out
// and the method is one to go on with.
func (s *Server) socksChoose(cc *clientConn, method byte) bool {
	cc.bw.Write([]byte{socksVersion, method})
	return cc.bw.Flush() == nil && method != socksNoMethod
}

// socksAdmit applies the checks that follow authentication on the HTTP proxy: the login may use this
// proxy server, has bandwidth left, and is within its connections.
func (s *Server) socksAdmit(p *auth.Principal) (code byte, reason string) {
	switch {
	case p.Disabled:
		return socksNotAllowed, errDisabled.Reason
	case !p.MayUse(s.cfg.Name):
		return socksNotAllowed, errNotAuthorized.Reason
	}
	if rf := s.checkBandwidth(p); rf != nil {
		return socksNotAllowed, rf.Reason
	}
	if rf := s.acquireAccount(p); rf != nil {
		return socksGeneralFailure, rf.Reason
	}
	return socksSucceeded, ""
}

// socksConnect chooses an exit as the username steers, dials target from it under the egress policy
// and, once connected, answers success and starts the tunnel. It reports whether the tunnel started.
func (s *Server) socksConnect(cc *clientConn, p *auth.Principal, steer exits.Steering, target string) bool {
	if steer.Timeout == 0 {
		steer.Timeout = s.cfg.OriginTimeout
	}
	a, err := s.newAttempts(p, steer)
	if err != nil {
		s.socksReply(cc, socksReplyFor(err), nil)
		s.socksRefused(cc, failure(err).Reason, "login", p.Login, "target", target)
		return false
	}
	upstream, err := a.dial(cc, target)
	cc.entryOutcome(int(socksSucceeded), a.choice.Exit.IP, "")
	if err != nil {
		s.socksReply(cc, socksReplyFor(err), nil)
		s.socksRefused(cc, failure(err).Reason, "login", p.Login, "target", target, "exit", a.choice.Exit.IP, "err", err)
		return false
	}
	cc.setUpstream(upstream)
	if cc.state.Load() == stateClosed { // Shutdown gave up on the connection while it dialled
		upstream.Close()
		return false
	}
	if !s.socksReply(cc, socksSucceeded, upstream.LocalAddr()) {
		upstream.Close()
		return false
	}
	return s.relayTunnel(cc, upstream, p, a.choice.Exit.IP, target)
}

// socksReply writes a reply with the bound address bound (nil: 0.0.0.0:0); it reports whether it
// went out.
func (s *Server) socksReply(cc *clientConn, code byte, bound net.Addr) bool {
	addr := netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	if a, ok := bound.(*net.TCPAddr); ok {
		addr = a.AddrPort()
	}
	if cc.logging {
		cc.entry.Status = int(code)
	}
	b := []byte{socksVersion, code, 0}
	if ip := addr.Addr().Unmap(); ip.Is4() {
		b = append(append(b, socksAddrIPv4), ip.AsSlice()...)
	} else {
		b = append(append(b, socksAddrIPv6), ip.AsSlice()...)
	}
	b = binary.BigEndian.AppendUint16(b, addr.Port())
	cc.bw.Write(b)
	return cc.bw.Flush() == nil
}

// socksRefused logs and counts a refusal.
func (s *Server) socksRefused(cc *clientConn, reason string, args ...any) {
	s.metrics.Error(reason)
	if cc.logging {
		cc.entry.Error = reason
		cc.endEntry(0, 0)
	}
	s.log.Info("socks5 refused", append([]any{"reason", reason, "client", cc.src}, args...)...)
}

// socksReplyFor is the reply code of a failure to choose an exit or to connect.
func socksReplyFor(err error) byte {
	var dnsErr *net.DNSError
	var errno syscall.Errno
	switch {
	case errors.As(err, &dnsErr):
		return socksHostUnreachable
	case errors.As(err, &errno) && errno == syscall.ECONNREFUSED:
		return socksRefused
	case errors.As(err, &errno) && errno == syscall.ENETUNREACH:
		return socksNetUnreachable
	case errors.As(err, &errno) && errno == syscall.EHOSTUNREACH:
		return socksHostUnreachable
	}
	switch failure(err).Reason {
	case "egress-denied", "port-denied":
		return socksNotAllowed
	case errOriginTimeout.Reason:
		return socksTTLExpired
	}
	return socksGeneralFailure
}

// socksError is a request the server understood but does not serve: its reply code.
type socksError byte

func (e socksError) Error() string {
	switch e {
	case socksCmdUnsupported:
		return "command not supported"
	case socksHostUnreachable:
		return "not a host name"
	}
	return "address type not supported"
}

// hostName reports whether name can be a DNS host name: letters, digits, '-', '_' and '.', at most
// 253 bytes. Anything else (brackets, colons, spaces) would be read as another address by the dialer.
func hostName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for i := range len(name) {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// readGreeting reads the version and the methods the client offers.
func readGreeting(br *bufio.Reader) ([]byte, error) {
	head, err := readN(br, 2)
	if err != nil {
		return nil, err
	}
	if head[0] != socksVersion || head[1] == 0 {
		return nil, errSOCKS
	}
	return readN(br, int(head[1]))
}

// readUserPass reads an RFC 1929 username/password request.
func readUserPass(br *bufio.Reader) (login, password string, err error) {
	ver, err := br.ReadByte()
	if err != nil {
		return "", "", err
	}
	if ver != socksAuthVer {
		return "", "", errSOCKS
	}
	user, err := readString(br)
	if err != nil {
		return "", "", err
	}
	pass, err := readString(br)
	if err != nil {
		return "", "", err
	}
	if user == "" {
		return "", "", errSOCKS
	}
	return user, pass, nil
}

// readRequest reads a request and returns its destination as host:port. A command other than CONNECT
// or an unknown address type is a socksError, after the whole request was read.
func readRequest(br *bufio.Reader) (string, error) {
	head, err := readN(br, 4)
	if err != nil {
		return "", err
	}
	if head[0] != socksVersion {
		return "", errSOCKS
	}
	var host string
	switch head[3] {
	case socksAddrIPv4, socksAddrIPv6:
		n := 4
		if head[3] == socksAddrIPv6 {
			n = 16
		}
		b, err := readN(br, n)
		if err != nil {
			return "", err
		}
		ip, _ := netip.AddrFromSlice(b)
		host = ip.String()
	case socksAddrName:
		if host, err = readString(br); err != nil {
			return "", err
		}
		if !hostName(host) {
			if _, err := readN(br, 2); err != nil { // the port: the request is read whole before the reply
				return "", err
			}
			return "", socksError(socksHostUnreachable)
		}
	default:
		return "", socksError(socksAddrUnsupported)
	}
	port, err := readN(br, 2)
	if err != nil {
		return "", err
	}
	if head[1] != socksCmdConnect {
		return "", socksError(socksCmdUnsupported)
	}
	return net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(port)))), nil
}

// readString reads a string of one length byte and that many bytes (at most 255: the format bounds it).
func readString(br *bufio.Reader) (string, error) {
	n, err := br.ReadByte()
	if err != nil {
		return "", err
	}
	b, err := readN(br, int(n))
	return string(b), err
}

func readN(br *bufio.Reader, n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(br, b); err != nil {
		return nil, err
	}
	return b, nil
}
