package loop

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/testlog"
	"github.com/exitmesh/exitmesh/internal/testwait"
)

// run starts l, and returns a stop that ends it and waits for Run to return.
func run(t *testing.T, l Loop) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { l.Run(ctx) })
	stop = func() { cancel(); wg.Wait() }
	t.Cleanup(stop)
	return stop
}

func TestStepsEveryIntervalAndWhenWoken(t *testing.T) {
	var steps atomic.Int64
	wake := make(chan struct{})
	stop := run(t, Loop{Interval: time.Hour, Now: true, Wake: wake, Step: func(context.Context) error {
		steps.Add(1)
		return nil
	}})
	testwait.For(t, "the first step, at once", func() error { return atLeast(&steps, 1) })
	wake <- struct{}{}
	testwait.For(t, "a step when woken", func() error { return atLeast(&steps, 2) })
	stop()
	if n := steps.Load(); n != 2 {
		t.Errorf("%d steps in an hour's interval with one wake-up, want 2", n)
	}

	steps.Store(0)
	run(t, Loop{Interval: 10 * time.Millisecond, Step: func(context.Context) error { steps.Add(1); return nil }})
	testwait.For(t, "steps every interval", func() error { return atLeast(&steps, 3) })
}

// A wake-up after a quiet time steps at once; the wake-ups within Spacing of that step make one more
// step when Spacing has passed, not one each.
func TestWakeUpsAreSpaced(t *testing.T) {
	var steps atomic.Int64
	wake := make(chan struct{})
	stop := run(t, Loop{Interval: time.Hour, Wake: wake, Spacing: time.Hour,
		Step: func(context.Context) error { steps.Add(1); return nil }})
	wake <- struct{}{}
	testwait.For(t, "the step of a lone wake-up, without waiting the hour of spacing", func() error { return atLeast(&steps, 1) })
	for range 10 {
		wake <- struct{}{} // each is taken: the loop is spacing its steps
	}
	stop()
	if n := steps.Load(); n != 1 {
		t.Errorf("%d steps for 11 wake-ups within an hour's spacing, want 1", n)
	}

	steps.Store(0)
	run(t, Loop{Interval: time.Hour, Wake: wake, Spacing: 50 * time.Millisecond,
		Step: func(context.Context) error { steps.Add(1); return nil }})
	for range 10 {
		wake <- struct{}{}
	}
	testwait.For(t, "one step for the first wake-up and one for those spaced after it", func() error { return atLeast(&steps, 2) })
}

func atLeast(n *atomic.Int64, want int64) error {
	if got := n.Load(); got < want {
		return errors.New("not yet")
	}
	return nil
}

// An outage is logged once when it begins and once when it ends, however many steps fail.
func TestFailuresAreLoggedOnceAndSoIsTheRecovery(t *testing.T) {
	var logs testlog.Buffer
	var steps atomic.Int64
	run(t, Loop{Interval: time.Millisecond, Failing: "store unreachable", Recovered: "store back",
		Log: slog.New(slog.NewTextHandler(&logs, nil)),
		Step: func(context.Context) error {
			switch n := steps.Add(1); {
			case n <= 5, n > 8 && n <= 10: // two outages
				return errors.New("connection refused")
			}
			return nil
		}})
	testwait.For(t, "twelve steps", func() error { return atLeast(&steps, 12) })
	if f, r := logs.Count("store unreachable"), logs.Count("store back"); f != 2 || r != 2 || logs.Count("connection refused") != 2 {
		t.Errorf("two outages logged %d failures and %d recoveries, want 2 and 2:\n%s", f, r, logs.String())
	}
}

// Each step runs under its deadline, and the loop ends when its context does, even mid-step.
func TestStepsHaveADeadlineAndTheLoopEnds(t *testing.T) {
	deadlines := make(chan time.Duration, 1)
	stop := run(t, Loop{Interval: time.Hour, Timeout: 50 * time.Millisecond, Now: true, Step: func(ctx context.Context) error {
		d, _ := ctx.Deadline()
		deadlines <- time.Until(d)
		<-ctx.Done()
		return ctx.Err()
	}})
	if d := <-deadlines; d <= 0 || d > 50*time.Millisecond {
		t.Errorf("the step's deadline is %v away, want within the 50 ms timeout", d)
	}
	stop() // returns: Run ended
}
