package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testReport() *report {
	o := options{rounds: 3, dur: time.Second, bulkBytes: 1 << 30, tunnels: 10, accounts: 10, ipsEach: 5}
	ts := []*target{
		{name: "direct"},
		{name: "squid", server: &server{}, peer: true, kinds: []string{kindKeepAlive}},
		{name: "goproxy", server: &server{}, peer: true, kinds: []string{kindKeepAlive}},
		{name: "exitmesh", server: &server{}, kinds: []string{kindKeepAlive, kindIdle}},
		{name: "exitmesh, 10 accounts", server: &server{}, kinds: []string{kindKeepAlive64}},
	}
	r := newReport(o, ts)
	for _, s := range []struct {
		key, target string
		v           []float64
	}{
		{"ka64", "direct", []float64{100, 90, 95}},
		{"ka64", "squid", []float64{30, 50, 40}},
		{"ka64", "goproxy", []float64{45, 44}},
		{"ka64", "exitmesh", []float64{60, 70, 65}},
		{"ka64", "exitmesh, 10 accounts", []float64{64}},
		{pairKey, "exitmesh", []float64{66, 62}},
		{pairKey, "exitmesh, 10 accounts", []float64{64, 63}},
		{"ka64_p99", "squid", []float64{2}},
		{"ka64_p99", "goproxy", []float64{3}},
		{"ka64_p99", "exitmesh", []float64{2.5}},
		{"idle_rss", "exitmesh", []float64{12}},
	} {
		for _, v := range s.v {
			r.add(s.key, ts[indexOf(ts, s.target)], v)
		}
	}
	r.finish()
	return r
}

func indexOf(ts []*target, name string) int {
	for i, t := range ts {
		if t.name == name {
			return i
		}
	}
	panic(name)
}

func TestMedianAndBestPeer(t *testing.T) {
	r := testReport()
	for _, c := range []struct {
		key, target string
		want        float64
	}{
		{"ka64", "direct", 95},
		{"ka64", "goproxy", 44.5},
		{"ka64", "exitmesh", 65},
	} {
		if got, _ := r.value(c.key, c.target); got != c.want {
			t.Errorf("value(%s, %s) = %v, want %v", c.key, c.target, got, c.want)
		}
	}
	for _, c := range []struct {
		key      string
		lower    bool
		wantName string
		want     float64
	}{
		{"ka64", false, "goproxy", 44.5},
		{"ka64_p99", true, "squid", 2},
	} {
		name, v, ok := r.bestPeer(figure{key: c.key, lowerBetter: c.lower})
		if !ok || name != c.wantName || v != c.want {
			t.Errorf("bestPeer(%s) = %s %v %v, want %s %v", c.key, name, v, ok, c.wantName, c.want)
		}
	}
}

func TestGoals(t *testing.T) {
	met := map[string]bool{}
	for _, g := range testReport().goals() {
		if g.known {
			met[g.text[:10]] = g.met
		}
	}
	want := map[string]bool{
		"Keep-alive": true, // 65 ≥ 1.3 × 44.5
		"p99 latenc": true, // 2.5 ≤ goproxy's 3 (goproxy is the best peer by throughput)
		"≤ 16 KiB":   true,
		"Throughput": true, // 63.5 within 5% of 64 (the pair's samples)
	}
	for k, w := range want {
		if got, ok := met[k]; !ok || got != w {
			t.Errorf("goal %q: met %v (known %v), want %v", k, got, ok, w)
		}
	}
	if _, ok := met["CONNECT bu"]; ok {
		t.Error("the bulk goal is judged without a bulk figure")
	}
}

func TestWriteDocKeepsHandWrittenText(t *testing.T) {
	path := filepath.Join(t.TempDir(), "PERFORMANCE.md")
	r := testReport()
	if err := r.writeDoc(path); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	text := strings.Replace(string(b), "## Results", "Intro by hand.\n\n## Results", 1) + "\n## Profiles\n\nBy hand too.\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.writeDoc(path); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	got := string(b)
	for _, want := range []string{"Intro by hand.", "By hand too.", "| Keep-alive, 64 conn.: throughput | req/s | 95 | 40 | 45 | 65 | 64 |"} {
		if !strings.Contains(got, want) {
			t.Errorf("document lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "<!-- bench:results:begin"); n != 1 {
		t.Errorf("%d results sections, want 1", n)
	}
}
