package exits

import (
	"strings"
	"testing"
)

// FuzzParseUsername checks that any login splits without panicking, that the base never contains a
// steering parameter, and that a login without parameters comes back whole.
func FuzzParseUsername(f *testing.F) {
	for _, s := range []string{"alice", "alice-bot", "alice-session-abc123-country-us-ip-203.0.113.7", "a-ip-", "-session-x", "alice-Country-DE", "x-ip-::1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, login string) {
		base, s, err := ParseUsername(login)
		if !strings.HasPrefix(login, base) {
			t.Fatalf("base %q is not a prefix of %q", base, login)
		}
		if b, params := splitParams(base); params != "" {
			t.Fatalf("base %q still holds parameters %q (%q)", base, params, b)
		}
		if err == nil && base != login && s.Session == "" && s.Country == "" && !s.IP.IsValid() {
			t.Fatalf("%q: parameters parsed to nothing", login)
		}
		if len(s.Session) > maxSessionID {
			t.Fatalf("session id of %d bytes accepted", len(s.Session))
		}
	})
}
