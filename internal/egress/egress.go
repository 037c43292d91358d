// Package egress decides which destinations a proxy may reach and dials exactly the address it
// approved. A host name is resolved once, every resolved address is classified, and the connection is
// made to one of the approved addresses, never to the name, so a DNS answer that changes between the
// check and the dial (DNS rebinding) cannot reach an internal address.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// DefaultDenyPorts are refused unless the operator says otherwise: SMTP submission and relay ports,
// so exits are not used to send spam.
var DefaultDenyPorts = []int{25, 465, 587}

// DeniedError reports a destination the policy refuses.
type DeniedError struct {
	Dest   netip.AddrPort // zero when refused before resolving (the port, or the node's own name)
	Host   string
	Reason string // "port", ReasonSelf, or the address class: "loopback", "private", "link-local", …
}

func (e *DeniedError) Error() string {
	switch e.Reason {
	case "port":
		return fmt.Sprintf("egress to %s denied: port is blocked", e.Host)
	case ReasonSelf:
		return fmt.Sprintf("egress to %s denied: %s", e.Host, ReasonSelf)
	}
	return fmt.Sprintf("egress to %s (%s) denied: %s address", e.Host, e.Dest.Addr(), e.Reason)
}

// Policy is the operator's egress rule set. The zero Policy refuses internal addresses and no port.
type Policy struct {
	Allow     []netip.Prefix // internal ranges the operator allows anyway
	DenyPorts []int
	Self      *Self // the node's own addresses, refused whatever Allow says; nil: none known
}

// CheckPort returns a *DeniedError when port is one the operator blocks.
func (p *Policy) CheckPort(host string, port uint16) error {
	for _, d := range p.DenyPorts {
		if int(port) == d {
			return &DeniedError{Host: host, Reason: "port"}
		}
	}
	return nil
}

// CheckAddr returns a *DeniedError when dest is the node itself, or internal and not in an allowed
// prefix.
func (p *Policy) CheckAddr(host string, dest netip.AddrPort) error {
	if p.Self.Contains(dest) {
		return &DeniedError{Dest: dest, Host: host, Reason: ReasonSelf}
	}
	ip := dest.Addr().Unmap()
	for _, a := range p.Allow {
		if a.Contains(ip) {
			return nil
		}
	}
	if class := Classify(ip); class != "" {
		return &DeniedError{Dest: dest, Host: host, Reason: class}
	}
	return nil
}

// Ranges that netip's predicates do not name but that are not the public internet.
var specialPrefixes = []struct {
	prefix netip.Prefix
	class  string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (CGNAT)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("100::/64"), "discard"},
}

// Translation prefixes carry an IPv4 address in their last 32 bits; that address is what is reached.
var nat64Prefixes = []netip.Prefix{
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
}

// Classify names the class of an internal address, or returns "" for a public one.
func Classify(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid():
		return "invalid"
	case ip.IsUnspecified():
		return "unspecified"
	case ip.IsLoopback():
		return "loopback"
	case ip.IsPrivate():
		return "private"
	case ip.IsLinkLocalUnicast():
		return "link-local"
	case ip.IsMulticast(), ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast():
		return "multicast"
	case ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast"
	}
	for _, s := range specialPrefixes {
		if s.prefix.Contains(ip) {
			return s.class
		}
	}
	for _, p := range nat64Prefixes {
		if p.Contains(ip) {
			b := ip.As16()
			if c := Classify(netip.AddrFrom4([4]byte(b[12:16]))); c != "" {
				return "NAT64 " + c
			}
		}
	}
	if sixToFour.Contains(ip) { // 2002:AABB:CCDD::/48 is routed to the IPv4 address AA.BB.CC.DD
		b := ip.As16()
		if c := Classify(netip.AddrFrom4([4]byte(b[2:6]))); c != "" {
			return "6to4 " + c
		}
	}
	if ipv4Compatible.Contains(ip) { // ::A.B.C.D, deprecated; some stacks still route it to A.B.C.D
		return "IPv4-compatible"
	}
	return ""
}

var (
	sixToFour      = netip.MustParsePrefix("2002::/16")
	ipv4Compatible = netip.MustParsePrefix("::/96")
)

// Dialer connects to destinations that the Policy approves, from a given local address.
type Dialer struct {
	Policy *Policy
	// Lookup resolves a host name. Nil means the system resolver.
	Lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	// DialTCP connects local to remote. Nil means a real TCP dial; tests replace it to observe dials.
	DialTCP func(ctx context.Context, local, remote netip.AddrPort) (net.Conn, error)
}

var (
	// ErrNoAddress is returned when a host has no address of the local address's family.
	ErrNoAddress = errors.New("no address of the exit's family")
	// ErrBadDestination is returned for a destination that is not host:port.
	ErrBadDestination = errors.New("invalid destination")
)

