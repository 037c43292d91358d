package exits

import (
	"net/netip"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/egress"
)

// benchPool is a pool of 64 exits over four countries, the size of a busy proxy server.
func benchPool() *Pool {
	d := &egress.Dialer{Policy: &egress.Policy{}}
	countries := []string{"US", "DE", "JP", "FR"}
	var ex []*Exit
	for i := range 64 {
		ex = append(ex, NewLocal(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), countries[i%4], d))
	}
	return NewPool(ex)
}

func BenchmarkParseUsername(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseUsername("alice-bot-session-job42-country-de"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkChooseExitCountry(b *testing.B) {
	p := benchPool()
	s := Steering{Country: "DE"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.ChooseExit(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSessionsChoose(b *testing.B) {
	p := benchPool()
	t := NewSessions(10*time.Minute, 1000, nil)
	key := SessionKey{AccountID: 1, ID: "job42"}
	s := Steering{Country: "DE", Session: "job42"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := t.Choose(p, key, s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkChooseExitCityASN(b *testing.B) {
	p := benchPool()
	cities := []string{"los_angeles", "berlin", "tokyo", "paris"}
	for i, e := range p.Exits() {
		e.City, e.ASN = cities[i%4], uint32(64500+i%3)
	}
	s := Steering{Country: "DE", City: "berlin", ASN: 64501}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.ChooseExit(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseUsernameFull(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseUsername("alice-bot-sessid-job42-cc-de-sesstime-30-sessmode-strict-city-berlin-asn-64501"); err != nil {
			b.Fatal(err)
		}
	}
}
