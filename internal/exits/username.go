package exits

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// Session headers, like the username's -session-, -sesstime- and -sessmode- parameters.
const (
	HeaderSession     = "X-Proxymesh-Session"
	HeaderSessionTTL  = "X-Proxymesh-Session-Ttl"
	HeaderSessionMode = "X-Proxymesh-Session-Mode"
)

// maxSessionID bounds a session id; sessions are kept in memory.
const maxSessionID = 64

// maxSessionMinutes bounds -sesstime-: a day, so an idle session cannot pin its entry for longer.
const maxSessionMinutes = 1440

// A steering parameter, by its canonical username name.
const (
	paramSession = iota
	paramCountry
	paramIP
	paramSessTime
	paramSessMode
	paramRegion
	paramCity
	paramASN
)

// paramNames maps each username spelling to its parameter. Aliases are the spellings other providers
// use (Oxylabs' cc and sessid), so one username works against either.
var paramNames = [...]struct {
	name  string
	param int
}{
	{"session", paramSession}, {"sessid", paramSession}, {"country", paramCountry}, {"cc", paramCountry},
	{"ip", paramIP}, {"sesstime", paramSessTime}, {"sessmode", paramSessMode}, {"region", paramRegion},
	{"city", paramCity}, {"asn", paramASN},
}

// headerParams are the steering headers that take a parameter's value, checked alike.
var headerParams = [...]struct {
	header string
	param  int
}{
	{HeaderCountry, paramCountry}, {HeaderRegion, paramRegion}, {HeaderCity, paramCity}, {HeaderASN, paramASN},
	{HeaderSession, paramSession}, {HeaderSessionTTL, paramSessTime}, {HeaderSessionMode, paramSessMode},
}

// ParseUsername splits a proxy username with steering parameters, such as
// "alice-session-abc123-country-us-ip-203.0.113.7", into the username that authenticates ("alice":
// the part before the first -param-, which no username may contain) and the steering it asks for.
// The parameters are those of the headers, for clients that cannot send headers on CONNECT. A login
// without parameters comes back whole. It runs on every authenticated request, so it walks the
// login in place rather than splitting it.
func ParseUsername(login string) (string, Steering, error) {
	var s Steering
	base, params := splitParams(login)
	if params == "" {
		return login, s, nil
	}
	if strings.Count(params, "-")%2 == 0 {
		return base, s, &SteeringError{"username", params, "must be -name-value pairs: -session-ID, -country-CC, -ip-A.B.C.D"}
	}
	var seen uint
	for rest := params; rest != ""; {
		var name, value string
		name, rest, _ = strings.Cut(rest, "-")
		value, rest, _ = strings.Cut(rest, "-")
		param, ok := lookupParam(name)
		if !ok {
			return base, s, &SteeringError{"username", "-" + name + "-", "is not a steering parameter (session or sessid, country or cc, ip, sesstime, sessmode, region, city, asn)"}
		}
		if seen&(1<<param) != 0 {
			return base, s, &SteeringError{"username", "-" + name + "-", "is given twice (an alias and its name count as one parameter)"}
		}
		seen |= 1 << param
		if problem := s.set(param, value); problem != "" {
			return base, s, &SteeringError{"username -" + name + "-", value, problem}
		}
	}
	return base, s, nil
}

func lookupParam(name string) (int, bool) {
	for _, p := range paramNames {
		if strings.EqualFold(name, p.name) {
			return p.param, true
		}
	}
	return 0, false
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
			if end <= len(login) && strings.EqualFold(login[i+1:end], p) && (end == len(login) || login[end] == '-') {
				return login[:i], login[i+1:]
			}
		}
	}
	return login, ""
}

// set checks one parameter's value and records it, or says what is wrong with it.
func (s *Steering) set(param int, value string) (problem string) {
	switch param {
	case paramSession:
		if !isSessionID(value) {
			return "must be 1 to 64 letters, digits, _ or ."
		}
		s.Session = value
	case paramCountry:
		if !isCountryCode(value) {
			return "is not a two-letter country code"
		}
		s.Country = strings.ToUpper(value)
	case paramIP:
		ip, err := netip.ParseAddr(value)
		if err != nil {
			return "is not an IPv4 address"
		}
		s.IP = ip.Unmap()
	case paramSessTime:
		n, err := strconv.Atoi(value)
		if err != nil || n < 1 || n > maxSessionMinutes {
			return "is not a number of minutes from 1 to 1440"
		}
		s.SessionTTL = time.Duration(n) * time.Minute
	case paramSessMode:
		if !strings.EqualFold(value, "strict") {
			return "is not a session mode: the one mode is strict"
		}
		s.Strict = true
	case paramRegion:
		r, ok := domain.NormalizeRegion(value)
		if !ok {
			return "is not an ISO 3166-2 subdivision such as US-CA (US_CA in a username)"
		}
		s.Region = r
	case paramCity:
		c, ok := domain.NormalizeCity(value)
		if !ok {
			return "is not a city such as los_angeles (letters, digits and _)"
		}
		s.City = c
	case paramASN:
		n, ok := domain.ParseASN(value)
		if !ok {
			return "is not an AS number such as 64500 or AS64500"
		}
		s.ASN = n
	default:
		panic(fmt.Sprintf("exits: steering parameter %d has no rule", param))
	}
	return ""
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
	if s.Region == "" {
		s.Region = u.Region
	}
	if s.City == "" {
		s.City = u.City
	}
	if s.ASN == 0 {
		s.ASN = u.ASN
	}
	if s.Session == "" {
		s.Session = u.Session
	}
	if s.SessionTTL == 0 {
		s.SessionTTL = u.SessionTTL
	}
	s.Strict = s.Strict || u.Strict // strict is the only mode a header can name
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
