// Package cli is the exitmesh command line: it parses arguments, runs the command and turns its
// outcome into output and an exit status. cmd/exitmesh only hands it the process's arguments.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/exitmesh/exitmesh/client"
	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/domain"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailed  = 1 // the command could not be carried out
	exitUsage   = 2 // the command line is wrong
	exitRefused = 3 // the request was understood and refused (not found, conflict, limit, invalid)
)

// IO is where a command reads and writes.
type IO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// usageError is a wrong command line; its message is shown with a hint to use --help.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

const topUsage = `exitmesh — a self-hosted rotating proxy network

Usage:
  exitmesh demo [--port N] [--dir DIR]     run a complete demo network on loopback
  exitmesh serve --config FILE             run what the config declares
  exitmesh admin COMMAND ...               operator commands against the store
  exitmesh version                         this build's version, commit and date

Account commands (the account API; --api/--user/--password or EXITMESH_API/_USER/_PASSWORD, or
--token/EXITMESH_TOKEN instead of the user and password; --cacert FILE or EXITMESH_CACERT, --json;
--sub NAME acts on a sub-account's IPs, hostnames, proxy servers, tokens or usage):
  exitmesh ip | ips | ip add [IP] | ip delete IP
  exitmesh hostnames | hostname add H | hostname delete H
  exitmesh proxies [--available] | proxy add P | proxy delete P
  exitmesh subs | sub create USER (--sub-password-stdin | --sub-password P) [--proxies a,b] [--ips ...]
  exitmesh sub edit USER [--sub-password...] [--proxies a,b] [--ips ...] [--active true|false]
      sub create and edit also take --email, --first-name, --last-name, --monthly-limit GB, --total-limit GB
  exitmesh sub delete USER | usage [--from DATE] [--to DATE]
  exitmesh tokens | token create [--label TEXT] [--expires DATE] | token activate|deactivate|delete ID
  exitmesh account | account edit [--monthly-limit GB] [--total-limit GB]

Run "exitmesh admin --help" for the operator commands.
`

// Main runs the command in args (without the program name) and returns the exit status.
func Main(ctx context.Context, args []string, stdio IO) int {
	err := run(ctx, args, stdio)
	var ue *usageError
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stdio.Stderr, "exitmesh: %s (see --help)\n", ue.msg)
		return exitUsage
	default:
		fmt.Fprintf(stdio.Stderr, "exitmesh: %s\n", oneLine(err))
		return failureStatus(err)
	}
}

// failureStatus tells "your request was wrong" (refused: fix it) from "the service failed" (retry),
// for the store's errors and for the account API's alike.
func failureStatus(err error) int {
	for _, refused := range []error{client.ErrBadRequest, client.ErrUnauthorized, client.ErrPaymentRequired,
		client.ErrForbidden, client.ErrNotFound, client.ErrMethodNotAllowed, client.ErrConflict} {
		if errors.Is(err, refused) {
			return exitRefused
		}
	}
	var apiErr *client.Error
	if errors.As(err, &apiErr) {
		return exitFailed
	}
	if code := domain.ErrorCode(err); code != domain.EINTERNAL && code != domain.EUNAVAILABLE {
		return exitRefused
	}
	return exitFailed
}

// oneLine keeps error output to the single line the operator interface promises.
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

func run(ctx context.Context, args []string, stdio IO) error {
	if len(args) == 0 {
		fmt.Fprint(stdio.Stdout, topUsage)
		return usagef("no command given")
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stdio)
	case "demo":
		return runDemo(ctx, args[1:], stdio)
	case "admin":
		return runAdmin(ctx, args[1:], stdio)
	case "version", "--version":
		if err := wantArgs(args[1:], 0, "no arguments"); err != nil {
			return err
		}
		printVersion(stdio.Stdout)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdio.Stdout, topUsage)
		return nil
	}
	if isAccountCommand(args[0]) {
		return runAccount(ctx, args, stdio)
	}
	return usagef("unknown command %q", args[0])
}

// parseArgs parses flags anywhere among the arguments ("account create alice --plan x") and returns
// the positional arguments. --help prints the command's flags to help.
func parseArgs(fs *flag.FlagSet, args []string, help io.Writer) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(help, "Usage of %s:\n", fs.Name())
				fs.SetOutput(help)
				fs.PrintDefaults()
				return nil, err
			}
			return nil, usagef("%s", err)
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// wantArgs checks the count of positional arguments.
func wantArgs(pos []string, n int, what string) error {
	if len(pos) != n {
		return usagef("want %s", what)
	}
	return nil
}

// loadConfig reads the config at path; an empty path means ./exitmesh.yaml if it exists, else the
// defaults (store sqlite:./exitmesh.db).
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		if _, err := os.Stat("exitmesh.yaml"); err != nil {
			return config.Default(), nil
		}
		path = "exitmesh.yaml"
	}
	return config.Load(path)
}

// newLogger builds the structured logger the config asks for.
func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
