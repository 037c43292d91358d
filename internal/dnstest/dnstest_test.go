package dnstest_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/dnstest"
)

// resolver returns a resolver that asks only s.
func resolver(s *dnstest.Server) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, s.Addr())
		},
	}
}

func TestServerAnswers(t *testing.T) {
	s := dnstest.Start(t)
	v4, v4b := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.11")
	v6 := netip.MustParseAddr("2001:db8::10")
	s.Set("both.example.test", v4, v6)
	s.Set("Four.Example.Test.", v4, v4b)
	s.Set("six.example.test", v6)
	s.Set("gone.example.test", v4)
	s.Set("gone.example.test")
	r := resolver(s)
	tests := []struct {
		host, network string
		want          []netip.Addr
		notFound      bool
	}{
		{"both.example.test", "ip4", []netip.Addr{v4}, false},
		{"both.example.test", "ip6", []netip.Addr{v6}, false},
		{"four.example.test", "ip4", []netip.Addr{v4, v4b}, false},
		{"FOUR.example.test", "ip4", []netip.Addr{v4, v4b}, false},
		{"six.example.test", "ip", []netip.Addr{v6}, false},
		{"six.example.test", "ip4", nil, true}, // a known name without A records: no address
		{"gone.example.test", "ip", nil, true},
		{"unknown.example.test", "ip", nil, true},
	}
	for _, tt := range tests {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got, err := r.LookupNetIP(ctx, tt.network, tt.host)
		cancel()
		var dnsErr *net.DNSError
		if notFound := errors.As(err, &dnsErr) && dnsErr.IsNotFound; notFound != tt.notFound || (err != nil && !notFound) {
			t.Errorf("LookupNetIP(%s, %s): error %v, want not-found %v", tt.network, tt.host, err, tt.notFound)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("LookupNetIP(%s, %s) = %v, want %v", tt.network, tt.host, got, tt.want)
		}
	}
}

func TestServerStopsOnCleanup(t *testing.T) {
	var addr string
	t.Run("server", func(t *testing.T) { addr = dnstest.Start(t).Addr() })
	// The port is free again once the subtest's cleanup has run.
	conn, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("listening on %s after cleanup: %v", addr, err)
	}
	conn.Close()
}
