package node

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/bans"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/store"
)

// refusingPuts is a store that cannot write bans: a node's ban never reaches the network.
type refusingPuts struct{ domain.Store }

func (refusingPuts) PutBan(context.Context, domain.Ban) error {
	return errors.New("store unavailable")
}

// startSharing runs ban sharing for a node on st, banning an IP at its second failure.
func startSharing(t *testing.T, st domain.Store) *bans.Tracker {
	t.Helper()
	b := &banSharing{store: st, log: slog.New(slog.DiscardHandler), out: make(chan localBan, banQueue)}
	b.tracker = bans.New(bans.Config{AuthFailures: 1, OnBan: b.publish})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.run(ctx, 20*time.Millisecond)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return b.tracker
}

// TestBanLiftReachesEveryNode: a ban decided on one node reaches the other; an operator's lift
// in the store clears it on both within a sync interval; a ban a node could not write stays on that
// node; and the IP can be banned again after the lift.
func TestBanLiftReachesEveryNode(t *testing.T) {
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "bans.db")
	open := func() domain.Store {
		st, err := store.Open(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	admin := open()
	a, b := startSharing(t, open()), startSharing(t, open())
	cut := startSharing(t, refusingPuts{open()}) // a node whose ban writes fail
	x, y := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	banned := func(tr *bans.Tracker, ip netip.Addr) bool {
		_, ok := tr.Banned(ip)
		return ok
	}
	within := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("not within 5s: %s", what)
			}
		}
	}

	a.Fail(x, bans.AuthFailure)
	if !a.Fail(x, bans.AuthFailure) {
		t.Fatal("the second failure did not ban")
	}
	within("node b imports node a's ban", func() bool { return banned(b, x) && banned(cut, x) })
	cut.Fail(y, bans.AuthFailure)
	cut.Fail(y, bans.AuthFailure)

	if err := admin.LiftBan(t.Context(), x); err != nil {
		t.Fatal(err)
	}
	within("every node drops the lifted ban", func() bool { return !banned(a, x) && !banned(b, x) && !banned(cut, x) })
	time.Sleep(100 * time.Millisecond) // five sync intervals
	if !banned(cut, y) {
		t.Error("a ban its node could not write was dropped by a reconcile that never saw it")
	}
	if banned(a, y) || banned(b, y) {
		t.Error("an unwritten ban reached other nodes")
	}

	// Lifted is not immune: new failures after the lift ban again, everywhere.
	b.Fail(x, bans.AuthFailure)
	b.Fail(x, bans.AuthFailure)
	within("a ban decided after the lift reaches every node", func() bool { return banned(a, x) && banned(b, x) })
	time.Sleep(100 * time.Millisecond)
	if !banned(a, x) || !banned(b, x) {
		t.Error("the ban decided after the lift did not stay")
	}
}
