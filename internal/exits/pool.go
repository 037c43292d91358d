package exits

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

var (
	// ErrNoExit means no exit of the pool is usable for the request.
	ErrNoExit = errors.New("no exit available")
	// ErrNoCountryExit means the requested country has no usable exit in this pool.
	ErrNoCountryExit = errors.New("no exit available in the requested country")
	// ErrSessionExit means a strict session's exit is not usable, and a strict session does not move.
	ErrSessionExit = errors.New("the strict session's exit is unavailable")
)

// TargetError means no usable exit matches the request's region, city or ASN (and country, if any).
// Target names the filters, as in "city los_angeles" or "country US and ASN 64500". It is a value, so
// errors.Is compares two by their filters.
type TargetError struct{ Target string }

func (e TargetError) Error() string { return "no exit available for " + e.Target }

// target describes s's place filters for a TargetError.
func (s *Steering) target() string {
	var parts []string
	if s.Country != "" {
		parts = append(parts, "country "+s.Country)
	}
	if s.Region != "" {
		parts = append(parts, "region "+s.Region)
	}
	if s.City != "" {
		parts = append(parts, "city "+s.City)
	}
	if s.ASN != 0 {
		parts = append(parts, "ASN "+strconv.FormatUint(uint64(s.ASN), 10))
	}
	if len(parts) > 1 {
		return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
	}
	return parts[0]
}

// Pool is an immutable set of exits; a change of exits makes a new Pool.
type Pool struct {
	exits []*Exit
}

// NewPool returns a pool of exits.
func NewPool(exits []*Exit) *Pool {
	return &Pool{exits: slices.Clone(exits)}
}

// Exits returns the pool's exits.
func (p *Pool) Exits() []*Exit { return p.exits }

// Choice is the outcome of ChooseExit.
type Choice struct {
	Exit *Exit
	// NotFound is the pinned IP the client asked for when it could not be honoured; invalid otherwise.
	NotFound netip.Addr
}

// ChooseExit picks an exit for one request: the pinned IP, the session's exit or the preferred IP,
// in that order, when it is usable; otherwise one chosen uniformly at random among the usable exits
// of the active set (or among all usable exits when none of the active set is). An exit is usable
// when it is healthy, the client did not exclude it and it is in the requested place (country,
// region, city, ASN). A pin that cannot be honoured is reported in Choice.NotFound and the request is
// served by another exit, as ProxyMesh clients expect; a strict session whose exit cannot serve fails
// with ErrSessionExit instead. No usable exit in the requested place is ErrNoCountryExit for a
// country alone, else a TargetError. A pin must name an active exit; a session keeps its exit even
// after turnover retired it, so turnover never moves a session.
func (p *Pool) ChooseExit(s Steering) (Choice, error) {
	var c Choice
	if e := p.find(s.IP, &s, true); e != nil {
		c.Exit = e
		return c, nil
	}
	if s.IP.IsValid() {
		c.NotFound = s.IP
	} else if e := p.find(s.sessionIP, &s, false); e != nil {
		c.Exit = e
		return c, nil
	} else if s.Strict && s.sessionIP.IsValid() {
		return c, ErrSessionExit
	} else if e := p.find(s.PreferIP, &s, true); e != nil {
		c.Exit = e
		return c, nil
	}
	if c.Exit = p.random(&s, true); c.Exit == nil {
		c.Exit = p.random(&s, false)
	}
	switch {
	case c.Exit != nil:
		return c, nil
	case s.Region != "" || s.City != "" || s.ASN != 0:
		return c, TargetError{s.target()}
	case s.Country != "":
		return c, ErrNoCountryExit
	default:
		return c, ErrNoExit
	}
}

// find returns the usable exit with IP ip, if any; with activeOnly, only from the active set.
func (p *Pool) find(ip netip.Addr, s *Steering, activeOnly bool) *Exit {
	if !ip.IsValid() {
		return nil
	}
	for _, e := range p.exits {
		if e.IP == ip && s.usable(e) && (!activeOnly || e.Active()) {
			return e
		}
	}
	return nil
}

// random returns a usable exit chosen uniformly at random, or nil; with activeOnly, from the active
// set. It counts, then walks: no allocation per request. s is a pointer because Steering is two dozen
// words, copied on every call otherwise.
func (p *Pool) random(s *Steering, activeOnly bool) *Exit {
	n := 0
	for _, e := range p.exits {
		if s.usable(e) && (!activeOnly || e.Active()) {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	k := rand.IntN(n)
	for _, e := range p.exits {
		if s.usable(e) && (!activeOnly || e.Active()) {
			if k == 0 {
				return e
			}
			k--
		}
	}
	return nil
}

// CloseIdle closes idle origin connections of every exit.
func (p *Pool) CloseIdle() {
	for _, e := range p.exits {
		e.CloseIdle()
	}
}
