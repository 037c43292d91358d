// Command exitmesh runs a self-hosted rotating proxy network: the demo, a node (serve), and the
// operator commands (admin). See the README.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/exitmesh/exitmesh/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	os.Exit(code)
}
