package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/bench/benchdoc"
)

// figure is one row of the tables.
type figure struct {
	key, label, unit string
	lowerBetter      bool
}

func figures(o options) []figure {
	fs := []figure{}
	for _, c := range []int{1, 64, 256} {
		fs = append(fs,
			figure{key: fmt.Sprintf("ka%d", c), label: fmt.Sprintf("Keep-alive, %d conn.: throughput", c), unit: "req/s"},
			figure{key: fmt.Sprintf("ka%d_p50", c), label: fmt.Sprintf("Keep-alive, %d conn.: p50 latency", c), unit: "ms", lowerBetter: true},
			figure{key: fmt.Sprintf("ka%d_p99", c), label: fmt.Sprintf("Keep-alive, %d conn.: p99 latency", c), unit: "ms", lowerBetter: true},
			figure{key: fmt.Sprintf("ka%d_cpu", c), label: fmt.Sprintf("Keep-alive, %d conn.: proxy CPU per request", c), unit: "µs", lowerBetter: true},
		)
	}
	return append(fs,
		figure{key: "newconn", label: "New connections (64 conc., 1 request each)", unit: "conn/s"},
		figure{key: "newconn_cpu", label: "New connections: proxy CPU per request", unit: "µs", lowerBetter: true},
		figure{key: "connect", label: "CONNECT setups (64 conc., + 1 echo round trip)", unit: "tunnels/s"},
		figure{key: "connect_p99", label: "CONNECT setup: p99 time", unit: "ms", lowerBetter: true},
		figure{key: "connect_cpu", label: "CONNECT setup: proxy CPU per tunnel", unit: "µs", lowerBetter: true},
		figure{key: "bulk", label: fmt.Sprintf("CONNECT bulk, 1 tunnel, %s", sizeText(o.bulkBytes)), unit: "MiB/s"},
		figure{key: "bulk_cpu", label: "CONNECT bulk: proxy CPU per GiB", unit: "ms", lowerBetter: true},
		figure{key: "idle_rss", label: fmt.Sprintf("RSS per idle tunnel (%s open)", benchdoc.Thousands(int64(o.tunnels))), unit: "KiB", lowerBetter: true},
		figure{key: "idle_fds", label: fmt.Sprintf("File descriptors per idle tunnel (%s open)", benchdoc.Thousands(int64(o.tunnels))), unit: "fds", lowerBetter: true},
	)
}

func sizeText(n int64) string {
	if n >= 1<<30 && n%(1<<30) == 0 {
		return fmt.Sprintf("%d GiB", n>>30)
	}
	return fmt.Sprintf("%d MiB", n>>20)
}

// report holds the samples of every figure of every target.
type report struct {
	o          options
	targets    []*target
	figures    []figure
	samples    map[string]map[string][]float64 // figure → target → samples
	problems   map[string]map[string]string    // figure → target → what went wrong
	begin, end time.Time
	loadBefore string
	loadAfter  string
}

func newReport(o options, targets []*target) *report {
	return &report{o: o, targets: targets, figures: figures(o), samples: map[string]map[string][]float64{},
		problems: map[string]map[string]string{}, begin: time.Now(), loadBefore: benchdoc.LoadAverage()}
}

func (r *report) add(key string, t *target, v float64) {
	if r.samples[key] == nil {
		r.samples[key] = map[string][]float64{}
	}
	r.samples[key][t.name] = append(r.samples[key][t.name], v)
}

// problem records what went wrong with a figure; a cancelled run is the only error that stops all.
func (r *report) problem(key string, t *target, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if r.problems[key] == nil {
		r.problems[key] = map[string]string{}
	}
	r.problems[key][t.name] = oneLine(err.Error())
	return nil
}

func oneLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

