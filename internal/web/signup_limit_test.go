package web

import (
	"net/netip"
	"testing"
	"time"
)

func TestRateLimiter(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newRateLimiter(2, time.Hour)
	steps := []struct {
		at       time.Duration
		keys     []string
		ok       bool
		wantWait time.Duration
	}{
		{0, []string{"ip:a"}, true, 0},
		{time.Minute, []string{"ip:a"}, true, 0},
		{2 * time.Minute, []string{"ip:a"}, false, 58 * time.Minute}, // the first event leaves the window at 60m
		{3 * time.Minute, []string{"ip:b", "account:x"}, true, 0},
		{4 * time.Minute, []string{"ip:a", "account:y"}, false, 56 * time.Minute},
		{5 * time.Minute, []string{"ip:c", "account:y"}, true, 0}, // the refusal above recorded nothing for y
		{61 * time.Minute, []string{"ip:a"}, true, 0},
		{62 * time.Minute, []string{"ip:a"}, true, 0},
		{63 * time.Minute, []string{"ip:a"}, false, 58 * time.Minute},
	}
	for i, s := range steps {
		ok, wait := l.allow(start.Add(s.at), s.keys...)
		if ok != s.ok || wait != s.wantWait {
			t.Errorf("step %d (%v, %v): allow = %v, %v; want %v, %v", i, s.at, s.keys, ok, wait, s.ok, s.wantWait)
		}
	}
}

func TestRateLimiterBounded(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newRateLimiter(1, time.Minute)
	l.maxKeys = 3
	for i, k := range []string{"a", "b", "c", "d"} {
		if ok, _ := l.allow(start, k); !ok {
			t.Fatalf("key %d refused below the bound", i)
		}
	}
	if ok, wait := l.allow(start.Add(time.Second), "e"); ok || wait <= 0 {
		t.Errorf("a new key with the table full of live keys: %v, %v; want refused", ok, wait)
	}
	if ok, _ := l.allow(start.Add(2*time.Minute), "e"); !ok || len(l.events) > 2 {
		t.Errorf("after the window: allowed %v with %d keys kept, want allowed after a sweep", ok, len(l.events))
	}
}

func TestIPKey(t *testing.T) {
	for ip, want := range map[string]string{
		"192.0.2.7":            "ip:192.0.2.7",
		"::ffff:192.0.2.7":     "ip:192.0.2.7",
		"2001:db8:1:2:3:4:5:6": "ip:2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::":  "ip:2001:db8:1:2::/64",
		"2001:db8:1:3::1":      "ip:2001:db8:1:3::/64",
	} {
		if got := ipKey(netip.MustParseAddr(ip)); got != want {
			t.Errorf("ipKey(%s) = %q, want %q", ip, got, want)
		}
	}
}