// Dial resolves hostport once, keeps the addresses of local's family that the policy allows, and
// connects to them in order from local until one answers. An invalid local means "any".
func (d *Dialer) Dial(ctx context.Context, local netip.Addr, hostport string) (net.Conn, error) {
	host, port, err := SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	if err := d.Policy.CheckPort(hostport, port); err != nil {
		return nil, err
	}
	if d.Policy.Self.Named(hostport) {
		return nil, &DeniedError{Host: hostport, Reason: ReasonSelf}
	}
	addrs, err := d.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	var denied, dialErr error
	tried := 0
	for _, a := range addrs {
		a = a.Unmap()
		dest := netip.AddrPortFrom(a, port)
		if err := d.Policy.CheckAddr(hostport, dest); err != nil {
			denied = err
			continue
		}
		if local.IsValid() && a.Is4() != local.Unmap().Is4() {
			continue
		}
		tried++
		conn, err := d.dialTCP(ctx, netip.AddrPortFrom(local, 0), dest)
		if err == nil {
			return conn, nil
		}
		dialErr = err
		if ctx.Err() != nil {
			break
		}
	}
	switch {
	case tried > 0:
		return nil, fmt.Errorf("connect to %s: %w", hostport, dialErr)
	case denied != nil:
		return nil, denied
	default:
		return nil, fmt.Errorf("resolve %s: %w", host, ErrNoAddress)
	}
}

// Check resolves hostport and returns the policy's refusal of the first address it refuses, or
// nil when it allows them all, without connecting: it vets an address given now for connections
// made later (a webhook URL), which Dial checks again when it connects.
func (d *Dialer) Check(ctx context.Context, hostport string) error {
	host, port, err := SplitHostPort(hostport)
	if err != nil {
		return err
	}
	if err := d.Policy.CheckPort(hostport, port); err != nil {
		return err
	}
	if d.Policy.Self.Named(hostport) {
		return &DeniedError{Host: hostport, Reason: ReasonSelf}
	}
	addrs, err := d.resolve(ctx, host)
	if err != nil {
		return err
	}
	if len(addrs) == 0 {
		return fmt.Errorf("resolve %s: %w", host, ErrNoAddress)
	}
	for _, a := range addrs {
		if err := d.Policy.CheckAddr(hostport, netip.AddrPortFrom(a.Unmap(), port)); err != nil {
			return err
		}
	}
	return nil
}

// DialTrusted connects to hostport, an address the operator configured (an exit's upstream proxy),
// without the policy's checks: the operator chose it, and upstream proxies usually live on a private
// network the internal-address guard would refuse. It still resolves through Lookup and connects
// through DialTCP, from any local address, so tests that observe dials see this one too.
func (d *Dialer) DialTrusted(ctx context.Context, hostport string) (net.Conn, error) {
	host, port, err := SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	addrs, err := d.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %s: no address", host)
	}
	var dialErr error
	for _, a := range addrs {
		conn, err := d.dialTCP(ctx, netip.AddrPort{}, netip.AddrPortFrom(a.Unmap(), port))
		if err == nil {
			return conn, nil
		}
		dialErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("connect to %s: %w", hostport, dialErr)
}

func (d *Dialer) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip}, nil
	}
	lookup := d.Lookup
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	addrs, err := lookup(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	return addrs, nil
}

func (d *Dialer) dialTCP(ctx context.Context, local, remote netip.AddrPort) (net.Conn, error) {
	if d.DialTCP != nil {
		return d.DialTCP(ctx, local, remote)
	}
	var nd net.Dialer
	if local.Addr().IsValid() {
		nd.LocalAddr = net.TCPAddrFromAddrPort(local)
		nd.Control = bindAddressNoPort
	}
	return nd.DialContext(ctx, "tcp", remote.String())
}

// SplitHostPort splits "host:port" and requires a numeric port in 1–65535 and a non-empty host.
// IPv6 literals come back without brackets.
func SplitHostPort(hostport string) (string, uint16, error) {
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, fmt.Errorf("%w %q: want host:port", ErrBadDestination, hostport)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil || port == 0 || host == "" {
		return "", 0, fmt.Errorf("%w %q: want host:port with a port from 1 to 65535", ErrBadDestination, hostport)
	}
	if numericLookalike(host) {
		return "", 0, fmt.Errorf("%w %q: a numeric host must be a canonical IP address (a.b.c.d)", ErrBadDestination, hostport)
	}
	return host, uint16(port), nil
}

// numericLookalike reports whether host is made only of numbers — decimal, octal (leading 0) or hex
// (0x) — in one to four dot-separated parts, without being a canonical dotted-quad IPv4 literal:
// 127.2, 2130706434, 0x7f.1 or 0177.0.0.1, which browsers and libc read as 127.0.0.2 or 127.0.0.1
// and a resolver may answer otherwise. Such a host is refused before any lookup.
func numericLookalike(host string) bool {
	n := 0
	for part := range strings.SplitSeq(strings.TrimSuffix(host, "."), ".") { // no allocation: every dial runs this
		if n++; n > 4 || !numericPart(part) {
			return false
		}
	}
	ip, err := netip.ParseAddr(host)
	var buf [len("255.255.255.255")]byte
	return err != nil || !ip.Is4() || string(ip.AppendTo(buf[:0])) != host
}

// numericPart reports whether s is a number as inet_aton reads one: decimal, octal or 0x-hex.
func numericPart(s string) bool {
	if rest, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		for _, c := range rest {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
		return true
	}
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
