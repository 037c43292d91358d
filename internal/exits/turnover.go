package exits

import (
	"context"
	"math/rand/v2"
	"time"
)

// Turnover keeps only Active of a pool's exits in rotation at a time and draws a new active set
// every Every, as ProxyMesh rotates IPs in and out every few hours: fewer addresses face the origins
// at once, and each rests between its turns. Active 0 (or at least the pool's size) disables it.
type Turnover struct {
	Active int
	Every  time.Duration
}

// Enabled reports whether turnover applies to a pool of n exits.
func (t Turnover) Enabled(n int) bool { return t.Active > 0 && t.Active < n }

// RunTurnover draws the first active set at once and a new one each t.Every until ctx ends.
// Requests and tunnels in flight keep their exit, and sessions keep theirs while it is healthy.
func (p *Pool) RunTurnover(ctx context.Context, t Turnover, turned func(active []*Exit)) {
	if !t.Enabled(len(p.exits)) {
		return
	}
	tick := time.NewTicker(t.Every)
	defer tick.Stop()
	for {
		active := p.Turn(t.Active)
		if turned != nil {
			turned(active)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Turn makes n exits the active set and retires the others. It draws the healthy exits that rested
// during the last turn first, then healthy ones that were active, then unhealthy ones, each group in
// random order, so the set really turns over and a dead exit is taken last.
func (p *Pool) Turn(n int) []*Exit {
	var rested, stayed, sick []*Exit
	for _, e := range p.exits {
		switch {
		case !e.Healthy():
			sick = append(sick, e)
		case !e.Active():
			rested = append(rested, e)
		default:
			stayed = append(stayed, e)
		}
	}
	order := make([]*Exit, 0, len(p.exits))
	for _, group := range [][]*Exit{rested, stayed, sick} {
		rand.Shuffle(len(group), func(i, j int) { group[i], group[j] = group[j], group[i] })
		order = append(order, group...)
	}
	n = min(n, len(order))
	for _, e := range order[:n] { // activate first: no moment without an active exit
		e.health.retired.Store(false)
	}
	for _, e := range order[n:] {
		e.health.retired.Store(true)
	}
	return order[:n]
}
