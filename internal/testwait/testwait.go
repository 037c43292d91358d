// Package testwait lets a test wait for what happens in the background — a change reaching another
// node, a flush reaching the store, a process printing a line — by retrying a check. Its bound only
// keeps a broken build from hanging; it is not a performance threshold.
package testwait

import (
	"testing"
	"time"
)

// Bound is how long For retries before it fails the test.
const Bound = 15 * time.Second

// For retries check every few milliseconds until it returns nil, and fails the test with what and
// the last error when Bound passes first.
func For(t testing.TB, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(Bound)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