func (r *report) addWrk(t *target, key string, w wrkResult, err error) error {
	if err != nil {
		return r.problem(key, t, err)
	}
	switch n := w.errors(); {
	case n > 0 && n == w.ReadErrors && n >= w.Requests*9/10:
		r.problem(key, t, fmt.Errorf("closed the client connection after every response (wrk counts each close as a read error): a new connection per request"))
	case n > 0:
		r.problem(key, t, fmt.Errorf("%d errors in %d requests (connect %d, read %d, write %d, status %d, timeout %d)",
			n, w.Requests, w.ConnectErrors, w.ReadErrors, w.WriteErrors, w.StatusErrors, w.Timeouts))
	}
	r.add(key, t, w.rate())
	if key != "newconn" {
		r.add(key+"_p50", t, float64(w.P50US)/1000)
		r.add(key+"_p99", t, float64(w.P99US)/1000)
	}
	return nil
}

// addCPU records the proxy's CPU time per request (or tunnel) of a run; nothing for direct.
func (r *report) addCPU(t *target, key string, cpu time.Duration, n int64) {
	if t.server != nil && n > 0 {
		r.add(key+"_cpu", t, float64(cpu.Microseconds())/float64(n))
	}
}

func (r *report) addRate(t *target, c rateResult, err error) error {
	if err != nil {
		return r.problem("connect", t, err)
	}
	if c.Errors > 0 {
		r.problem("connect", t, fmt.Errorf("%d errors in %d setups, first: %s", c.Errors, c.Count+c.Errors, c.Error))
	}
	r.add("connect", t, float64(c.Count)/c.Secs)
	r.add("connect_p99", t, c.P99US/1000)
	return nil
}

func (r *report) addBulk(t *target, b bulkResult, err error) error {
	if err != nil {
		return r.problem("bulk", t, err)
	}
	r.add("bulk", t, float64(b.Bytes)/b.Secs/(1<<20))
	return nil
}

func (r *report) addIdle(t *target, u idleUsage, err error) error {
	if err != nil {
		return r.problem("idle_rss", t, err)
	}
	if u.short != "" {
		r.problem("idle_rss", t, errors.New(u.short))
	}
	r.add("idle_rss", t, u.rssPerTunnel)
	r.add("idle_fds", t, u.fdsPerTunnel)
	return nil
}

func (r *report) finish() {
	r.end = time.Now()
	r.loadAfter = benchdoc.LoadAverage()
}

// value returns the median of a figure's samples for a target.
func (r *report) value(key, target string) (float64, bool) {
	s := r.samples[key][target]
	if len(s) == 0 {
		return 0, false
	}
	s = slices.Sorted(slices.Values(s))
	if len(s)%2 == 1 {
		return s[len(s)/2], true
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2, true
}

// bestPeer returns the peer with the best value of a figure.
func (r *report) bestPeer(f figure) (string, float64, bool) {
	name, best, found := "", 0.0, false
	for _, t := range r.targets {
		v, ok := r.value(f.key, t.name)
		if !t.peer || !ok {
			continue
		}
		if !found || (f.lowerBetter && v < best) || (!f.lowerBetter && v > best) {
			name, best, found = t.name, v, true
		}
	}
	return name, best, found
}

func format(v float64, unit string) string {
	switch {
	case unit == "ms" && v < 10:
		return fmt.Sprintf("%.2f", v)
	case unit == "ms", unit == "KiB", unit == "fds", unit == "µs":
		return fmt.Sprintf("%.1f", v)
	default:
		return benchdoc.Thousands(int64(math.Round(v)))
	}
}

func ratio(v, base float64) string {
	if base == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", v/base)
}

// markdown renders the machine, the absolutes, the ratios and the targets.
func (r *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run of %s, %s to %s (load average %s before, %s after).",
		r.begin.UTC().Format("2006-01-02"), r.begin.UTC().Format("15:04"), r.end.UTC().Format("15:04 UTC"), r.loadBefore, r.loadAfter)
	if r.o.label != "" {
		fmt.Fprintf(&b, " **%s**", r.o.label)
	}
	if other := background.share(); other > 0.05 {
		fmt.Fprintf(&b, " **Other work kept the CPUs %.0f%% busy on average while the servers were idle between"+
			" measurements: rates and latencies are noisy; proxy CPU per request is the steadier figure.**", 100*other)
	}
	fmt.Fprintf(&b, "\nMedian of %d rounds of %s each; command: `bench/run%s`.\n\n", r.o.rounds, r.o.dur, r.flagsText())
	b.WriteString(describeMachine().markdown())
	b.WriteString("\n### Absolutes\n\n")
	r.table(&b, func(f figure, t *target) string {
		v, ok := r.value(f.key, t.name)
		if !ok {
			if p := r.problems[f.key][t.name]; p != "" {
				return "failed"
			}
			return "—"
		}
		s := format(v, f.unit)
		if r.problems[f.key][t.name] != "" {
			s += " (!)"
		}
		return s
	})
	b.WriteString("\n### Ratio to direct\n\n")
	r.directTable(&b, func(f figure, t *target) string {
		v, ok := r.value(f.key, t.name)
		d, dok := r.value(f.key, "direct")
		if !ok || !dok || t.server == nil {
			return "—"
		}
		return ratio(v, d)
	})
	b.WriteString("\n### Ratio to the best peer\n\n")
	b.WriteString("The best of tinyproxy, squid and goproxy for each figure (highest rate, lowest latency or memory).\n\n")
	r.bestTable(&b)
	if len(r.problems) > 0 {
		b.WriteString("\n(!) and failed:\n\n")
		for _, f := range r.figures {
			for _, t := range r.targets {
				if p := r.problems[f.key][t.name]; p != "" {
					fmt.Fprintf(&b, "- %s, %s: %s\n", f.label, t.name, p)
				}
			}
		}
	}
	b.WriteString("\n### Targets\n\n")
	r.targetsTable(&b)
	return b.String()
}

