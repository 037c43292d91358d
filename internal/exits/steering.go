package exits

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// The steering request headers. They are never forwarded to the origin.
const (
	HeaderIP       = "X-Proxymesh-Ip"
	HeaderPreferIP = "X-Proxymesh-Prefer-Ip"
	HeaderNotIP    = "X-Proxymesh-Not-Ip"
	HeaderCountry  = "X-Proxymesh-Country"
	HeaderRegion   = "X-Proxymesh-Region"
	HeaderCity     = "X-Proxymesh-City"
	HeaderASN      = "X-Proxymesh-Asn"
	HeaderTimeout  = "X-Proxymesh-Timeout"

	// HeaderIPNotFound answers a pinned IP that could not be used.
	HeaderIPNotFound = "X-Proxymesh-Ip-Not-Found"
)

// maxNotIPs bounds the exclusion list a client may send.
const maxNotIPs = 64

// Steering is what a client asked for about the exit of one request.
type Steering struct {
	IP       netip.Addr   // use exactly this exit (sticky); another one plus a Not-Found header if unavailable
	PreferIP netip.Addr   // use this exit if available
	NotIPs   []netip.Addr // never these exits
	Country  string       // only exits in this country (upper-case)
	Region   string       // only exits in this ISO 3166-2 subdivision (upper-case, "US-CA")
	City     string       // only exits in this city (lower-case slug, "los_angeles")
	ASN      uint32       // only exits in this autonomous system; 0: any
	Session  string       // keep one exit for requests with this session id (see Sessions)
	// SessionTTL is how long the session lives idle; 0 takes the session table's TTL.
	SessionTTL time.Duration
	// Strict makes a session fail (ErrSessionExit) rather than move when its exit is unusable.
	Strict  bool
	Timeout time.Duration

	sessionIP netip.Addr // the session's exit, filled in by Sessions.Choose
}

// usable reports whether e may serve this request: healthy, not excluded, in the place asked for.
// It runs for every exit on every request: the attributes of both sides are stored in one case, so
// plain comparisons suffice.
func (s *Steering) usable(e *Exit) bool {
	if !e.Healthy() || s.Country != "" && e.Country != s.Country || s.Region != "" && e.Region != s.Region ||
		s.City != "" && e.City != s.City || s.ASN != 0 && e.ASN != s.ASN {
		return false
	}
	for _, ip := range s.NotIPs {
		if ip == e.IP {
			return false
		}
	}
	return true
}

// SteeringError is a malformed steering header; the proxy answers 400 with its message.
type SteeringError struct {
	Header, Value, Problem string
}

func (e *SteeringError) Error() string {
	return fmt.Sprintf("%s: %q %s", e.Header, e.Value, e.Problem)
}

// ParseSteering reads the steering headers of a request. A timeout above maxTimeout is lowered to it.
func ParseSteering(h http.Header, maxTimeout time.Duration) (Steering, error) {
	var s Steering
	var err error
	if s.IP, err = headerAddr(h, HeaderIP); err != nil {
		return s, err
	}
	if s.PreferIP, err = headerAddr(h, HeaderPreferIP); err != nil {
		return s, err
	}
	if s.NotIPs, err = headerAddrList(h, HeaderNotIP); err != nil {
		return s, err
	}
	for _, hp := range headerParams {
		if v := strings.TrimSpace(h.Get(hp.header)); v != "" {
			if problem := s.set(hp.param, v); problem != "" {
				return s, &SteeringError{hp.header, v, problem}
			}
		}
	}
	if v := h.Get(HeaderTimeout); v != "" {
		secs, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || secs <= 0 || secs != secs {
			return s, &SteeringError{HeaderTimeout, v, "is not a positive number of seconds"}
		}
		s.Timeout = maxTimeout
		if secs < maxTimeout.Seconds() { // compare as float: a huge value would overflow Duration
			s.Timeout = time.Duration(secs * float64(time.Second))
		}
	}
	return s, nil
}

func headerAddr(h http.Header, name string) (netip.Addr, error) {
	v := strings.TrimSpace(h.Get(name))
	if v == "" {
		return netip.Addr{}, nil
	}
	ip, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Addr{}, &SteeringError{name, v, "is not an IP address"}
	}
	return ip.Unmap(), nil
}

func headerAddrList(h http.Header, name string) ([]netip.Addr, error) {
	var ips []netip.Addr
	for _, line := range h.Values(name) {
		for f := range strings.SplitSeq(line, ",") {
			f = strings.TrimSpace(f)
			if f == "" {
				continue
			}
			ip, err := netip.ParseAddr(f)
			if err != nil {
				return nil, &SteeringError{name, f, "is not an IP address"}
			}
			if len(ips) == maxNotIPs {
				return nil, &SteeringError{name, line, fmt.Sprintf("lists more than %d addresses", maxNotIPs)}
			}
			ips = append(ips, ip.Unmap())
		}
	}
	return ips, nil
}

func isCountryCode(v string) bool {
	return len(v) == 2 && isLetter(v[0]) && isLetter(v[1])
}

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
