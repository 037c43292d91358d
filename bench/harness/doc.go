package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
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
			g.measured = fmt.Sprintf("%s req/s = %s %s (%s req/s)", thousands(int64(v)), ratio(v, best), name, thousands(int64(best)))
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
			g.measured = fmt.Sprintf("%s MiB/s = %.0f%% of %s MiB/s", thousands(int64(v)), 100*v/d, thousands(int64(d)))
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
		thousands(int64(r.o.accounts)), thousands(int64(r.o.accounts*r.o.ipsEach)))}
	if v, ok := em(pairKey); ok && large != "" {
		if l, ok := r.value(pairKey, large); ok {
			g.known, g.met = true, l >= 0.95*v
			g.measured = fmt.Sprintf("%s vs %s req/s (%+.1f%%)", thousands(int64(l)), thousands(int64(v)), 100*(l/v-1))
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

// machine describes where the run happened.
type machine struct {
	cpu, cores, memory, kernel, os, goVersion, wrk, tinyproxy, squid, goproxy, commit string
}

func describeMachine() machine {
	m := machine{goVersion: runtime.Version(), cores: fmt.Sprint(runtime.NumCPU())}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(strings.TrimPrefix(firstLine(string(b)), "MemTotal:"), "%d", &kb)
		m.memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				m.os = strings.Trim(strings.TrimSpace(v), `"`)
			}
		}
	}
	m.wrk, _, _ = strings.Cut(firstLine(output("wrk", "-v")), " Copyright")
	m.tinyproxy = firstLine(output("tinyproxy", "-v"))
	m.squid = firstLine(output("squid", "-v"))
	if b, err := os.ReadFile("bench/goproxy/go.mod"); err == nil {
		for line := range strings.Lines(string(b)) {
			f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
			if len(f) >= 2 && f[0] == "github.com/elazarl/goproxy" {
				m.goproxy = "github.com/elazarl/goproxy " + f[1]
			}
		}
	}
	m.commit = strings.TrimSpace(output("git", "rev-parse", "--short", "HEAD"))
	// The results document is rewritten by the run itself; any other change makes the build dirty.
	if strings.TrimSpace(output("git", "status", "--porcelain", "--", ".", ":!docs/PERFORMANCE.md")) != "" {
		m.commit += " (with uncommitted changes)"
	}
	return m
}

func output(name string, args ...string) string {
	out, _ := exec.Command(name, args...).CombinedOutput()
	return string(out)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(line)
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

// cpuTicks returns the busy and total clock ticks of all CPUs so far, from /proc/stat.
func cpuTicks() (busy, total float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(firstLine(string(b))) // cpu user nice system idle iowait irq softirq steal …
	if len(f) < 9 {
		return 0, 0
	}
	for i, v := range f[1:9] { // guest time is already counted in user
		n, _ := strconv.ParseFloat(v, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:3], " ")
}

func (m machine) markdown() string {
	return fmt.Sprintf(`| machine | |
|---|---|
| CPU | %s, %s cores |
| memory | %s |
| system | %s, Linux %s |
| toolchain | %s |
| load generator | %s |
| peers | %s; %s; %s |
| exitmesh | %s |
`, m.cpu, m.cores, m.memory, m.os, m.kernel, m.goVersion, m.wrk, m.tinyproxy, m.squid, m.goproxy, m.commit)
}

// The generated part of docs/PERFORMANCE.md lies between these markers; the rest is written by hand.
const (
	beginMarker = "<!-- bench:results:begin (written by bench/run; edits here are lost) -->"
	endMarker   = "<!-- bench:results:end -->"
)

// writeDoc replaces the results section of the document at path, or creates the document.
func (r *report) writeDoc(path string) error {
	section := beginMarker + "\n" + r.markdown() + endMarker
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	text := string(old)
	i, j := strings.Index(text, beginMarker), strings.Index(text, endMarker)
	if i < 0 || j < i {
		text = "# Performance\n\n## Results\n\n" + section + "\n"
	} else {
		text = text[:i] + section + text[j+len(endMarker):]
	}
	return os.WriteFile(path, []byte(text), 0o644)
}
