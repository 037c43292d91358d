package connlimit_test

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/exitmesh/exitmesh/internal/connlimit"
)

func TestPerIPCountsEachAddressApart(t *testing.T) {
	l := connlimit.NewPerIP(2)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	for i, want := range []bool{true, true, false} {
		if got := l.Acquire(a); got != want {
			t.Fatalf("connection %d from %s: allowed %v, want %v", i+1, a, got, want)
		}
	}
	if !l.Acquire(b) {
		t.Fatalf("%s refused because of %s", b, a)
	}
	l.Release(a)
	if !l.Acquire(a) {
		t.Fatal("refused after a release")
	}
	l.Release(a)
	l.Release(a)
	l.Release(b)
	if n := l.Open(a) + l.Open(b); n != 0 {
		t.Errorf("%d connections still counted after all closed", n)
	}
	if !l.Acquire(netip.Addr{}) {
		t.Error("a connection without an IP (not TCP) was refused")
	}
}

// TestPerIPCountsIPv6ByItsSlash64: addresses of one /64 share a count (a host holds the whole /64
// and could take a fresh address per connection); another /64 has its own.
func TestPerIPCountsIPv6ByItsSlash64(t *testing.T) {
	l := connlimit.NewPerIP(2)
	for i, ip := range []string{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9"} {
		if !l.Acquire(netip.MustParseAddr(ip)) {
			t.Fatalf("connection %d from %s refused", i+1, ip)
		}
	}
	if l.Acquire(netip.MustParseAddr("2001:db8:1:2:abcd::1")) {
		t.Error("a third address of the same /64 was allowed past a limit of 2")
	}
	if !l.Acquire(netip.MustParseAddr("2001:db8:1:3::1")) {
		t.Error("an address of another /64 was refused")
	}
	l.Release(netip.MustParseAddr("2001:db8:1:2::1"))
	if n := l.Open(netip.MustParseAddr("2001:db8:1:2::77")); n != 1 {
		t.Errorf("%d connections counted for the /64 after one of two closed, want 1", n)
	}
}

// TestPerAccountNeverExceedsTheLimit races many acquirers for one account: at no time are more than
// the limit in flight, and every release is accounted for.
func TestPerAccountNeverExceedsTheLimit(t *testing.T) {
	const limit = 5
	l := connlimit.NewPerAccount(limit)
	var inFlight, peak atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 500 {
				if !l.Acquire(42) {
					continue
				}
				n := inFlight.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				inFlight.Add(-1)
				l.Release(42)
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p > limit {
		t.Errorf("%d in flight at once, limit %d", p, limit)
	}
	if n := l.InFlight(42); n != 0 {
		t.Errorf("%d still counted in flight", n)
	}
	if !l.Acquire(7) || l.InFlight(7) != 1 {
		t.Error("another account is not counted apart")
	}
	var nilLimit *connlimit.PerAccount
	if !nilLimit.Acquire(1) {
		t.Error("a nil limiter refused")
	}
}
