package exits

import (
	"errors"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/egress"
)

func testPool(t *testing.T) *Pool {
	t.Helper()
	d := &egress.Dialer{Policy: &egress.Policy{}}
	p := NewPool([]*Exit{
		NewLocal(netip.MustParseAddr("127.0.0.2"), "US", d),
		NewLocal(netip.MustParseAddr("127.0.0.3"), "US", d),
		NewLocal(netip.MustParseAddr("127.0.0.4"), "DE", d),
		NewLocal(netip.MustParseAddr("127.0.0.5"), "DE", d),
	})
	// Two exits in Los Angeles on two ASNs, one in Berlin, one that says nothing of its place.
	ex := p.Exits()
	ex[0].Region, ex[0].City, ex[0].ASN = "US-CA", "los_angeles", 64500
	ex[1].Region, ex[1].City, ex[1].ASN = "US-CA", "los_angeles", 64501
	ex[2].Region, ex[2].City, ex[2].ASN = "DE-BE", "berlin", 64500
	return p
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestChooseExitSpreadsOverPool(t *testing.T) {
	p := testPool(t)
	seen := map[netip.Addr]int{}
	for range 400 {
		c, err := p.ChooseExit(Steering{})
		if err != nil {
			t.Fatal(err)
		}
		seen[c.Exit.IP]++
	}
	if len(seen) != 4 {
		t.Fatalf("400 choices used %d exits (%v), want all 4", len(seen), seen)
	}
	for ip, n := range seen {
		if n < 50 { // expectation 100; 50 is ~5 standard deviations away
			t.Errorf("exit %s chosen %d times of 400, want roughly 100", ip, n)
		}
	}
}

func TestChooseExitSteering(t *testing.T) {
	p := testPool(t)
	tests := []struct {
		name         string
		s            Steering
		wantAnyOf    []string
		wantNotFound string
		wantErr      error
	}{
		{"pin in pool", Steering{IP: ip("127.0.0.4")}, []string{"127.0.0.4"}, "", nil},
		{"pin not in pool", Steering{IP: ip("127.0.0.99")}, []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}, "127.0.0.99", nil},
		{"pin excluded by country", Steering{IP: ip("127.0.0.2"), Country: "DE"}, []string{"127.0.0.4", "127.0.0.5"}, "127.0.0.2", nil},
		{"prefer in pool", Steering{PreferIP: ip("127.0.0.3")}, []string{"127.0.0.3"}, "", nil},
		{"prefer not in pool", Steering{PreferIP: ip("127.0.0.77")}, []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}, "", nil},
		{"not ips", Steering{NotIPs: []netip.Addr{ip("127.0.0.2"), ip("127.0.0.3"), ip("127.0.0.4")}}, []string{"127.0.0.5"}, "", nil},
		{"prefer but excluded", Steering{PreferIP: ip("127.0.0.5"), NotIPs: []netip.Addr{ip("127.0.0.5")}}, []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}, "", nil},
		{"country", Steering{Country: "US"}, []string{"127.0.0.2", "127.0.0.3"}, "", nil},
		{"unknown country", Steering{Country: "FR"}, nil, "", ErrNoCountryExit},
		{"all excluded", Steering{NotIPs: []netip.Addr{ip("127.0.0.2"), ip("127.0.0.3"), ip("127.0.0.4"), ip("127.0.0.5")}}, nil, "", ErrNoExit},
		{"city", Steering{City: "los_angeles"}, []string{"127.0.0.2", "127.0.0.3"}, "", nil},
		{"region", Steering{Region: "DE-BE"}, []string{"127.0.0.4"}, "", nil},
		{"asn", Steering{ASN: 64500}, []string{"127.0.0.2", "127.0.0.4"}, "", nil},
		{"city and asn", Steering{City: "los_angeles", ASN: 64501}, []string{"127.0.0.3"}, "", nil},
		{"country and region", Steering{Country: "DE", Region: "DE-BE"}, []string{"127.0.0.4"}, "", nil},
		{"pin outside the city", Steering{IP: ip("127.0.0.4"), City: "los_angeles"}, []string{"127.0.0.2", "127.0.0.3"}, "127.0.0.4", nil},
		{"no such city", Steering{City: "paris"}, nil, "", TargetError{"city paris"}},
		{"country and city disagree", Steering{Country: "DE", City: "los_angeles"}, nil, "", TargetError{"country DE and city los_angeles"}},
		{"three filters", Steering{Region: "US-CA", City: "berlin", ASN: 1}, nil, "", TargetError{"region US-CA, city berlin and ASN 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 40 {
				c, err := p.ChooseExit(tt.s)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if err != nil {
					return
				}
				ok := false
				for _, w := range tt.wantAnyOf {
					ok = ok || c.Exit.IP == ip(w)
				}
				if !ok {
					t.Fatalf("chose %s, want one of %v", c.Exit.IP, tt.wantAnyOf)
				}
				if got := c.NotFound; (tt.wantNotFound == "" && got.IsValid()) || (tt.wantNotFound != "" && got != ip(tt.wantNotFound)) {
					t.Fatalf("NotFound = %v, want %q", got, tt.wantNotFound)
				}
			}
		})
	}
}

