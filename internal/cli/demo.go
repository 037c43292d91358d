package cli

import (
	"context"
	"flag"
	"log/slog"

	"github.com/exitmesh/exitmesh/internal/demo"
)

func runDemo(ctx context.Context, args []string, stdio IO) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	port := fs.Int("port", 31280, "first port of the demo's listeners (0: any free ports)")
	dir := fs.String("dir", "", "keep the config and store in DIR (default: a temporary directory removed at exit)")
	verbose := fs.Bool("verbose", false, "log every request and tunnel")
	pos, err := parseArgs(fs, args, stdio.Stdout)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stdio.Stderr, &slog.HandlerOptions{Level: level}))
	return demo.Run(ctx, demo.Options{Port: *port, Dir: *dir, Stdout: stdio.Stdout, Log: log})
}
