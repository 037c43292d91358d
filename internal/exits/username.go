package exits

import (
	"net/netip"
	"strings"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// HeaderSession carries a sticky session id, like the username's -session- parameter.
const HeaderSession = "X-Proxymesh-Session"

// maxSessionID bounds a session id; sessions are kept in memory.
const maxSessionID = 64

// ParseUsername splits a proxy username with steering parameters, such as
// "alice-session-abc123-country-us-ip-203.0.113.7", into the username that authenticates ("alice":
// the part before the first -param-, which no username may contain) and the steering it asks for.
// The parameters are those of the headers, for clients that cannot send headers on CONNECT. A login
// without parameters comes back whole.
func ParseUsername(login string) (string, Steering, error) {
	var s Steering
	base, params := splitParams(login)
	if params == "" {
		return login, s, nil
	}
	fields := strings.Split(params, "-")
	if len(fields)%2 != 0 {
		return base, s, &SteeringError{"username", params, "must be -name-value pairs: -session-ID, -country-CC, -ip-A.B.C.D"}
	}
	seen := map[string]bool{}
	for i := 0; i < len(fields); i += 2 {
		name, value := asciiLower(fields[i]), fields[i+1]
		if seen[name] {
			return base, s, &SteeringError{"username", "-" + name + "-", "is given twice"}
		}
		seen[name] = true
		if err := s.setParam(name, value); err != nil {
			return base, s, err
		}
	}
	return base, s, nil
}

// splitParams cuts login at its first -param- and returns the parameters without their leading dash.
// It runs on every authenticated request, so it compares in place instead of lower-casing a copy.
func splitParams(login string) (base, params string) {
	for i := 0; i < len(login); i++ {
		if login[i] != '-' {
			continue
		}
		for _, p := range domain.UsernameParams {
			end := i + 1 + len(p)
			if end <= len(login) && asciiLower(login[i+1:end]) == p && (end == len(login) || login[end] == '-') {
				return login[:i], login[i+1:]
			}
		}
	}
	return login, ""
}

// asciiLower lower-cases ASCII letters only, keeping every byte where it is.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func (s *Steering) setParam(name, value string) error {
	switch name {
	case "session":
		if !isSessionID(value) {
			return &SteeringError{"username -session-", value, "must be 1 to 64 letters, digits, _ or ."}
		}
		s.Session = value
	case "country":
		if !isCountryCode(value) {
			return &SteeringError{"username -country-", value, "is not a two-letter country code"}
		}
		s.Country = strings.ToUpper(value)
	case "ip":
		ip, err := netip.ParseAddr(value)
		if err != nil {
			return &SteeringError{"username -ip-", value, "is not an IPv4 address"}
		}
		s.IP = ip.Unmap()
	default:
		return &SteeringError{"username", "-" + name + "-", "is not a steering parameter (session, country, ip)"}
	}
	return nil
}

// Merge fills what s leaves unset from u (the username's steering): a header wins over the same
// parameter in the username.
func (s *Steering) Merge(u Steering) {
	if !s.IP.IsValid() {
		s.IP = u.IP
	}
	if s.Country == "" {
		s.Country = u.Country
	}
	if s.Session == "" {
		s.Session = u.Session
	}
}

func isSessionID(v string) bool {
	if v == "" || len(v) > maxSessionID {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !isLetter(c) && !(c >= '0' && c <= '9') && c != '_' && c != '.' {
			return false
		}
	}
	return true
}
