// Package hostnames keeps accounts' authorized hostnames pointing at their current address
// (SPEC §2.4: re-resolved at least every 5 minutes). A Refresher re-resolves every hostname
// periodically and records the result in the store, from which every node's auth view learns it.
package hostnames

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// LookupTimeout bounds every lookup a LookupFunc from NewLookup makes.
const LookupTimeout = 5 * time.Second

// ErrNotFound means a hostname has no address: the name does not exist, or has no A or AAAA record.
var ErrNotFound = errors.New("hostname does not resolve")

// LookupFunc returns a host's addresses.
type LookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)

// NewLookup returns a LookupFunc that asks the DNS server at resolverAddr (host:port, over UDP,
// TCP for truncated answers), or the system resolver when resolverAddr is "". Each lookup gives up
// after LookupTimeout.
func NewLookup(resolverAddr string) LookupFunc {
	r := net.DefaultResolver
	if resolverAddr != "" {
		r = &net.Resolver{
			PreferGo: true,
			Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, resolverAddr)
			},
		}
	}
	return func(ctx context.Context, host string) ([]netip.Addr, error) {
		ctx, cancel := context.WithTimeout(ctx, LookupTimeout)
		defer cancel()
		return r.LookupNetIP(ctx, "ip", host)
	}
}

// Resolve returns host's address: its first IPv4 address, else its first address, unmapped. An
// error wraps ErrNotFound when host has no address; any other error (a timeout, a failing server)
// says nothing about the address.
func Resolve(ctx context.Context, lookup LookupFunc, host string) (netip.Addr, error) {
	addrs, err := lookup(ctx, host)
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return netip.Addr{}, fmt.Errorf("resolve %s: %w", host, ErrNotFound)
	case err != nil:
		return netip.Addr{}, fmt.Errorf("resolve %s: %w", host, err)
	}
	var first netip.Addr
	for _, a := range addrs {
		a = a.Unmap().WithZone("")
		if a.Is4() {
			return a, nil
		}
		if !first.IsValid() {
			first = a
		}
	}
	if !first.IsValid() {
		return netip.Addr{}, fmt.Errorf("resolve %s: %w", host, ErrNotFound)
	}
	return first, nil
}
