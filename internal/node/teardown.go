package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// teardown stops what a start started, in reverse order: each part, once started, pushes how it
// stops, so a start that fails half-way undoes exactly what it did, and a stop never closes what a
// later part still uses (the store outlives the loops that write to it, which outlive the listeners
// that feed them).
type teardown struct {
	mu    sync.Mutex
	steps []step
}

type step struct {
	name string
	stop func(context.Context) error
}

func (t *teardown) push(name string, stop func(context.Context) error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.steps = append(t.steps, step{name, stop})
}

// run stops every part, last started first, each once, and joins their errors.
func (t *teardown) run(ctx context.Context) error {
	t.mu.Lock()
	steps := t.steps
	t.steps = nil
	t.mu.Unlock()
	var errs []error
	for i := len(steps) - 1; i >= 0; i-- {
		if err := steps[i].stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", steps[i].name, err))
		}
	}
	return errors.Join(errs...)
}
