package exits

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/egress"
)

func TestParseUsernameGrammar(t *testing.T) {
	tests := []struct {
		login, base string
		want        Steering
		wantErr     string // what the message must say, the key it names included
	}{
		{"alice-cc-de-sessid-x1", "alice", Steering{Country: "DE", Session: "x1"}, ""},
		{"alice-CC-jp-SessId-x1", "alice", Steering{Country: "JP", Session: "x1"}, ""},
		{"alice-session-s-sesstime-1", "alice", Steering{Session: "s", SessionTTL: time.Minute}, ""},
		{"alice-session-s-sesstime-1440", "alice", Steering{Session: "s", SessionTTL: 24 * time.Hour}, ""},
		{"alice-session-s-sessmode-strict", "alice", Steering{Session: "s", Strict: true}, ""},
		{"alice-session-s-sessmode-STRICT", "alice", Steering{Session: "s", Strict: true}, ""},
		{"alice-region-us_ca-city-Los_Angeles-asn-AS64500", "alice", Steering{Region: "US-CA", City: "los_angeles", ASN: 64500}, ""},
		{"alice-country-us-asn-64500", "alice", Steering{Country: "US", ASN: 64500}, ""},
		{"alice-session-s-sesstime-0", "", Steering{}, `username -sesstime-: "0" is not a number of minutes from 1 to 1440`},
		{"alice-session-s-sesstime-1441", "", Steering{}, `username -sesstime-: "1441" is not a number`},
		{"alice-session-s-sesstime-abc", "", Steering{}, `username -sesstime-: "abc" is not a number`},
		{"alice-session-s-sesstime--1", "", Steering{}, "pairs"},
		{"alice-session-s-sessmode-sticky", "", Steering{}, `username -sessmode-: "sticky" is not a session mode`},
		{"alice-session-s-sessmode-", "", Steering{}, `username -sessmode-: "" is not a session mode`},
		{"alice-sessid-a-sessid-b", "", Steering{}, `"-sessid-" is given twice`},
		{"alice-session-a-sessid-b", "", Steering{}, `"-sessid-" is given twice`},
		{"alice-cc-de-country-de", "", Steering{}, `"-country-" is given twice`},
		{"alice-sesstime-5-sesstime-5", "", Steering{}, `"-sesstime-" is given twice`},
		{"alice-session-x-colour-red", "", Steering{}, `"-colour-" is not a steering parameter`},
		{"alice-region-us-ca", "", Steering{}, "pairs"}, // the dash ends the value: US_CA in a username
		{"alice-region-california", "", Steering{}, `username -region-: "california" is not an ISO 3166-2 subdivision`},
		{"alice-city-los.angeles", "", Steering{}, `username -city-: "los.angeles" is not a city`},
		{"alice-asn-AS0", "", Steering{}, `username -asn-: "AS0" is not an AS number`},
		{"alice-asn-4294967296", "", Steering{}, `username -asn-: "4294967296" is not an AS number`},
		{"alice-asn-0x10", "", Steering{}, `is not an AS number`},
	}
	for _, tt := range tests {
		base, s, err := ParseUsername(tt.login)
		var se *SteeringError
		switch {
		case tt.wantErr != "":
			if !errors.As(err, &se) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseUsername(%q) error %v, want a SteeringError saying %q", tt.login, err, tt.wantErr)
			}
		case err != nil || base != tt.base || fmt.Sprint(s) != fmt.Sprint(tt.want):
			t.Errorf("ParseUsername(%q) = %q, %+v, %v; want %q, %+v", tt.login, base, s, err, tt.base, tt.want)
		}
	}
}

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

// placedPool has exits in Los Angeles (two ASNs), San Francisco, Berlin and Tokyo.
func placedPool() *Pool {
	d := &egress.Dialer{Policy: &egress.Policy{}}
	place := func(addr, country, region, city string, asn uint32) *Exit {
		e := NewLocal(ip(addr), country, d)
		e.Region, e.City, e.ASN = region, city, asn
		return e
	}
	return NewPool([]*Exit{
		place("127.0.0.2", "US", "US-CA", "los_angeles", 64500),
		place("127.0.0.3", "US", "US-CA", "los_angeles", 64501),
		place("127.0.0.4", "US", "US-CA", "san_francisco", 64500),
		place("127.0.0.5", "DE", "DE-BE", "berlin", 64502),
		place("127.0.0.6", "JP", "", "", 0),
	})
}

func TestChooseExitByPlace(t *testing.T) {
	p := placedPool()
	tests := []struct {
		name      string
		s         Steering
		wantAnyOf []string
		wantErr   string
	}{
		{"city", Steering{City: "los_angeles"}, []string{"127.0.0.2", "127.0.0.3"}, ""},
		{"region", Steering{Region: "US-CA"}, []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}, ""},
		{"asn", Steering{ASN: 64500}, []string{"127.0.0.2", "127.0.0.4"}, ""},
		{"city and asn", Steering{City: "los_angeles", ASN: 64501}, []string{"127.0.0.3"}, ""},
		{"country and region", Steering{Country: "DE", Region: "DE-BE"}, []string{"127.0.0.5"}, ""},
		{"no city", Steering{City: "paris"}, nil, "no exit available for city paris"},
		{"country and city disagree", Steering{Country: "DE", City: "los_angeles"}, nil, "for country DE and city los_angeles"},
		{"three filters", Steering{Region: "US-CA", City: "berlin", ASN: 1}, nil, "for region US-CA, city berlin and ASN 1"},
		{"country alone", Steering{Country: "FR"}, nil, ErrNoCountryExit.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 40 {
				c, err := p.ChooseExit(tt.s)
				if tt.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
						t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
					}
					return
				}
				if err != nil || !strings.Contains(strings.Join(tt.wantAnyOf, " "), c.Exit.IP.String()) {
					t.Fatalf("chose %v (%v), want one of %v", c.Exit, err, tt.wantAnyOf)
				}
			}
		})
	}
	var te *TargetError
	if _, err := p.ChooseExit(Steering{City: "paris"}); !errors.As(err, &te) || te.Target != "city paris" {
		t.Errorf("no exit in paris: %v, want a TargetError naming city paris", err)
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