func TestParseSteering(t *testing.T) {
	h := http.Header{}
	h.Set(HeaderIP, "127.0.0.2")
	h.Set(HeaderPreferIP, " ::ffff:127.0.0.3 ")
	h.Add(HeaderNotIP, "127.0.0.4, 127.0.0.5")
	h.Add(HeaderNotIP, "127.0.0.6")
	h.Set(HeaderCountry, "us")
	h.Set(HeaderTimeout, "2.5")
	s, err := ParseSteering(h, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if s.IP != ip("127.0.0.2") || s.PreferIP != ip("127.0.0.3") || len(s.NotIPs) != 3 || s.NotIPs[2] != ip("127.0.0.6") ||
		s.Country != "US" || s.Timeout != 2500*time.Millisecond {
		t.Errorf("ParseSteering = %+v", s)
	}

	h.Set(HeaderTimeout, "3600")
	if s, _ := ParseSteering(h, time.Minute); s.Timeout != time.Minute {
		t.Errorf("timeout 3600 with max 1m = %v, want 1m", s.Timeout)
	}

	bad := []struct{ header, value string }{
		{HeaderIP, "not-an-ip"},
		{HeaderPreferIP, "1.2.3"},
		{HeaderNotIP, "1.2.3.4, nope"},
		{HeaderCountry, "USA"},
		{HeaderCountry, "1A"},
		{HeaderTimeout, "0"},
		{HeaderTimeout, "-3"},
		{HeaderTimeout, "soon"},
		{HeaderTimeout, "NaN"},
	}
	for _, b := range bad {
		h := http.Header{}
		h.Set(b.header, b.value)
		var se *SteeringError
		if _, err := ParseSteering(h, time.Minute); !errors.As(err, &se) || se.Header != b.header {
			t.Errorf("%s: %q: err = %v, want *SteeringError for that header", b.header, b.value, err)
		}
	}
}

func FuzzParseSteering(f *testing.F) {
	f.Add("127.0.0.2", "1.2.3.4, ::1", "US", "30")
	f.Add("", ",,", "", "1e400")
	f.Fuzz(func(t *testing.T, pin, not, country, timeout string) {
		h := http.Header{}
		h.Set(HeaderIP, pin)
		h.Set(HeaderNotIP, not)
		h.Set(HeaderCountry, country)
		h.Set(HeaderTimeout, timeout)
		s, err := ParseSteering(h, time.Minute)
		if err == nil && (s.Timeout < 0 || s.Timeout > time.Minute || len(s.NotIPs) > maxNotIPs) {
			t.Fatalf("accepted out-of-range steering %+v", s)
		}
	})
}
