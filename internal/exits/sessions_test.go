package exits

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseUsername(t *testing.T) {
	tests := []struct {
		login, base string
		want        Steering
		wantErr     string
	}{
		{"alice", "alice", Steering{}, ""},
		{"alice-bot", "alice-bot", Steering{}, ""},
		{"alice-session-abc123", "alice", Steering{Session: "abc123"}, ""},
		{"alice-bot-session-a_b.c-country-de", "alice-bot", Steering{Session: "a_b.c", Country: "DE"}, ""},
		{"alice-Country-us-IP-203.0.113.7", "alice", Steering{Country: "US", IP: ip("203.0.113.7")}, ""},
		{"alice-ip-::ffff:127.0.0.2", "alice", Steering{IP: ip("127.0.0.2")}, ""},
		{"alice-country-usa", "alice", Steering{}, "two-letter"},
		{"alice-session-", "alice", Steering{}, "1 to 64"},
		{"alice-session-x-session-y", "alice", Steering{}, "twice"},
		{"alice-session-x-colour-red", "alice", Steering{}, "not a steering parameter"},
		{"alice-session-x-country", "alice", Steering{}, "pairs"},
		{"alice-ip-300.1.1.1", "alice", Steering{}, "IPv4"},
		{"alice-session-" + string(make([]byte, 65)), "alice", Steering{}, "1 to 64"},
		// Oxylabs' aliases, session lifetime and mode, places; an error names the parameter as written.
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
				t.Errorf("ParseUsername(%q) error %v, want a SteeringError about %q", tt.login, err, tt.wantErr)
			}
		case err != nil || base != tt.base || fmt.Sprint(s) != fmt.Sprint(tt.want):
			t.Errorf("ParseUsername(%q) = %q, %+v, %v; want %q, %+v", tt.login, base, s, err, tt.base, tt.want)
		}
	}
}

func TestSessionsStayBounded(t *testing.T) {
	p := testPool(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tab := NewSessions(time.Minute, 64, func() time.Time { return now })
	for i := range 1000 {
		if _, err := tab.Choose(p, SessionKey{AccountID: 1, ID: fmt.Sprint(i)}, Steering{Session: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		if tab.Len() > 64 {
			t.Fatalf("after %d sessions the table holds %d, want at most 64", i+1, tab.Len())
		}
	}
	// Expired sessions are swept before live ones are dropped.
	now = now.Add(2 * time.Minute)
	key := SessionKey{AccountID: 2, ID: "fresh"}
	c, _ := tab.Choose(p, key, Steering{Session: "fresh"})
	for i := range 40 {
		tab.Choose(p, SessionKey{AccountID: 3, ID: fmt.Sprint(i)}, Steering{Session: fmt.Sprint(i)})
	}
	if tab.Len() != 41 {
		t.Errorf("after the old sessions expired the table holds %d, want the 41 live ones", tab.Len())
	}
	for range 10 {
		if again, _ := tab.Choose(p, key, Steering{Session: "fresh"}); again.Exit != c.Exit {
			t.Fatalf("a live session moved from %s to %s", c.Exit.IP, again.Exit.IP)
		}
	}
	// Sessions of different accounts with the same id are different sessions.
	ips := map[string]bool{}
	for a := range int64(40) {
		c, _ := tab.Choose(p, SessionKey{AccountID: 100 + a, ID: "same"}, Steering{Session: "same"})
		ips[c.Exit.IP.String()] = true
	}
	if len(ips) < 2 {
		t.Errorf("40 accounts' sessions named \"same\" all got %v", ips)
	}
}

func TestHealthFallAndRise(t *testing.T) {
	e := testPool(t).Exits()[0]
	cfg := HealthConfig{Target: "x:1", Fall: 3, Rise: 2}
	fail, now := errors.New("refused"), time.Now()
	steps := []struct {
		err         error
		wantHealthy bool
		wantChanged bool
	}{
		{fail, true, false}, {fail, true, false}, {nil, true, false}, // a success resets the failures
		{fail, true, false}, {fail, true, false}, {fail, false, true}, // the third in a row takes it out
		{fail, false, false}, {nil, false, false}, {fail, false, false}, // a failure resets the successes
		{nil, false, false}, {nil, true, true},
	}
	for i, st := range steps {
		changed, _ := e.record(cfg, time.Millisecond, st.err, now)
		if e.Healthy() != st.wantHealthy || changed != st.wantChanged {
			t.Fatalf("step %d: healthy %v changed %v, want %v %v", i, e.Healthy(), changed, st.wantHealthy, st.wantChanged)
		}
	}
	st := e.Status()
	if st.Checks != uint64(len(steps)) || st.Failures != 7 || st.LastError != "" || st.Latency != time.Millisecond {
		t.Errorf("status %+v", st)
	}
}

func TestTurnPrefersRestedHealthyExits(t *testing.T) {
	p := testPool(t)
	first := p.Turn(2)
	second := p.Turn(2)
	for _, e := range second {
		if e == first[0] || e == first[1] {
			t.Fatalf("second turn %v reused an exit of the first %v while two rested", ips(second), ips(first))
		}
	}
	second[0].health.down.Store(true)
	third := p.Turn(3)
	for _, e := range third {
		if e == second[0] {
			t.Errorf("turn of 3 with 3 healthy exits took the unhealthy %s", e.IP)
		}
	}
	active := 0
	for _, e := range p.Exits() {
		if e.Active() {
			active++
		}
	}
	if active != 3 {
		t.Errorf("%d exits active after Turn(3)", active)
	}
}

func ips(es []*Exit) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.IP.String())
	}
	return out
}

func TestRunTurnoverDrawsNewSetsUntilStopped(t *testing.T) {
	p := testPool(t)
	ctx, cancel := context.WithCancel(context.Background())
	sets := make(chan []string, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.RunTurnover(ctx, Turnover{Active: 2, Every: time.Millisecond}, func(active []*Exit) { sets <- ips(active) })
	}()
	first, second := <-sets, <-sets
	cancel()
	<-done
	if len(first) != 2 || len(second) != 2 || slices.Contains(second, first[0]) || slices.Contains(second, first[1]) {
		t.Errorf("turns %v then %v, want two sets of 2 with the rested exits in the second", first, second)
	}
	// Disabled turnover returns at once and leaves every exit active.
	q := testPool(t)
	q.RunTurnover(context.Background(), Turnover{Active: 4, Every: time.Millisecond}, nil)
	for _, e := range q.Exits() {
		if !e.Active() {
			t.Errorf("turnover of 4 of 4 exits retired %s", e.IP)
		}
	}
}
