package auth

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/loop"
)

// feedBatch is how many store versions one read of the change feed covers at most.
const feedBatch = 1000

// SetLog sets where the view reports full loads and feed faults; nil discards them.
func (v *View) SetLog(log *slog.Logger) { v.log.Store(log) }

func (v *View) logger() *slog.Logger {
	if l := v.log.Load(); l != nil {
		return l
	}
	return slog.New(slog.DiscardHandler)
}

// Refresh brings the view up to the store's current version: through the change feed, applying only
// what changed, once the view has been loaded; by a full load the first time, when the view fell
// behind what the feed keeps, or when an entry cannot be read (each full load is logged, with why).
// Refreshes are serialized, and the view never goes back to an older version.
func (v *View) Refresh(ctx context.Context, store domain.Store) error {
	v.applyMu.Lock()
	defer v.applyMu.Unlock()
	from := v.Version()
	if from < 0 {
		return v.fullLoad(ctx, store, "first load")
	}
	head, err := store.Version(ctx)
	if err != nil {
		return fmt.Errorf("read store version: %w", err)
	}
	if head == from {
		return nil
	}
	for {
		d, err := store.ChangesSince(ctx, from, feedBatch)
		if err != nil {
			return fmt.Errorf("read the change feed: %w", err)
		}
		if d.Gap {
			return v.fullLoad(ctx, store, fmt.Sprintf("the view (version %d) is older than the change feed keeps", from))
		}
		if err := checkDelta(d, from); err != nil {
			v.logger().Error("change feed entry unreadable; loading every account instead", "err", err)
			return v.fullLoad(ctx, store, "unreadable change feed entry")
		}
		v.apply(d)
		if d.To >= d.Head {
			return nil
		}
		from = d.To
	}
}

// checkDelta refuses a delta that does not follow from, or whose entries are out of order, out of
// its range, or of an unknown kind: applying it could leave the view silently wrong.
func checkDelta(d domain.Delta, from int64) error {
	if d.From != from || d.To < d.From || d.Head < d.To {
		return fmt.Errorf("delta %d→%d (head %d) does not follow version %d", d.From, d.To, d.Head, from)
	}
	last := from
	for _, c := range d.Changes {
		switch {
		case c.Seq <= from || c.Seq > d.To || c.Seq < last:
			return fmt.Errorf("entry %d out of order in delta %d→%d", c.Seq, d.From, d.To)
		case c.Kind == domain.ChangeAccount && c.Ref <= 0:
			return fmt.Errorf("entry %d names account %d", c.Seq, c.Ref)
		case c.Kind != domain.ChangeAccount && c.Kind != domain.ChangePlans:
			return fmt.Errorf("entry %d has unknown kind %q", c.Seq, c.Kind)
		}
		last = c.Seq
	}
	return nil
}

// fullLoad replaces the view with the store's snapshot. The caller holds applyMu.
func (v *View) fullLoad(ctx context.Context, store domain.Store, why string) error {
	start := time.Now()
	snap, err := store.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("read store snapshot: %w", err)
	}
	v.load(snap)
	// The snapshot, as big as the view, is garbage now: give its memory back to the system rather
	// than keep it for a heap that will not grow that much again (a full load is rare).
	debug.FreeOSMemory()
	v.logger().Info("account view loaded in full", "why", why, "version", snap.Version,
		"logins", v.Len(), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// Follow refreshes the view every interval, and at once whenever wake delivers (nil: no wake-ups),
// until ctx ends. While the store is unreachable the view keeps serving what it knows; the failure is
// logged once, and so is the recovery. Every pruneEvery it also prunes the store's change feed of
// entries older than retention (0: never).
func (v *View) Follow(ctx context.Context, store domain.Store, interval time.Duration, wake <-chan struct{}, retention time.Duration, log *slog.Logger) {
	var pruned time.Time
	loop.Loop{
		Interval: interval, Timeout: 5 * time.Second, Wake: wake, Spacing: wakeSpacing, Log: log,
		Failing:   "account view not refreshed; serving the last known accounts",
		Recovered: "account view refreshed again",
		Step: func(ctx context.Context) error {
			if err := v.Refresh(ctx, store); err != nil {
				return err
			}
			if retention > 0 && time.Since(pruned) >= pruneEvery {
				pruned = time.Now()
				if n, err := store.PruneChanges(ctx, pruned.Add(-retention)); err != nil {
					log.Warn("change feed not pruned", "err", err)
				} else if n > 0 {
					log.Debug("change feed pruned", "entries", n, "older_than", retention)
				}
			}
			return nil
		},
	}.Run(ctx)
}

// wakeSpacing is the least time between two reads of the feed that notifications cause: a lone
// change is read at once, and a network making fifty changes a second is read ten times a second,
// not fifty, each change waiting at most this long for its read.
const wakeSpacing = 100 * time.Millisecond

// pruneEvery is how often a following node prunes the change feed.
const pruneEvery = time.Hour
