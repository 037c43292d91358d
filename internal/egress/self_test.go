package egress

import (
	"context"
	"errors"
	"net/netip"
	"testing"
)

// The node's own addresses are refused whatever the allow list says, and no packet is sent: the
// dialler's hooks record every lookup and dial and refuse them all.
func TestSelfIsRefusedWhateverTheAllowList(t *testing.T) {
	self := &Self{}
	self.Set(SelfAddrs{
		Listeners: []netip.AddrPort{
			netip.MustParseAddrPort("127.0.0.1:8443"), // the API, on one address
			netip.MustParseAddrPort("0.0.0.0:31280"),  // a proxy server, on every address
			netip.MustParseAddrPort("[::]:9464"),      // metrics, on every address
		},
		Advertised: []string{"us-ca.proxy.example:31280", "198.51.100.7:31280"},
		Exits:      []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")},
		Local:      []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("203.0.113.5")},
	})
	rec := &recorder{}
	var lookups []string
	d := &Dialer{
		Policy: &Policy{Allow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}, Self: self},
		Lookup: func(_ context.Context, host string) ([]netip.Addr, error) {
			lookups = append(lookups, host)
			if host == "alias.example" { // another name of the node's address
				return []netip.Addr{netip.MustParseAddr("203.0.113.5")}, nil
			}
			return nil, errors.New("lookups are refused by the test")
		},
		DialTCP: rec.dial,
	}
	refused := []string{
		"127.0.0.1:8443",             // a listener on its address
		"[::ffff:127.0.0.1]:8443",    // the same, IPv4-mapped
		"127.0.0.9:31280",            // a wildcard listener answers on every loopback address
		"203.0.113.5:31280",          // and on the machine's own addresses
		"[::1]:9464",                 // an IPv6 wildcard listener on IPv6 loopback
		"127.0.0.1:9464",             // and on IPv4
		"0.0.0.0:443",                // the unspecified address is this machine, any port
		"[::]:22",                    //
		"192.0.2.10:22",              // an exit's address, any port
		"[2001:db8::10]:80",          //
		"us-ca.proxy.example:31280",  // the advertised name, not resolved
		"US-CA.Proxy.Example.:31280", // spelled otherwise
		"198.51.100.7:31280",         // the advertised address (NAT)
		"alias.example:31280",        // a name resolving to the machine, on a wildcard port
	}
	for _, target := range refused {
		_, err := d.Dial(context.Background(), netip.Addr{}, target)
		var denied *DeniedError
		if !errors.As(err, &denied) || denied.Reason != ReasonSelf {
			t.Errorf("%s: error %v, want a denial as the proxy itself", target, err)
		}
	}
	if len(rec.dials) != 0 {
		t.Errorf("dials made: %v, want none", rec.dials)
	}
	if len(lookups) != 1 || lookups[0] != "alias.example" {
		t.Errorf("lookups %v, want only alias.example (the advertised name is refused before resolving)", lookups)
	}
	allowed := []string{
		"127.0.0.1:8080",    // another port of a specific listener's address
		"198.51.100.7:443",  // another port of the advertised address
		"203.0.113.6:31280", // not the machine
		"127.0.0.2:8443",    // another loopback address than the API's own
	}
	for _, target := range allowed {
		if _, err := d.Dial(context.Background(), netip.Addr{}, target); !errors.Is(err, errRefusedByTest) {
			t.Errorf("%s: error %v, want the dial attempted (allowed)", target, err)
		}
	}
	for _, ip := range []string{"192.0.2.10", "::ffff:192.0.2.10", "2001:db8::10"} {
		if !self.IsExit(netip.MustParseAddr(ip)) {
			t.Errorf("IsExit(%s) = false", ip)
		}
	}
	if self.IsExit(netip.MustParseAddr("203.0.113.5")) {
		t.Error("IsExit of a local address that is no exit")
	}
}

// A Self that was never set, or a nil one, refuses nothing.
func TestEmptySelf(t *testing.T) {
	var none *Self
	if none.Contains(netip.MustParseAddrPort("127.0.0.1:1")) || none.Named("a:1") || none.IsExit(netip.MustParseAddr("127.0.0.1")) {
		t.Error("a nil Self holds addresses")
	}
	if (&Self{}).Contains(netip.MustParseAddrPort("0.0.0.0:1")) {
		t.Error("an empty Self holds the unspecified address")
	}
}
