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

// ChooseExit picks an exit for one request: the pinned or preferred IP when it is eligible, otherwise
// one chosen uniformly at random among the eligible exits. An exit is eligible unless the client
// excluded it or it is outside the requested country. A pin that cannot be honoured is reported in
// Choice.NotFound and the request is served by another exit, as ProxyMesh clients expect.
func (p *Pool) ChooseExit(s Steering) (Choice, error) {
	var c Choice
	if want := s.pin(); want.IsValid() {
		for _, e := range p.exits {
			if e.IP == want && s.eligible(e) {
				c.Exit = e
				return c, nil
			}
		}
		if s.IP.IsValid() {
			c.NotFound = s.IP
		}
	}
	n := 0
	for _, e := range p.exits {
		if s.eligible(e) {
			n++
		}
	}
	if n == 0 {
		if s.Country != "" {
			return c, ErrNoCountryExit
		}
		return c, ErrNoExit
	}
	k := rand.IntN(n)
	for _, e := range p.exits {
		if s.eligible(e) {
			if k == 0 {
				c.Exit = e
				break
			}
			k--
		}
	}
	return c, nil
}

// CloseIdle closes idle origin connections of every exit.
func (p *Pool) CloseIdle() {
	for _, e := range p.exits {
		e.CloseIdle()
	}
}
