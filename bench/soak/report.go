package main

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/bench/benchdoc"
)

// sample is one reading of the node's /metrics, with the harness's own view at the same moment.
type sample struct {
	at                          time.Time
	phase                       string // baseline, ramp, steady or after
	m                           metrics
	goroutines, fds, rss        float64
	heapInuse                   float64
	tunnelsActive, tunnelsTotal float64
	requestsTotal, errorsTotal  float64
	harnessOpen, echoOpen       int64
	requestMax, echoMax         time.Duration // the slowest since the previous sample
}

func (s sample) summary() string {
	return fmt.Sprintf("goroutines %.0f, fds %.0f, RSS %.1f MiB, heap in use %.1f MiB, tunnels open %.0f (harness %d), requests %.0f, tunnels %.0f",
		s.goroutines, s.fds, s.rss/(1<<20), s.heapInuse/(1<<20), s.tunnelsActive, s.harnessOpen, s.requestsTotal, s.tunnelsTotal)
}

// tolerances are what the verdict allows.
//
// Steady phase: a figure may grow from the mean of the first third of the steady samples to the
// mean of the last third by trendPct percent or by its floor, whichever is larger. The floors
// cover what moves without leaking: with churn, the number of tunnels open at the moment of a
// sample wanders by dozens (each costs the node about two goroutines and two descriptors), and
// heap in use swings by megabytes with the moment of the garbage collector's cycle.
//
// After the load: goroutines and descriptors must come back to the baseline plus returnPct percent
// or 10, whichever is larger; 10 covers the node's periodic work (store sync, usage flush) caught
// mid-flight. Memory is not held to the baseline: Go keeps freed heap for reuse and returns it to
// the system lazily, and the node keeps caches (credentials, sessions) by design; the steady-phase
// trend is the memory check.
type tolerances struct {
	trendPct, returnPct                 float64
	goroutineFloor, fdFloor, heapFloor  float64
	returnGoroutineFloor, returnFDFloor float64
}

func (t *tolerances) applyFloors() {
	t.goroutineFloor, t.fdFloor, t.heapFloor = 50, 50, 16<<20
	t.returnGoroutineFloor, t.returnFDFloor = 10, 10
}

// check is one line of the verdict.
type check struct {
	name, measured, allowed string
	ok, judged              bool
}

type verdict []check

func (v verdict) pass() bool { return len(v.failures()) == 0 }

func (v verdict) failures() []string {
	var out []string
	for _, c := range v {
		if c.judged && !c.ok {
			out = append(out, c.name+": "+c.measured+", allowed "+c.allowed)
		}
	}
	return out
}

// report is a whole run.
type report struct {
	o                      options
	samples                []sample
	begin, end             time.Time
	loadBegin, loadEnd     time.Time
	loadBefore, loadAfter  string
	tunnelsOpened, churned int64
	echoes, requests       int64
	clientDials            int64
	apiCalls, apiAttempts  int64
	classes                []classCount
	unexpected             int
	warnings               []string
	verdict                verdict
	fdsBefore, fdsAfter    map[string]int
	latencies              []latencyRow
}

type latencyRow struct {
	name                    string
	count                   int64
	p50, p99, p999, maximum time.Duration
}

func newReport(o options) *report {
	return &report{o: o, begin: time.Now(), loadBefore: benchdoc.LoadAverage()}
}

func (r *report) add(s sample, phase string) {
	s.phase = phase
	r.samples = append(r.samples, s)
}

func (r *report) phase(p string) []sample {
	var out []sample
	for _, s := range r.samples {
		if s.phase == p {
			out = append(out, s)
		}
	}
	return out
}

// finish takes the load's counters and errors and draws the verdict.
func (r *report) finish(l *load) {
	r.end, r.loadAfter = time.Now(), benchdoc.LoadAverage()
	r.tunnelsOpened, r.churned = l.n.tunnelsOpened.Load(), l.n.tunnelsChurned.Load()
	r.echoes, r.requests, r.clientDials = l.n.echoes.Load(), l.n.requests.Load(), l.n.clientDials.Load()
	r.apiCalls, r.apiAttempts = l.n.apiCalls.Load(), l.n.apiAttempts.Load()
	r.classes, r.unexpected = l.errs.classes(), l.errs.unexpected()
	for _, x := range []struct {
		name string
		lat  *latency
	}{{"CONNECT tunnel setup (dial, CONNECT, the origin's greeting)", &l.lat.open}, {"tunnel echo round trip", &l.lat.echo},
		{"HTTP request on a kept-alive connection", &l.lat.request}, {"API call (HTTPS, Basic)", &l.lat.api}} {
		row := latencyRow{name: x.name}
		row.count, row.p50, row.p99, row.p999, row.maximum = x.lat.summary()
		r.latencies = append(r.latencies, row)
	}
	r.verdict = r.judge()
}

