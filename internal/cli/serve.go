package cli

import (
	"context"
	"flag"

	"github.com/exitmesh/exitmesh/internal/node"
)

func runServe(ctx context.Context, args []string, stdio IO) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file (default ./exitmesh.yaml)")
	pos, err := parseArgs(fs, args, stdio.Stdout)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, "no arguments besides --config"); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	return node.Run(ctx, cfg, newLogger(cfg.Log, stdio.Stderr))
}
