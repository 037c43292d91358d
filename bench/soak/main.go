// Command soak runs the real exitmesh binary under a long, mixed, steady load on loopback and
// checks that it neither fails nor grows: thousands of CONNECT tunnels echoing (some closing and
// reopening), keep-alive HTTP clients, and account changes through the HTTPS API, while the node's
// own /metrics is sampled. The verdict and the samples go into docs/SOAK.md; the exit status is
// non-zero when the verdict fails. See bench/README.md, "Soak".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// options are the command's flags.
type options struct {
	dur            time.Duration
	tunnels        int
	clients        int
	accounts       int
	tunnelInterval time.Duration
	churn          float64
	reqInterval    time.Duration
	apiInterval    time.Duration
	sample         time.Duration
	ramp           time.Duration
	settle         time.Duration
	quietTimeout   time.Duration
	doc            string
	label          string
	exitmesh       string
	keep           bool
	tol            tolerances
	args           []string // as given, for the report
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.DurationVar(&o.dur, "d", 10*time.Minute, "how long the load runs, ramp included")
	fs.IntVar(&o.tunnels, "tunnels", 2000, "concurrent CONNECT tunnels")
	fs.IntVar(&o.clients, "clients", 64, "keep-alive HTTP clients")
	fs.IntVar(&o.accounts, "accounts", 3, "accounts the load and the API writer use")
	fs.DurationVar(&o.tunnelInterval, "tunnel-interval", 5*time.Second, "mean time between a tunnel's echo round trips")
	fs.Float64Var(&o.churn, "churn", 0.02, "chance that a tunnel closes and reopens after each echo")
	fs.DurationVar(&o.reqInterval, "req-interval", 100*time.Millisecond, "pause between one HTTP client's requests")
	fs.DurationVar(&o.apiInterval, "api-interval", 200*time.Millisecond, "pause between API calls")
	fs.DurationVar(&o.sample, "sample", 15*time.Second, "time between samples of the node's /metrics")
	fs.DurationVar(&o.ramp, "ramp", 30*time.Second, "time over which the tunnels are first opened")
	fs.DurationVar(&o.settle, "settle", 100*time.Second, "wait before the baseline and after the load: the node's idle timeouts are 90s")
	fs.DurationVar(&o.quietTimeout, "quiet-timeout", time.Minute, "longest wait, after -settle, for the node to hold still")
	fs.StringVar(&o.doc, "doc", "docs/SOAK.md", "document whose results section is rewritten; empty: print only")
	fs.StringVar(&o.label, "label", "", "a note printed above the results, e.g. \"machine shared with test suites\"")
	fs.StringVar(&o.exitmesh, "exitmesh", "", "an exitmesh binary to use instead of building ./cmd/exitmesh")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (config, store, node log)")
	fs.Float64Var(&o.tol.trendPct, "trend-pct", 10, "allowed growth, in percent, from the first to the last third of the steady samples")
	fs.Float64Var(&o.tol.returnPct, "return-pct", 10, "allowed excess, in percent, of goroutines and fds after the load over the baseline")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case o.tunnels < 1 || o.clients < 1 || o.accounts < 1:
		return o, errors.New("-tunnels, -clients and -accounts must be at least 1")
	case o.churn < 0 || o.churn > 1:
		return o, errors.New("-churn must be between 0 and 1")
	case o.dur < o.ramp+3*o.sample:
		return o, fmt.Errorf("-d %s leaves fewer than 3 samples after the %s ramp", o.dur, o.ramp)
	case o.tunnelInterval <= 0 || o.reqInterval <= 0 || o.apiInterval <= 0 || o.sample <= 0:
		return o, errors.New("intervals must be positive")
	}
	o.tol.applyFloors()
	o.args = args
	return o, nil
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err == nil {
		err = run(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if _, err := os.Stat("cmd/exitmesh"); err != nil && o.exitmesh == "" {
		return errors.New("run from the repository's root (it builds ./cmd/exitmesh), or give -exitmesh")
	}
	raiseFileLimit()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Everything below is bounded by its own timeouts; this is the backstop against a hang.
	ctx, cancel := context.WithTimeout(ctx, o.dur+2*(o.settle+o.quietTimeout)+10*time.Minute)
	defer cancel()

	s, err := newSoak(ctx, o)
	if err != nil {
		return err
	}
	defer s.close()
	rep, err := s.run(ctx)
	if err != nil {
		return err
	}
	text := rep.markdown()
	fmt.Println(text)
	if o.doc != "" {
		if err := results.Write(o.doc, text); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote %s\n", o.doc)
	}
	if !rep.verdict.pass() {
		return fmt.Errorf("verdict: FAIL (%s)", strings.Join(rep.verdict.failures(), "; "))
	}
	fmt.Fprintln(os.Stderr, "verdict: PASS")
	return nil
}

// raiseFileLimit lifts the open-file limit as far as the system allows; the node, started later,
// inherits it. Each tunnel costs the node two descriptors and this process two more (client and
// origin ends).
func raiseFileLimit() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	for _, want := range []uint64{1 << 20, 262144, lim.Max} {
		if want < lim.Cur {
			continue
		}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: max(want, lim.Max)}) == nil {
			return
		}
	}
}
