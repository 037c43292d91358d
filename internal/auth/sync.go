package auth

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// Refresh rebuilds the view from the store if the store's version differs from the view's.
func (v *View) Refresh(ctx context.Context, store domain.Store) error {
	ver, err := store.Version(ctx)
	if err != nil {
		return fmt.Errorf("read store version: %w", err)
	}
	if ver == v.Version() {
		return nil
	}
	snap, err := store.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("read store snapshot: %w", err)
	}
	v.Load(snap)
	return nil
}

// Follow refreshes the view every interval until ctx ends. While the store is unreachable the view
// keeps serving what it knows; the failure is logged once, and so is the recovery.
func (v *View) Follow(ctx context.Context, store domain.Store, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := v.Refresh(rctx, store)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			failing = true
			log.Warn("account view not refreshed; serving the last known accounts", "err", err)
		case err == nil && failing:
			failing = false
			log.Info("account view refreshed again", "version", v.Version())
		}
	}
}
