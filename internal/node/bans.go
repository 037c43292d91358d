package node

import (
	"context"
	"github.com/exitmesh/exitmesh/internal/loop"
	"log/slog"
	"sync"
	"time"

	"github.com/exitmesh/exitmesh/internal/bans"
	"github.com/exitmesh/exitmesh/internal/domain"
)

// banQueue bounds the bans waiting to be written to the store; beyond it a ban stays local.
const banQueue = 1024

// banSharing makes a node's bans the network's: bans this node decides are written to the store,
// and every sync interval the tracker is reconciled with the bans in force anywhere, so a client
// banned on one node is refused by all of them, and a ban an operator lifts is lifted on all of
// them, within a sync interval. A ban this node decided and has not written yet is never lifted by
// a reconcile that cannot have seen it (bans.Tracker.Shared).
type banSharing struct {
	store   domain.Store
	tracker *bans.Tracker
	log     *slog.Logger
	out     chan localBan
}

// localBan is a ban this node decided, and when: a ban decided before an operator lifted it
// stays lifted even if it reaches the store after the lift.
type localBan struct {
	bans.Ban
	decided time.Time
}

// publish queues a local ban for the store without blocking the request that caused it. The
// tracker calls it as it decides the ban, so now is when it was decided.
func (b *banSharing) publish(ban bans.Ban) {
	select {
	case b.out <- localBan{Ban: ban, decided: time.Now()}:
	default:
		b.log.Warn("ban not shared with other nodes: queue full", "ip", ban.IP)
	}
}

// run writes queued bans as they come and imports the network's bans every interval until ctx ends.
func (b *banSharing) run(ctx context.Context, interval time.Duration) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		loop.Loop{Interval: interval, Timeout: 5 * time.Second, Step: b.importBans, Log: b.log,
			Failing: "network bans not read; keeping this node's", Recovered: "network bans read again"}.Run(ctx)
	})
	for {
		select {
		case <-ctx.Done():
			return
		case ban := <-b.out:
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := b.store.PutBan(wctx, domain.Ban{IP: ban.IP, Until: ban.Until, Reason: ban.Reason.String(), Since: ban.decided})
			cancel()
			switch {
			case err == nil:
				b.tracker.Shared(ban.Ban)
			case ctx.Err() == nil:
				b.log.Warn("ban not shared with other nodes", "ip", ban.IP, "err", err)
			}
		}
	}
}

// importBans makes the tracker's bans the network's: new ones are imported, lifted or ended ones
// lifted.
func (b *banSharing) importBans(ctx context.Context) error {
	active, err := b.store.ListBans(ctx)
	if err != nil {
		return err
	}
	network := make([]bans.Ban, len(active))
	for i, ban := range active {
		network[i] = bans.Ban{IP: ban.IP, Until: ban.Until, Reason: reasonKind(ban.Reason)}
	}
	if n := b.tracker.Reconcile(network); n > 0 {
		b.log.Debug("bans lifted or ended on the network", "count", n)
	}
	return nil
}

func reasonKind(reason string) bans.Kind {
	if reason == bans.NotFound.String() {
		return bans.NotFound
	}
	return bans.AuthFailure
}
