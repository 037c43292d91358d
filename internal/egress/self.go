package egress

import (
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
)

// ReasonSelf is the DeniedError reason for a destination that is the node itself.
const ReasonSelf = "the proxy itself"

// Self is what the node itself answers on: its listeners (proxy servers, API, metrics), the addresses
// its proxy servers are advertised at, and its exits' addresses. A destination among them is refused
// whatever the allow list says: a tunnel from the proxy into itself would chain the proxy into itself
// and let the inner requests arrive from an exit's address instead of the customer's own (so a brute
// force would ban the exit, not the attacker), and an exit's address is the node's own machine, any
// port of it. The zero Self holds nothing; the node's owner replaces the whole set with Set whenever
// its listeners or exits change. Its methods are safe for concurrent use.
type Self struct {
	set atomic.Pointer[selfSet]
}

// SelfAddrs lists the node's own addresses for Set.
type SelfAddrs struct {
	// Listeners are bound addresses; an unspecified IP (0.0.0.0, ::) means every address of the
	// machine on that port.
	Listeners []netip.AddrPort
	// Advertised are the host:port addresses customers are told to use, which may be names or
	// addresses that reach the node through NAT.
	Advertised []string
	// Exits are the exits' addresses: every port of them is refused.
	Exits []netip.Addr
	// Local are the machine's own addresses, which a listener on an unspecified IP answers on; nil
	// means the interfaces' addresses now (loopback is always included).
	Local []netip.Addr
}

type selfSet struct {
	bound  map[netip.AddrPort]struct{}
	any    map[uint16]struct{} // ports bound on every address
	local  map[netip.Addr]struct{}
	named  map[string]struct{} // advertised host:port, normalized
	exitIP map[netip.Addr]struct{}
}

// Set replaces the node's addresses.
func (s *Self) Set(a SelfAddrs) {
	set := &selfSet{
		bound:  make(map[netip.AddrPort]struct{}),
		any:    make(map[uint16]struct{}),
		local:  make(map[netip.Addr]struct{}),
		named:  make(map[string]struct{}),
		exitIP: make(map[netip.Addr]struct{}),
	}
	for _, l := range a.Listeners {
		ip := l.Addr().Unmap()
		if ip.IsUnspecified() {
			set.any[l.Port()] = struct{}{}
			continue
		}
		set.bound[netip.AddrPortFrom(ip, l.Port())] = struct{}{}
	}
	local := a.Local
	if local == nil {
		local = interfaceAddrs()
	}
	for _, ip := range local {
		set.local[ip.Unmap()] = struct{}{}
	}
	for _, hp := range a.Advertised {
		if host, port, err := SplitHostPort(hp); err == nil {
			if ip, err := netip.ParseAddr(host); err == nil {
				set.bound[netip.AddrPortFrom(ip.Unmap(), port)] = struct{}{}
			}
			set.named[normalizeHostPort(hp)] = struct{}{}
		}
	}
	for _, ip := range a.Exits {
		set.exitIP[ip.Unmap()] = struct{}{}
	}
	s.set.Store(set)
}

// Named reports whether hostport, as a client wrote it, is one of the node's advertised addresses.
func (s *Self) Named(hostport string) bool {
	set := s.load()
	if set == nil || len(set.named) == 0 {
		return false
	}
	_, ok := set.named[normalizeHostPort(hostport)]
	return ok
}

// Contains reports whether a connection to dest would reach the node itself.
func (s *Self) Contains(dest netip.AddrPort) bool {
	set := s.load()
	if set == nil {
		return false
	}
	ip := dest.Addr().Unmap()
	if ip.IsUnspecified() { // the kernel sends it to the source address, or to loopback: this machine
		return true
	}
	if _, ok := set.exitIP[ip]; ok {
		return true
	}
	if _, ok := set.bound[netip.AddrPortFrom(ip, dest.Port())]; ok {
		return true
	}
	if _, ok := set.any[dest.Port()]; ok {
		if _, local := set.local[ip]; local || ip.IsLoopback() {
			return true
		}
	}
	return false
}

// IsExit reports whether ip is one of the node's exits' addresses: traffic from it may be any
// customer's, relayed by the node itself.
func (s *Self) IsExit(ip netip.Addr) bool {
	set := s.load()
	if set == nil {
		return false
	}
	_, ok := set.exitIP[ip.Unmap()]
	return ok
}

func (s *Self) load() *selfSet {
	if s == nil {
		return nil
	}
	return s.set.Load()
}

// normalizeHostPort lower-cases a host:port and drops a host name's final dot, as DNS does.
func normalizeHostPort(hp string) string {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return strings.ToLower(hp)
	}
	return net.JoinHostPort(strings.TrimSuffix(strings.ToLower(host), "."), port)
}

// interfaceAddrs returns the machine's addresses, as far as the system tells.
func interfaceAddrs() []netip.Addr {
	addrs, _ := net.InterfaceAddrs()
	var ips []netip.Addr
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			ips = append(ips, p.Addr())
		}
	}
	return ips
}
