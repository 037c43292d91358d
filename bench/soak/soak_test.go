package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseMetricsSumsSeriesByName(t *testing.T) {
	m, err := parseMetrics(strings.NewReader(`# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 4021
exitmesh_proxy_errors_total{proxy="soak-a",reason="auth-required"} 2
exitmesh_proxy_errors_total{proxy="soak-b",reason="bad-gateway"} 1
process_resident_memory_bytes 9.8304e+07
`))
	if err != nil {
		t.Fatal(err)
	}
	if m["go_goroutines"] != 4021 || m["exitmesh_proxy_errors_total"] != 3 || m["process_resident_memory_bytes"] != 98304000 {
		t.Errorf("parsed %v", m)
	}
	if s := m.series("exitmesh_proxy_errors_total"); len(s) != 2 || s[`exitmesh_proxy_errors_total{proxy="soak-b",reason="bad-gateway"}`] != 1 {
		t.Errorf("series: %v", s)
	}
	if _, err := parseMetrics(strings.NewReader("go_goroutines many\n")); err == nil {
		t.Error("a value that is not a number was accepted")
	}
}

// steadyRun is a report whose steady samples have goroutines rising by step per sample.
func steadyRun(step float64, unexpected int, after float64) *report {
	o, _ := parseFlags(nil)
	r := &report{o: o, tunnelsOpened: 1, echoes: 1, requests: 1, apiCalls: 1, unexpected: unexpected}
	r.add(sample{goroutines: 20, fds: 20, heapInuse: 8 << 20, rss: 30 << 20}, "baseline")
	for i := range 12 {
		r.add(sample{goroutines: 6000 + step*float64(i), fds: 4100, heapInuse: 100 << 20, rss: 200 << 20}, "steady")
	}
	r.add(sample{goroutines: after, fds: 24, heapInuse: 60 << 20, rss: 210 << 20}, "after")
	r.verdict = r.judge()
	return r
}

func TestVerdict(t *testing.T) {
	if v := steadyRun(10, 0, 22).verdict; !v.pass() {
		t.Errorf("a flat run failed: %v", v.failures())
	}
	// 6,000 goroutines growing by 100 per sample: the last third's mean is 800 above the first's.
	v := steadyRun(100, 0, 22).verdict
	if v.pass() || !strings.Contains(strings.Join(v.failures(), ";"), "goroutines, steady phase") {
		t.Errorf("a growing run: failures %v", v.failures())
	}
	if v := steadyRun(0, 0, 60).verdict; v.pass() {
		t.Error("goroutines left 40 above the baseline after the load passed")
	}
	if v := steadyRun(0, 1, 20).verdict; v.pass() {
		t.Error("an unexpected error passed")
	}
}

// heapRun is a run whose steady heap in use is heap(i) MiB at sample i of n.
func heapRun(n int, heap func(i int) float64) verdict {
	o, _ := parseFlags(nil)
	r := &report{o: o, tunnelsOpened: 1, echoes: 1, requests: 1, apiCalls: 1}
	r.add(sample{goroutines: 20, fds: 20, heapInuse: 8 << 20}, "baseline")
	for i := range n {
		r.add(sample{goroutines: 400, fds: 400, heapInuse: heap(i) * (1 << 20)}, "steady")
	}
	r.add(sample{goroutines: 20, fds: 20, heapInuse: 20 << 20}, "after")
	return r.judge()
}

// TestVerdictOnHeap: the collector's sawtooth (heap in use doubling and halving) passes whatever
// phase the samples catch; troughs that rise fail; too few samples are shown but not judged.
func TestVerdictOnHeap(t *testing.T) {
	sawtooth := func(i int) float64 { return []float64{24, 43, 30, 24, 43, 43, 24, 43, 43, 43, 24, 43}[i] }
	if v := heapRun(12, sawtooth); !v.pass() {
		t.Errorf("a sawtooth between 24 and 43 MiB failed: %v", v.failures())
	}
	rising := func(i int) float64 { return 24 + 4*float64(i) + float64(i%2)*20 }
	if v := heapRun(12, rising); v.pass() || !strings.Contains(strings.Join(v.failures(), ";"), "heap in use") {
		t.Errorf("troughs rising by 4 MiB a sample: failures %v", v.failures())
	}
	if v := heapRun(5, rising); !v.pass() {
		t.Errorf("5 steady samples were judged: %v", v.failures())
	}
}

func TestTallyExpectedAndUnexpected(t *testing.T) {
	expected["test: tolerated"] = "a documented reason"
	defer delete(expected, "test: tolerated")
	errs := newTally()
	errs.add("http: status 502", "first\nsecond line")
	errs.add("http: status 502", "later")
	errs.addN("test: tolerated", "x", 5)
	if n := errs.unexpected(); n != 2 {
		t.Errorf("unexpected = %d, want 2", n)
	}
	c := errs.classes()
	if len(c) != 2 || c[0].class != "http: status 502" || c[0].first != "first" || c[1].reason == "" {
		t.Errorf("classes: %+v", c)
	}
}

func TestProcAddrAndFdGrowth(t *testing.T) {
	if got := procAddr("0100007F:1F90"); got != netip.MustParseAddrPort("127.0.0.1:8080") {
		t.Errorf("procAddr = %v", got)
	}
	g := fdGrowth(map[string]int{"pipe": 2, "tcp LISTEN api": 1}, map[string]int{"pipe": 2, "tcp LISTEN api": 1, "tcp CLOSE_WAIT 127.0.0.2 → origin http": 4})
	if len(g) != 1 || g[0] != "+4 tcp CLOSE_WAIT 127.0.0.2 → origin http (0 → 4)" {
		t.Errorf("fdGrowth = %q", g)
	}
}

func TestLatencyQuantiles(t *testing.T) {
	var l latency
	for range 990 {
		l.observe(time.Millisecond)
	}
	for range 10 {
		l.observe(2 * time.Second)
	}
	n, p50, p99, _, maximum := l.summary()
	if n != 1000 || p50 < time.Millisecond || p50 > 1200*time.Microsecond || p99 > 1200*time.Microsecond || maximum != 2*time.Second {
		t.Errorf("count %d, p50 %v, p99 %v, max %v", n, p50, p99, maximum)
	}
	if d := l.takeIntervalMax(); d != 2*time.Second || l.takeIntervalMax() != 0 {
		t.Errorf("interval max %v, then not reset", d)
	}
}

func TestCommandLineQuotes(t *testing.T) {
	got := commandLine([]string{"-d", "1m", "--label", "machine shared with other agents' test suites", "-doc", ""})
	want := `bench/soak/run -d 1m --label 'machine shared with other agents'\'' test suites' -doc ''`
	if got != want {
		t.Errorf("commandLine = %s\nwant          %s", got, want)
	}
}
