package exits

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

func TestSteeringHeadersWinOverUsername(t *testing.T) {
	h := http.Header{}
	h.Set(HeaderSessionTTL, "30")
	h.Set(HeaderSessionMode, "Strict")
	h.Set(HeaderRegion, "us-ny")
	h.Set(HeaderCity, "NEW_YORK")
	h.Set(HeaderASN, "as64501")
	s, err := ParseSteering(h, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	_, u, err := ParseUsername("alice-session-s-sesstime-5-region-us_ca-city-los_angeles-asn-64500-cc-us")
	if err != nil {
		t.Fatal(err)
	}
	s.Merge(u)
	want := Steering{Country: "US", Region: "US-NY", City: "new_york", ASN: 64501, Session: "s", SessionTTL: 30 * time.Minute, Strict: true}
	if fmt.Sprint(s) != fmt.Sprint(want) {
		t.Errorf("headers merged over the username = %+v, want %+v", s, want)
	}

	for _, b := range []struct{ header, value string }{
		{HeaderSessionTTL, "0"}, {HeaderSessionTTL, "1441"}, {HeaderSessionTTL, "1.5"}, {HeaderSessionMode, "loose"},
		{HeaderRegion, "USCA"}, {HeaderCity, "los angeles"}, {HeaderASN, "AS"},
	} {
		h := http.Header{}
		h.Set(b.header, b.value)
		var se *SteeringError
		if _, err := ParseSteering(h, time.Minute); !errors.As(err, &se) || se.Header != b.header {
			t.Errorf("%s: %q: err = %v, want *SteeringError for that header", b.header, b.value, err)
		}
	}
}

// fakeClock is a clock that moves only when told to.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

func TestSessionTTLPerSession(t *testing.T) {
	p := testPool(t)
	clk := &fakeClock{now: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	tab := NewSessions(10*time.Minute, 1000, clk.Now)
	short := Steering{Session: "short", SessionTTL: time.Minute}
	long := Steering{Session: "long"}
	choose := func(s Steering) string {
		t.Helper()
		c, err := tab.Choose(p, SessionKey{AccountID: 1, ID: s.Session}, s)
		if err != nil {
			t.Fatal(err)
		}
		return c.Exit.IP.String()
	}
	firstShort, firstLong := choose(short), choose(long)
	clk.now = clk.now.Add(59 * time.Second)
	if got := choose(short); got != firstShort {
		t.Fatalf("sesstime-1 moved from %s to %s after 59 s idle", firstShort, got)
	}
	// A minute idle ends the short session; the next request rotates like a new one, so over 20
	// expiries it must land elsewhere at least once. The table's 10 minutes still hold the other.
	moved := false
	for range 20 {
		clk.now = clk.now.Add(61 * time.Second)
		moved = moved || choose(short) != firstShort
		if got := choose(long); got != firstLong {
			t.Fatalf("the session with the table's TTL moved from %s to %s after a minute", firstLong, got)
		}
	}
	if !moved {
		t.Errorf("sesstime-1 kept %s through 20 idle minutes", firstShort)
	}
}

func TestStrictSession(t *testing.T) {
	p := testPool(t)
	tab := NewSessions(10*time.Minute, 1000, nil)
	strict := Steering{Session: "s", Strict: true}
	loose := Steering{Session: "l"}
	kStrict, kLoose := SessionKey{AccountID: 1, ID: "s"}, SessionKey{AccountID: 1, ID: "l"}
	first, err := tab.Choose(p, kStrict, strict)
	if err != nil {
		t.Fatalf("a strict session's first request: %v", err)
	}
	// Put the loose session on the same exit, then take that exit out of rotation.
	for c, _ := tab.Choose(p, kLoose, loose); c.Exit != first.Exit; c, _ = tab.Choose(p, kLoose, loose) {
		tab = withForgotten(tab, kLoose)
	}
	first.Exit.health.down.Store(true)
	if _, err := tab.Choose(p, kStrict, strict); !errors.Is(err, ErrSessionExit) {
		t.Fatalf("strict session with its exit down: %v, want ErrSessionExit", err)
	}
	if c, err := tab.Choose(p, kLoose, loose); err != nil || c.Exit == first.Exit {
		t.Fatalf("a non-strict session with its exit down got %v, %v; want another exit", c.Exit, err)
	}
	first.Exit.health.down.Store(false)
	if c, err := tab.Choose(p, kStrict, strict); err != nil || c.Exit != first.Exit {
		t.Fatalf("strict session after its exit came back: %v, %v; want %s again", c.Exit, err, first.Exit.IP)
	}
	// Removed from the pool (a reload): the same.
	var rest []*Exit
	for _, e := range p.Exits() {
		if e != first.Exit {
			rest = append(rest, e)
		}
	}
	if _, err := tab.Choose(NewPool(rest), kStrict, strict); !errors.Is(err, ErrSessionExit) {
		t.Fatalf("strict session with its exit removed: %v, want ErrSessionExit", err)
	}
}

// withForgotten drops one session, for a test that draws until a session lands where it wants.
func withForgotten(t *Sessions, k SessionKey) *Sessions {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, k)
	return t
}
