// Package loop runs a node's background loops — following the store's changes, sharing bans,
// refreshing bandwidth figures, reporting exit health, re-resolving hostnames — the one way: a step
// every interval (and at once when woken), each step under a deadline, until the context ends, with a
// failing step logged once when the failures begin and once when the step works again.
package loop

import (
	"context"
	"log/slog"
	"time"
)

// Loop is one background loop. Its owner runs it on a goroutine of its own and ends it by ending the
// context passed to Run.
type Loop struct {
	Interval time.Duration   // between steps
	Timeout  time.Duration   // each step's deadline; 0 means Interval
	Now      bool            // run a step at once, before the first interval
	Wake     <-chan struct{} // a receive runs a step before the interval ends; nil: none
	// Spacing is the least time from one step to the next that a wake-up runs. A wake-up after a
	// quiet time steps at once; one within Spacing of the last step waits for the rest of it, taking
	// the wake-ups that come meanwhile, so a steady stream of wake-ups makes one step per Spacing,
	// not one each.
	Spacing time.Duration
	Step    func(ctx context.Context) error // the work; an error counts as a failure
	// Failing is logged (at warning level, with the error) when steps begin to fail, and Recovered
	// (at info level) when one works again; neither is repeated in between.
	Failing, Recovered string
	Log                *slog.Logger
}

// Run runs steps until ctx ends.
func (l Loop) Run(ctx context.Context) {
	t := time.NewTicker(l.Interval)
	defer t.Stop()
	failing := false
	var last time.Time // when the last step began
	if l.Now {
		last = time.Now()
		failing = l.step(ctx, failing)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-l.Wake:
			if !l.space(ctx, last) {
				return
			}
		}
		last = time.Now()
		failing = l.step(ctx, failing)
	}
}

// space waits until Spacing has passed since last, taking the wake-ups that come meanwhile; false if
// ctx ended.
func (l Loop) space(ctx context.Context, last time.Time) bool {
	rest := l.Spacing - time.Since(last)
	if rest <= 0 {
		return true
	}
	timer := time.NewTimer(rest)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-l.Wake:
		case <-timer.C:
			return true
		}
	}
}

// step runs one step and reports whether it failed; failing says whether the last one did.
func (l Loop) step(ctx context.Context, failing bool) bool {
	timeout := l.Timeout
	if timeout <= 0 {
		timeout = l.Interval
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	err := l.Step(sctx)
	cancel()
	switch {
	case err != nil && ctx.Err() == nil && !failing:
		l.log().Warn(l.Failing, "err", err)
	case err == nil && failing && l.Recovered != "":
		l.log().Info(l.Recovered)
	}
	return err != nil && ctx.Err() == nil
}

func (l Loop) log() *slog.Logger {
	if l.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l.Log
}
