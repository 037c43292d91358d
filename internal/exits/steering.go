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
	Session  string       // keep one exit for requests with this session id (see Sessions)
	Timeout  time.Duration
	Strict   bool // a strict session: fail rather than move when its exit is unusable

	sessionIP netip.Addr // the session's exit, filled in by Sessions.Choose
}

// usable reports whether e may serve this request: healthy, not excluded, in the country asked for.
func (s *Steering) usable(e *Exit) bool {
	if !e.Healthy() || s.Country != "" && e.Country != s.Country {
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
	if v := h.Get(HeaderCountry); v != "" {
		if !isCountryCode(v) {
			return s, &SteeringError{HeaderCountry, v, "is not a two-letter country code"}
		}
		s.Country = strings.ToUpper(v)
	}
	if v := strings.TrimSpace(h.Get(HeaderSession)); v != "" {
		if !isSessionID(v) {
			return s, &SteeringError{HeaderSession, v, "must be 1 to 64 letters, digits, _ or ."}
		}
		s.Session = v
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
