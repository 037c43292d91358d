package exits

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
)

var (
	// ErrNoExit means no exit of the pool is usable for the request.
	ErrNoExit = errors.New("no exit available")
	// ErrNoCountryExit means the requested country has no usable exit in this pool.
	ErrNoCountryExit = errors.New("no exit available in the requested country")
)

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
// when it is healthy, the client did not exclude it and it is in the requested country. A pin that
// cannot be honoured is reported in Choice.NotFound and the request is served by another exit, as
// ProxyMesh clients expect. A pin must name an active exit; a session keeps its exit even after
// turnover retired it, so turnover never moves a session.
func (p *Pool) ChooseExit(s Steering) (Choice, error) {
	var c Choice
	if e := p.find(s.IP, s, true); e != nil {
		c.Exit = e
		return c, nil
	}
	if s.IP.IsValid() {
		c.NotFound = s.IP
	} else if e := p.find(s.sessionIP, s, false); e != nil {
		c.Exit = e
		return c, nil
	} else if e := p.find(s.PreferIP, s, true); e != nil {
		c.Exit = e
		return c, nil
	}
	if c.Exit = p.random(s, true); c.Exit == nil {
		c.Exit = p.random(s, false)
	}
	switch {
	case c.Exit != nil:
		return c, nil
	case s.Country != "":
		return c, ErrNoCountryExit
	default:
		return c, ErrNoExit
	}
}

// find returns the usable exit with IP ip, if any; with activeOnly, only from the active set.
func (p *Pool) find(ip netip.Addr, s Steering, activeOnly bool) *Exit {
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
// set. It counts, then walks: no allocation per request.
func (p *Pool) random(s Steering, activeOnly bool) *Exit {
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