func (r *report) judge() verdict {
	t := r.o.tol
	v := verdict{{name: "unexpected errors", measured: benchdoc.Thousands(int64(r.unexpected)), allowed: "0", ok: r.unexpected == 0, judged: true}}
	noLoad := r.tunnelsOpened == 0 || r.echoes == 0 || r.requests == 0 || r.apiCalls == 0
	v = append(v, check{name: "every kind of load ran", judged: true, ok: !noLoad,
		measured: fmt.Sprintf("%s tunnels, %s echoes, %s requests, %s API calls", benchdoc.Thousands(r.tunnelsOpened),
			benchdoc.Thousands(r.echoes), benchdoc.Thousands(r.requests), benchdoc.Thousands(r.apiCalls)), allowed: "each > 0"})

	base, after := r.phase("baseline"), r.phase("after")
	if len(base) == 1 && len(after) == 1 {
		for _, f := range []struct {
			name  string
			value func(sample) float64
			floor float64
		}{
			{"goroutines after the load, against the baseline", func(s sample) float64 { return s.goroutines }, t.returnGoroutineFloor},
			{"open fds after the load, against the baseline", func(s sample) float64 { return s.fds }, t.returnFDFloor},
		} {
			b, a := f.value(base[0]), f.value(after[0])
			limit := b + math.Max(b*t.returnPct/100, f.floor)
			v = append(v, check{name: f.name, judged: true, ok: a <= limit,
				measured: fmt.Sprintf("%.0f → %.0f", b, a), allowed: fmt.Sprintf("≤ %.0f", limit)})
		}
	} else {
		v = append(v, check{name: "baseline and after-load samples", judged: true, measured: "missing", allowed: "one each"})
	}

	steady := r.phase("steady")
	if len(steady) < 3 {
		return append(v, check{name: "steady samples", judged: true, measured: fmt.Sprint(len(steady)), allowed: "≥ 3"})
	}
	// A trend of fewer samples is one or two moments of the collector's cycle: shown, not judged.
	enough, note := len(steady) >= minTrendSamples, ""
	if !enough {
		note = fmt.Sprintf(" (not judged: %d steady samples, fewer than %d)", len(steady), minTrendSamples)
	}
	for _, f := range []struct {
		name   string
		value  func(sample) float64
		third  func([]sample, func(sample) float64) (float64, float64)
		floor  float64
		unit   float64
		judged bool
	}{
		{"goroutines, steady phase: first third → last third (means)", func(s sample) float64 { return s.goroutines }, trend, t.goroutineFloor, 1, enough},
		{"open fds, steady phase: first third → last third (means)", func(s sample) float64 { return s.fds }, trend, t.fdFloor, 1, enough},
		{"heap in use (MiB), steady phase: first third → last third (lowest)", func(s sample) float64 { return s.heapInuse }, troughs, t.heapFloor, 1 << 20, enough},
		{"RSS (MiB), steady phase: first third → last third (means; not judged)", func(s sample) float64 { return s.rss }, trend, t.heapFloor, 1 << 20, false},
	} {
		first, last := f.third(steady, f.value)
		limit := first + math.Max(first*t.trendPct/100, f.floor)
		v = append(v, check{name: f.name + note, judged: f.judged, ok: last <= limit,
			measured: fmt.Sprintf("%s → %s (%+.1f%%)", num(first/f.unit), num(last/f.unit), 100*(last-first)/first),
			allowed:  "≤ " + num(limit/f.unit)})
	}
	return v
}

// minTrendSamples is the fewest steady samples whose thirds make a trend: three to a third.
const minTrendSamples = 9

// troughs returns the lowest value of the first and of the last third of the samples. Heap in use
// doubles and halves with each cycle of the garbage collector (GOGC=100), so its troughs, taken just
// after a collection, follow the live heap, where a leak shows; its means follow the cycle's phase.
func troughs(samples []sample, value func(sample) float64) (first, last float64) {
	k := len(samples) / 3
	first, last = math.Inf(1), math.Inf(1)
	for i := range k {
		first = math.Min(first, value(samples[i]))
		last = math.Min(last, value(samples[len(samples)-1-i]))
	}
	return first, last
}

