package web

import (
	"net/netip"
	"sync"
	"time"
)

// rateLimiter admits at most limit events per key within a sliding window: sign-ups per source IP,
// link resends per IP and per account. Memory is bounded: at most maxKeys keys are tracked; when
// that many are live, new keys are refused until some expire (sign-up fails closed under a flood).
type rateLimiter struct {
	limit   int
	window  time.Duration
	maxKeys int

	mu        sync.Mutex // guards the following fields
	events    map[string][]time.Time
	lastSweep time.Time
}

func newRateLimiter(limit int, window time.Duration) *rateLimiter {
	return &rateLimiter{limit: limit, window: window, maxKeys: 100_000, events: make(map[string][]time.Time)}
}

// allow records an event at now for every key and returns true if each key is under its limit;
// otherwise it records nothing and returns how long until every key would be admitted.
func (l *rateLimiter) allow(now time.Time, keys ...string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cutoff := now.Add(-l.window)
	var wait time.Duration
	for _, k := range keys {
		times := recent(l.events[k], cutoff)
		l.events[k] = times
		if len(times) >= l.limit {
			wait = max(wait, times[0].Sub(cutoff))
		}
	}
	if wait == 0 && len(l.events) > l.maxKeys {
		wait = l.sweep(now, cutoff)
	}
	if wait > 0 {
		for _, k := range keys {
			if len(l.events[k]) == 0 {
				delete(l.events, k)
			}
		}
		return false, wait
	}
	for _, k := range keys {
		l.events[k] = append(l.events[k], now)
	}
	return true, 0
}

// sweep drops the keys without a recent event, at most once a second, and returns how long to wait
// if the table is still full.
func (l *rateLimiter) sweep(now, cutoff time.Time) time.Duration {
	if now.Sub(l.lastSweep) >= time.Second {
		l.lastSweep = now
		for k, times := range l.events {
			if times = recent(times, cutoff); len(times) == 0 {
				delete(l.events, k)
			} else {
				l.events[k] = times
			}
		}
	}
	if len(l.events) > l.maxKeys {
		return time.Minute
	}
	return 0
}

// recent drops the times at or before cutoff from times, which is in order.
func recent(times []time.Time, cutoff time.Time) []time.Time {
	i := 0
	for i < len(times) && !times[i].After(cutoff) {
		i++
	}
	return times[i:]
}

// ipKey is the limiter's key for a source address: an IPv4 address, or an IPv6 address's /64, which
// one customer usually holds whole.
func ipKey(ip netip.Addr) string {
	if ip.Is6() && !ip.Is4In6() {
		p, _ := ip.Prefix(64)
		return "ip:" + p.String()
	}
	return "ip:" + ip.Unmap().String()
}
