package exits

import (
	"net/netip"
	"sync"
	"time"
)

// SessionKey names a sticky session: the client's session id within its account or sub-account, so
// two customers choosing the same id do not share an exit.
type SessionKey struct {
	AccountID, SubID int64
	ID               string
}

// Sessions remembers which exit each sticky session uses. A session keeps its exit for TTL (or the
// request's own SessionTTL) after its last request, and moves to another exit only when its exit
// stops being usable (unhealthy, removed from the pool, or excluded by the request's own steering);
// a strict session fails instead of moving, and stays remembered, so it resumes on its exit if
// that comes back before the session expires. Entries hold the exit's IP rather than
// the exit, so sessions survive a reload that rebuilds the pool. At most Max sessions are kept;
// beyond that the expired ones are swept, then arbitrary ones dropped. A nil *Sessions keeps none.
type Sessions struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu sync.Mutex // guards m
	m  map[SessionKey]session
}

type session struct {
	ip      netip.Addr
	expires time.Time
}

// NewSessions returns a session table; now is the clock (nil: time.Now).
func NewSessions(ttl time.Duration, max int, now func() time.Time) *Sessions {
	if now == nil {
		now = time.Now
	}
	return &Sessions{ttl: ttl, max: max, now: now, m: make(map[SessionKey]session)}
}

// Choose chooses the exit for a request of session key.ID (none when empty) from p, preferring the
// session's exit, and remembers the choice.
func (t *Sessions) Choose(p *Pool, key SessionKey, s Steering) (Choice, error) {
	if t == nil || key.ID == "" {
		return p.ChooseExit(s)
	}
	now := t.now()
	t.mu.Lock()
	if e, ok := t.m[key]; ok && now.Before(e.expires) {
		s.sessionIP = e.ip
	}
	t.mu.Unlock()
	c, err := p.ChooseExit(s)
	if err != nil {
		return c, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.m[key]; !ok && len(t.m) >= t.max {
		t.evict(now)
	}
	ttl := t.ttl
	if s.SessionTTL > 0 {
		ttl = s.SessionTTL
	}
	t.m[key] = session{ip: c.Exit.IP, expires: now.Add(ttl)}
	return c, nil
}

// evict makes room: every expired session goes, and if that frees too little, arbitrary live ones
// until a sixteenth of the table is free, so a flood of new ids costs one sweep per many inserts.
func (t *Sessions) evict(now time.Time) {
	for k, e := range t.m {
		if !now.Before(e.expires) {
			delete(t.m, k)
		}
	}
	for k := range t.m {
		if len(t.m) <= t.max-max(t.max/16, 1) {
			return
		}
		delete(t.m, k)
	}
}

// Len returns the number of sessions remembered, expired ones included until swept.
func (t *Sessions) Len() int {
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}
