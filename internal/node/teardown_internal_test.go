package node

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// TestTeardownRunsInReverseOnce: parts stop last started first, every one even when some fail, whose
// errors all come back named; a second run stops nothing again.
func TestTeardownRunsInReverseOnce(t *testing.T) {
	var stopped []string
	var td teardown
	for _, name := range []string{"store", "followers", "listeners"} {
		td.push(name, func(context.Context) error {
			stopped = append(stopped, name)
			if name != "followers" {
				return errors.New("boom")
			}
			return nil
		})
	}
	err := td.run(t.Context())
	if want := []string{"listeners", "followers", "store"}; !slices.Equal(stopped, want) {
		t.Errorf("stopped %q, want %q", stopped, want)
	}
	if err == nil || err.Error() != "stop listeners: boom\nstop store: boom" {
		t.Errorf("run = %v, want the listeners' and the store's errors", err)
	}
	if err := td.run(t.Context()); err != nil || len(stopped) != 3 {
		t.Errorf("second run: %v, stopped %q; want nothing stopped again", err, stopped)
	}
}