// trend returns the means of the first and the last third of the samples.
func trend(samples []sample, value func(sample) float64) (first, last float64) {
	k := len(samples) / 3
	for i := range k {
		first += value(samples[i])
		last += value(samples[len(samples)-1-i])
	}
	return first / float64(k), last / float64(k)
}

func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	if v < 10 {
		return fmt.Sprintf("%.2f", v)
	}
	return benchdoc.Thousands(int64(math.Round(v)))
}

func num(v float64) string {
	if v < 100 {
		return fmt.Sprintf("%.1f", v)
	}
	return benchdoc.Thousands(int64(math.Round(v)))
}

func (r *report) markdown() string {
	var b strings.Builder
	o := r.o
	fmt.Fprintf(&b, "Run of %s, %s to %s (load average %s before, %s after).",
		r.begin.UTC().Format("2006-01-02"), r.begin.UTC().Format("15:04"), r.end.UTC().Format("15:04 UTC"), r.loadBefore, r.loadAfter)
	if o.label != "" {
		fmt.Fprintf(&b, " **%s**", o.label)
	}
	fmt.Fprintf(&b, "\nCommand: `%s`.\n\n", commandLine(o.args))
	b.WriteString(describeMachine())

	b.WriteString("\n### Settings\n\n| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| load | %s, the first %s opening the tunnels; steady phase from %s |\n", o.dur, o.ramp, o.ramp+o.tunnelInterval)
	fmt.Fprintf(&b, "| CONNECT tunnels | %s concurrent, each echoing a line every %s ± 50%%, %.0f%% chance of closing and reopening after each echo |\n",
		benchdoc.Thousands(int64(o.tunnels)), o.tunnelInterval, 100*o.churn)
	fmt.Fprintf(&b, "| keep-alive HTTP clients | %d, one connection each, a GET every %s |\n", o.clients, o.reqInterval)
	fmt.Fprintf(&b, "| API writer | one call every %s over %d accounts: add IP, list IPs, create sub-account, edit it, delete it, list sub-accounts, delete IP |\n",
		o.apiInterval, o.accounts)
	var servers []string
	for _, ps := range proxyServers {
		servers = append(servers, fmt.Sprintf("%s (exits %v)", ps.name, ps.exits))
	}
	fmt.Fprintf(&b, "| node | the built exitmesh binary, SQLite store, %s; authentication by Basic password |\n", strings.Join(servers, ", "))
	fmt.Fprintf(&b, "| sampling | the node's /metrics every %s; the baseline (after a warm-up) and the after-load sample each %s after the last client left (the node's idle timeouts are 90 s), once the node is quiet: no tunnels, goroutines and fds still for 5 s |\n", o.sample, o.settle)

	b.WriteString("\n### Load\n\n| | count |\n|---|---:|\n")
	fmt.Fprintf(&b, "| tunnels opened (closed and reopened by churn) | %s (%s) |\n", benchdoc.Thousands(r.tunnelsOpened), benchdoc.Thousands(r.churned))
	fmt.Fprintf(&b, "| echo round trips, each checked | %s |\n", benchdoc.Thousands(r.echoes))
	fmt.Fprintf(&b, "| HTTP requests, each checked: status 200, an exit of its proxy server | %s |\n", benchdoc.Thousands(r.requests))
	fmt.Fprintf(&b, "| client connections those requests used | %s |\n", benchdoc.Thousands(r.clientDials))
	fmt.Fprintf(&b, "| API calls, each answer checked (HTTP attempts) | %s (%s) |\n", benchdoc.Thousands(r.apiCalls), benchdoc.Thousands(r.apiAttempts))

	b.WriteString("\n### Latency\n\nOf the exchanges that succeeded; not judged (the machine's other work shows here first).\n\n")
	b.WriteString("| exchange | count | p50 ms | p99 ms | p99.9 ms | max ms |\n|---|---:|---:|---:|---:|---:|\n")
	for _, x := range r.latencies {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", x.name, benchdoc.Thousands(x.count), ms(x.p50), ms(x.p99), ms(x.p999), ms(x.maximum))
	}

	b.WriteString("\n### Errors\n\n")
	if len(r.classes) == 0 {
		b.WriteString("None.\n")
	} else {
		b.WriteString("| class | count | expected | first |\n|---|---:|---|---|\n")
		for _, c := range r.classes {
			exp := "no"
			if c.reason != "" {
				exp = "yes: " + c.reason
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", cell(c.class), benchdoc.Thousands(int64(c.count)), exp, cell(c.first))
		}
	}
	if len(r.warnings) > 0 {
		fmt.Fprintf(&b, "\nThe node logged %d warnings during the load (not counted as errors); the first:\n\n", len(r.warnings))
		for _, w := range r.warnings[:min(len(r.warnings), maxKeptLines)] {
			fmt.Fprintf(&b, "    %s\n", w)
		}
	}

	b.WriteString("\n### Samples\n\n")
	b.WriteString("t is the time since the load began. From the node's /metrics: goroutines (go_goroutines), fds (process_open_fds), " +
		"RSS (process_resident_memory_bytes), heap in use (go_memstats_heap_inuse_bytes), tunnels open (exitmesh_proxy_tunnels_active), " +
		"and the totals of exitmesh_proxy_requests_total and exitmesh_proxy_tunnels_total. From the harness: the tunnels it holds open, " +
		"and the slowest HTTP request and echo round trip since the previous sample.\n\n")
	b.WriteString("| t | phase | goroutines | fds | RSS MiB | heap in use MiB | tunnels open | harness's tunnels | requests | tunnels | slowest request ms | slowest echo ms |\n")
	b.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.samples {
		t := "—"
		if !r.loadBegin.IsZero() && s.phase != "baseline" {
			t = s.at.Sub(r.loadBegin).Round(time.Second).String()
		}
		slowReq, slowEcho := "—", "—"
		if s.phase == "ramp" || s.phase == "steady" {
			slowReq, slowEcho = ms(s.requestMax), ms(s.echoMax)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %.1f | %.1f | %s | %s | %s | %s | %s | %s |\n", t, s.phase,
			benchdoc.Thousands(int64(s.goroutines)), benchdoc.Thousands(int64(s.fds)), s.rss/(1<<20), s.heapInuse/(1<<20),
			benchdoc.Thousands(int64(s.tunnelsActive)), benchdoc.Thousands(s.harnessOpen), benchdoc.Thousands(int64(s.requestsTotal)), benchdoc.Thousands(int64(s.tunnelsTotal)),
			slowReq, slowEcho)
	}

	b.WriteString("\n### Verdict\n\n| check | measured | allowed | |\n|---|---|---|---|\n")
	for _, c := range r.verdict {
		res := "pass"
		switch {
		case !c.judged:
			res = "—"
		case !c.ok:
			res = "**FAIL**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", c.name, c.measured, c.allowed, res)
	}
	if growth := fdGrowth(r.fdsBefore, r.fdsAfter); len(growth) > 0 {
		b.WriteString("\nDescriptors the node held after the load and not at the baseline, by kind (from /proc/PID/fd):\n\n")
		for _, g := range growth {
			fmt.Fprintf(&b, "- %s\n", g)
		}
	}
	if r.verdict.pass() {
		b.WriteString("\n**PASS**\n")
	} else {
		b.WriteString("\n**FAIL**\n")
	}
	return b.String()
}

// commandLine is the command as a shell would take it back, each argument quoted when it needs to be.
func commandLine(args []string) string {
	cmd := "bench/soak/run"
	for _, a := range args {
		if a == "" || strings.ContainsFunc(a, needsQuotes) {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		cmd += " " + a
	}
	return cmd
}

func needsQuotes(r rune) bool {
	return !strings.ContainsRune("+-./:=@_,%", r) && !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
}

// cell makes text safe inside a Markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", "\\|"), "\n", " ")
}

// describeMachine is a table of the machine, the toolchain and the commit measured.
func describeMachine() string {
	m := benchdoc.Describe("docs/SOAK.md")
	return fmt.Sprintf("| machine | |\n|---|---|\n| CPU | %s, %d cores |\n| memory | %s |\n| kernel | %s |\n| OS | %s |\n| Go | %s |\n| commit | %s |\n",
		m.CPU, m.Cores, m.Memory, m.Kernel, m.OS, m.Go, m.Commit)
}

// results is the section of docs/SOAK.md each run rewrites; the rest is written by hand.
var results = benchdoc.Section{Key: "soak", Writer: "bench/soak/run", Title: "Soak"}
