package cli

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/node"
)

func runServe(ctx context.Context, args []string, stdio IO) error {
	// From now on SIGHUP reloads instead of killing the process, and never kills it afterwards.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Ignore(syscall.SIGHUP)
	usr1 := make(chan os.Signal, 1) // SIGUSR1 reopens the access log
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Ignore(syscall.SIGUSR1)

	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file (default ./exitmesh.yaml); SIGHUP reads it again")
	pos, err := parseArgs(fs, args, stdio.Stdout)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, "no arguments besides --config"); err != nil {
		return err
	}
	path := *cfgPath
	if path == "" {
		path = "exitmesh.yaml" // what a reload reads, even if the node started on the defaults
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stdio.Stderr)
	n, err := node.Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	reloadCtx, stopReloads := context.WithCancel(ctx)
	reloaded := make(chan struct{})
	go func() {
		defer close(reloaded)
		reloadOnHangup(reloadCtx, n, path, hup, log)
	}()
	reopened := make(chan struct{})
	go func() {
		defer close(reopened)
		for {
			select {
			case <-reloadCtx.Done():
				return
			case <-usr1:
				n.ReopenAccessLog()
			}
		}
	}()
	err = n.Wait(ctx)
	stopReloads()
	<-reloaded
	<-reopened
	return err
}

// reloadOnHangup reads the config at path again on each SIGHUP and applies it to n, until ctx
// ends. Signals that arrive during a reload cause one more reload after it.
func reloadOnHangup(ctx context.Context, n *node.Node, path string, hup <-chan os.Signal, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		log.Info("SIGHUP: reloading the config", "config", path)
		changes, err := reload(ctx, n, path)
		if err != nil {
			log.Error("config reload failed; keeping the running config", "config", path, "err", oneLine(err))
			continue
		}
		log.Info("config reloaded", "config", path, "added", changes.Added, "removed", changes.Removed,
			"changed", changes.Changed, "needs_restart", changes.Restart)
	}
}

func reload(ctx context.Context, n *node.Node, path string) (node.Changes, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return node.Changes{}, err
	}
	return n.Reload(ctx, cfg)
}
