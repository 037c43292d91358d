package proxy

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/exitmesh/exitmesh/internal/accesslog"
	"github.com/exitmesh/exitmesh/internal/auth"
)

// The access log's entry of the request or tunnel a connection is serving is filled in as it goes:
// begun when the request is read, given the login once authenticated, the exit and the outcome when
// answered, and handed to the log when it ends. Nothing of it runs without an access log.

// beginEntry starts the entry of request r.
func (cc *clientConn) beginEntry(r *http.Request) {
	e := &cc.entry
	*e = accesslog.Entry{Time: time.Now(), Proxy: cc.s.cfg.Name, Client: cc.src, Method: r.Method}
	hostport := r.Host
	if r.Method != http.MethodConnect {
		hostport = originAddr(r.URL.Scheme, r.URL.Host)
		e.Path = r.URL.RequestURI()
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	e.Host = host
	e.Port, _ = strconv.Atoi(port)
	cc.logging = true
}

// beginTunnelEntry starts the entry of a SOCKS5 tunnel to target by p.
func (cc *clientConn) beginTunnelEntry(method, target string, p *auth.Principal) {
	cc.entry = accesslog.Entry{Time: time.Now(), Proxy: cc.s.cfg.Name, Client: cc.src, Method: method}
	host, port, _ := net.SplitHostPort(target)
	cc.entry.Host = host
	cc.entry.Port, _ = strconv.Atoi(port)
	cc.logging = true
	cc.entryLogin(p)
}

// entryLogin records who the request is from.
func (cc *clientConn) entryLogin(p *auth.Principal) {
	if !cc.logging {
		return
	}
	cc.entry.Account = p.Account
	if p.SubID != 0 {
		cc.entry.SubAccount = p.Login
	}
}

// entryOutcome records the answer: its status, the exit used (invalid: none) and the proxy's error
// reason ("" for an origin's answer).
func (cc *clientConn) entryOutcome(status int, exit netip.Addr, reason string) {
	if !cc.logging {
		return
	}
	cc.entry.Status, cc.entry.Error = status, reason
	if exit.IsValid() {
		cc.entry.Exit = exit
	}
}

// entryAnswered records an origin's answer, relayed through exit, and the bytes moved each way.
func (cc *clientConn) entryAnswered(status int, exit netip.Addr, in, out int64) {
	if !cc.logging {
		return
	}
	cc.entry.Status, cc.entry.Exit, cc.entry.BytesIn, cc.entry.BytesOut = status, exit, in, out
}

// endEntry hands the entry, with the bytes moved each way, to the access log.
func (cc *clientConn) endEntry(in, out int64) {
	if !cc.logging {
		return
	}
	cc.logging = false
	e := &cc.entry
	e.BytesIn, e.BytesOut, e.Duration = in, out, time.Since(e.Time)
	cc.s.cfg.AccessLog.Add(*e)
}
