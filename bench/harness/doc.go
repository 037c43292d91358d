package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/bench/benchdoc"
)

// goal is one of issue 8's targets, judged from the report.
type goal struct {
	text     string
	measured string
	met      bool
	known    bool // false when a figure it needs is missing
}

func (r *report) goals() []goal {
	large := ""
	for _, t := range r.targets {
		if t.does(kindKeepAlive64) {
			large = t.name
		}
	}
	var gs []goal
	f := func(key string) figure {
		for _, f := range r.figures {
			if f.key == key {
				return f
			}
		}
		panic(key)
	}
	em := func(key string) (float64, bool) { return r.value(key, "exitmesh") }

	g := goal{text: "Keep-alive throughput at 64 connections ≥ 1.3× the best peer"}
	if v, ok := em("ka64"); ok {
		if name, best, ok := r.bestPeer(f("ka64")); ok {
			g.known, g.met = true, v >= 1.3*best
			g.measured = fmt.Sprintf("%s req/s = %s %s (%s req/s)", benchdoc.Thousands(int64(v)), ratio(v, best), name, benchdoc.Thousands(int64(best)))
		}
	}
	gs = append(gs, g)

	// The best peer is the one of the throughput target: the fastest at 64 connections. The lowest p99
	// of any peer is shown beside it (a peer that closes every connection, or serves a fraction of the
	// requests, may show a lower one).
	g = goal{text: "p99 latency at 64 connections ≤ the best peer's (the best peer by throughput)"}
	if v, ok := em("ka64_p99"); ok {
		if name, _, ok := r.bestPeer(f("ka64")); ok {
			if p99, ok := r.value("ka64_p99", name); ok {
				g.known, g.met = true, v <= p99
				g.measured = fmt.Sprintf("%.2f ms vs %.2f ms (%s)", v, p99, name)
				if low, lowest, ok := r.bestPeer(f("ka64_p99")); ok && low != name {
					g.measured += fmt.Sprintf("; lowest of any peer %.2f ms (%s)", lowest, low)
				}
			}
		}
	}
	gs = append(gs, g)

	g = goal{text: "CONNECT bulk throughput ≥ 90% of direct"}
	if v, ok := em("bulk"); ok {
		if d, ok := r.value("bulk", "direct"); ok {
			g.known, g.met = true, v >= 0.9*d
			g.measured = fmt.Sprintf("%s MiB/s = %.0f%% of %s MiB/s", benchdoc.Thousands(int64(v)), 100*v/d, benchdoc.Thousands(int64(d)))
		}
	}
	gs = append(gs, g)

	g = goal{text: "≤ 16 KiB of RSS per idle CONNECT tunnel"}
	if v, ok := em("idle_rss"); ok {
		g.known, g.met = true, v <= 16
		g.measured = fmt.Sprintf("%.1f KiB at %d tunnels", v, r.o.tunnels)
	}
	gs = append(gs, g)

	g = goal{text: fmt.Sprintf("Throughput with %s accounts and %s authorized IPs within 5%% of one account's",
		benchdoc.Thousands(int64(r.o.accounts)), benchdoc.Thousands(int64(r.o.accounts*r.o.ipsEach)))}
	if v, ok := em(pairKey); ok && large != "" {
		if l, ok := r.value(pairKey, large); ok {
			g.known, g.met = true, l >= 0.95*v
			g.measured = fmt.Sprintf("%s vs %s req/s (%+.1f%%)", benchdoc.Thousands(int64(l)), benchdoc.Thousands(int64(v)), 100*(l/v-1))
			lc, ok1 := r.value(pairKey+"_cpu", large)
			vc, ok2 := r.value(pairKey+"_cpu", "exitmesh")
			if ok1 && ok2 {
				g.measured += fmt.Sprintf("; proxy CPU per request %.1f vs %.1f µs (%+.1f%%)", lc, vc, 100*(lc/vc-1))
			}
		}
	}
	return append(gs, g)
}

func (r *report) targetsTable(b *strings.Builder) {
	b.WriteString("| target | measured | met |\n|---|---|---|\n")
	for _, g := range r.goals() {
		met := "not measured"
		if g.known {
			met = map[bool]string{true: "yes", false: "**no**"}[g.met]
		}
		fmt.Fprintf(b, "| %s | %s | %s |\n", g.text, g.measured, met)
	}
}

// machine describes where the run happened, with the versions of the peers.
type machine struct {
	benchdoc.Machine
	wrk, tinyproxy, squid, goproxy string
}

func describeMachine() machine {
	m := machine{Machine: benchdoc.Describe("docs/PERFORMANCE.md")}
	m.wrk, _, _ = strings.Cut(benchdoc.FirstLine(benchdoc.Output("wrk", "-v")), " Copyright")
	m.tinyproxy = benchdoc.FirstLine(benchdoc.Output("tinyproxy", "-v"))
	m.squid = benchdoc.FirstLine(benchdoc.Output("squid", "-v"))
	if b, err := os.ReadFile("bench/goproxy/go.mod"); err == nil {
		for line := range strings.Lines(string(b)) {
			f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
			if len(f) >= 2 && f[0] == "github.com/elazarl/goproxy" {
				m.goproxy = "github.com/elazarl/goproxy " + f[1]
			}
		}
	}
	return m
}

// background is the CPU use sampled while the harness's servers are idle — before the first
// measurement and between measurements — which is other work on the machine.
var background cpuSampler

type cpuSampler struct {
	busy, total float64 // clock ticks, all CPUs
}

// sample sleeps for d and adds the CPU time spent meanwhile.
func (c *cpuSampler) sample(d time.Duration) {
	b0, t0 := cpuTicks()
	time.Sleep(d)
	b1, t1 := cpuTicks()
	if t1 > t0 {
		c.busy += b1 - b0
		c.total += t1 - t0
	}
}

// share returns the busy share of the sampled time.
func (c *cpuSampler) share() float64 {
	if c.total == 0 {
		return 0
	}
	return c.busy / c.total
}

// cpuTicks returns the busy and total clock ticks of all CPUs so far.
func cpuTicks() (busy, total float64) {
	c := benchdoc.ReadCPUTicks()
	return c.Busy, c.Total
}

func (m machine) markdown() string {
	return fmt.Sprintf(`| machine | |
|---|---|
| CPU | %s, %d cores |
| memory | %s |
| system | %s, Linux %s |
| toolchain | %s |
| load generator | %s |
| peers | %s; %s; %s |
| exitmesh | %s |
`, m.CPU, m.Cores, m.Memory, m.OS, m.Kernel, m.Go, m.wrk, m.tinyproxy, m.squid, m.goproxy, m.Commit)
}

// results is the generated part of docs/PERFORMANCE.md; the rest is written by hand.
var results = benchdoc.Section{Key: "bench", Writer: "bench/run", Title: "Performance"}

// writeDoc replaces the results section of the document at path, or creates the document.
func (r *report) writeDoc(path string) error { return results.Write(path, r.markdown()) }
