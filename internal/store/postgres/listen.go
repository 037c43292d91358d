package postgres

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// Listen wakes a node when another one commits a change: it holds a connection of its own that
// LISTENs on NotifyChannel, and calls wake after each notification, until ctx ends. While that
// connection is down (the database restarted, the connection was cut) it reconnects with a backoff
// growing from 100 ms to 10 s, and calls wake once each time it is back, for what it may have missed;
// meanwhile the node's polling is the only way changes arrive. The failure is logged once, and so is
// the recovery.
func Listen(ctx context.Context, url string, wake func(), log *slog.Logger) {
	cfg, err := pgconnConfig(url)
	if err != nil {
		log.Warn("change notifications off: invalid store URL; following the store by polling", "err", err)
		return
	}
	backoff := time.Duration(0)
	failing := false
	for ctx.Err() == nil {
		err := listenOnce(ctx, cfg, wake, func() {
			backoff = 0
			if failing {
				failing = false
				log.Info("change notifications listening again")
			}
		})
		if ctx.Err() != nil {
			return
		}
		if !failing {
			failing = true
			log.Warn("change notifications lost; following the store by polling until they are back", "err", err)
		}
		backoff = min(max(2*backoff, 100*time.Millisecond), 10*time.Second)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
	}
}

// listenOnce connects, listens and relays notifications until the connection fails or ctx ends.
// listening is called once the LISTEN is in place.
func listenOnce(ctx context.Context, cfg *pgx.ConnConfig, wake, listening func()) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return err
	}
	listening()
	wake() // what was committed while nobody listened
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		wake()
	}
}