func (r *report) flagsText() string {
	if r.o.quick {
		return " --quick"
	}
	return ""
}

func (r *report) table(b *strings.Builder, cell func(figure, *target) string) {
	r.tableOf(b, r.figures, r.targets, cell)
}

// directTable is the table of the figures direct has, for the proxies.
func (r *report) directTable(b *strings.Builder, cell func(figure, *target) string) {
	var fs []figure
	for _, f := range r.figures {
		if _, ok := r.value(f.key, "direct"); ok {
			fs = append(fs, f)
		}
	}
	var ts []*target
	for _, t := range r.targets {
		if t.server != nil {
			ts = append(ts, t)
		}
	}
	r.tableOf(b, fs, ts, cell)
}

// writeTableHead writes a Markdown table's head: the fixed columns, then one right-aligned column per
// target.
func writeTableHead(b *strings.Builder, fixed []string, targets []*target) {
	b.WriteString("|")
	sep := "|"
	for _, c := range fixed {
		fmt.Fprintf(b, " %s |", c)
		sep += "---|"
	}
	for _, t := range targets {
		fmt.Fprintf(b, " %s |", t.name)
		sep += "---:|"
	}
	b.WriteString("\n" + sep + "\n")
}

func (r *report) tableOf(b *strings.Builder, figures []figure, targets []*target, cell func(figure, *target) string) {
	writeTableHead(b, []string{"figure", "unit"}, targets)
	for _, f := range figures {
		fmt.Fprintf(b, "| %s | %s |", f.label, f.unit)
		for _, t := range targets {
			fmt.Fprintf(b, " %s |", cell(f, t))
		}
		b.WriteString("\n")
	}
}

func (r *report) bestTable(b *strings.Builder) {
	var ours []*target
	for _, t := range r.targets {
		if strings.HasPrefix(t.name, "exitmesh") {
			ours = append(ours, t)
		}
	}
	writeTableHead(b, []string{"figure", "best peer", "its value"}, ours)
	for _, f := range r.figures {
		name, best, ok := r.bestPeer(f)
		if !ok {
			continue
		}
		fmt.Fprintf(b, "| %s | %s | %s %s |", f.label, name, format(best, f.unit), f.unit)
		for _, t := range ours {
			v, ok := r.value(f.key, t.name)
			if !ok {
				b.WriteString(" — |")
				continue
			}
			fmt.Fprintf(b, " %s |", ratio(v, best))
		}
		b.WriteString("\n")
	}
}
