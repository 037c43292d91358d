// Command harness measures exitmesh side by side with a direct connection to the origin (the
// limit), tinyproxy, Squid and a minimal goproxy-based proxy, all on loopback, and writes the table
// into docs/PERFORMANCE.md. bench/run builds everything and runs "harness run"; the other
// subcommands are its load generators, which it runs as pinned child processes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: harness run [flags] | load-connect | load-bulk | load-idle")
		os.Exit(2)
	}
	var err error
	switch args := os.Args[2:]; os.Args[1] {
	case "run":
		err = run(args)
	case "load-connect":
		err = loadConnect(args)
	case "load-bulk":
		err = loadBulk(args)
	case "load-idle":
		err = loadIdle(args)
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "harness:", err)
		os.Exit(1)
	}
}

// options are the flags of "harness run".
type options struct {
	bin        string
	doc        string
	label      string
	dur        time.Duration
	rounds     int
	bulkBytes  int64
	tunnels    int
	accounts   int
	ipsEach    int
	proxyCPU   int
	loadCPU    int
	quick      bool
	only       string
	maxRunTime time.Duration
}

func run(args []string) error {
	var o options
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.StringVar(&o.bin, "bin", "bench/bin", "directory holding exitmesh, origin and goproxy")
	fs.StringVar(&o.doc, "doc", "docs/PERFORMANCE.md", "document whose results section is rewritten; empty: print only")
	fs.StringVar(&o.label, "label", "", "a note printed above the results, e.g. \"preliminary: machine shared\"")
	fs.DurationVar(&o.dur, "d", 5*time.Second, "duration of each throughput run")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds of every throughput run; the median is reported")
	fs.Int64Var(&o.bulkBytes, "bulk-bytes", 2<<30, "bytes of the CONNECT bulk transfer")
	fs.IntVar(&o.tunnels, "tunnels", 5000, "idle CONNECT tunnels held for the memory figure")
	fs.IntVar(&o.accounts, "accounts", 10000, "accounts in the large store")
	fs.IntVar(&o.ipsEach, "ips-each", 5, "authorized IPs per account in the large store")
	fs.IntVar(&o.proxyCPU, "proxy-cpu", 0, "CPU the proxies run on")
	fs.IntVar(&o.loadCPU, "load-cpu", 1, "CPU the load generators and the origin run on")
	fs.BoolVar(&o.quick, "quick", false, "smoke run: 1s runs, one round, 256 MiB bulk, 500 tunnels, 100 accounts; the document is not written")
	fs.StringVar(&o.only, "only", "", "comma-separated targets to run (direct,tinyproxy,squid,goproxy,exitmesh)")
	fs.DurationVar(&o.maxRunTime, "max-time", 30*time.Minute, "abort the whole run after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.quick {
		o.dur, o.rounds, o.bulkBytes, o.tunnels, o.accounts, o.doc = time.Second, 1, 256<<20, 500, 100, ""
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.maxRunTime)
	defer cancel()
	b, err := newBench(ctx, o)
	if err != nil {
		return err
	}
	defer b.close()
	rep, err := b.measure(ctx)
	if err != nil {
		return err
	}
	fmt.Println(rep.markdown())
	if o.doc == "" {
		return nil
	}
	if err := rep.writeDoc(o.doc); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s\n", o.doc)
	return nil
}
