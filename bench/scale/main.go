// Command scale measures the control plane at scale (issue 15): a node on a SQLite store seeded with
// N accounts through the store's own bulk path (1 authorized IP each, a quarter with a sub-account),
// then changes made from another process at a steady rate. For each N it reports the time from start
// to serving, the node's RSS per login, how long a change takes to be honoured by the proxy (p50,
// p99), the node's CPU per applied change, and the proxy's keep-alive throughput during the change
// storm against a quiet run. It writes docs/SCALE.md. Run it through bench/scale/run.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/bench/benchdoc"
)

type options struct {
	sizes   []int
	bin     string // the exitmesh binary
	storm   time.Duration
	rate    int // changes per second
	doc     string
	label   string
	loadDur time.Duration
	pg      string // a PostgreSQL server's URL: each size gets a schema of its own there; "": SQLite
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	var o options
	sizes := fs.String("n", "10000,100000,1000000", "account counts to measure, comma-separated")
	fs.StringVar(&o.bin, "exitmesh", "bench/bin/exitmesh", "the exitmesh binary")
	fs.DurationVar(&o.storm, "storm", 60*time.Second, "how long the change storm lasts")
	fs.IntVar(&o.rate, "rate", 50, "changes per second during the storm")
	fs.DurationVar(&o.loadDur, "load", 10*time.Second, "how long each keep-alive throughput run lasts")
	fs.StringVar(&o.doc, "doc", "docs/SCALE.md", `the document whose results section is rewritten ("" for none)`)
	fs.StringVar(&o.label, "label", "", "a note printed above the results")
	fs.StringVar(&o.pg, "pg", "", "measure on PostgreSQL (this server's URL) with two nodes, instead of SQLite with one")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for s := range strings.SplitSeq(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-n: %q is not an account count", s)
		}
		o.sizes = append(o.sizes, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Hour)
	defer cancel()
	began := time.Now()
	load, ticks := benchdoc.LoadAverage(), benchdoc.ReadCPUTicks()
	base, err := baseline(ctx, o)
	if err != nil {
		return fmt.Errorf("a node without accounts: %w", err)
	}
	var rows []result
	for _, n := range o.sizes {
		r, err := measureSize(ctx, o, n)
		if err != nil {
			return fmt.Errorf("%s accounts: %w", benchdoc.Thousands(int64(n)), err)
		}
		r.baseKiB = base
		fmt.Fprintln(os.Stderr, r.summary())
		rows = append(rows, r)
	}
	text := report(o, rows, began, load, benchdoc.StealShare(ticks))
	fmt.Print(text)
	if o.doc == "" {
		return nil
	}
	key := "scale"
	if o.pg != "" {
		key = "scale-postgres"
	}
	return benchdoc.Section{Key: key, Writer: "bench/scale/run", Title: "Scale"}.Write(o.doc, text)
}
