package web

import (
	"strings"
	"testing"
)

func TestBarChart(t *testing.T) {
	svg := string(barChart("Bytes per day", []string{"2026-11-27", "2026-11-28"}, []series{
		{Name: "us-ca", Values: []int64{1500, 0}},
		{Name: "de<script>", Values: []int64{500, 3000}},
	}))
	for _, want := range []string{
		`role="img"`,
		`aria-labelledby="chart-bytes-per-day-title chart-bytes-per-day-desc"`,
		`<title id="chart-bytes-per-day-title">Bytes per day</title>`,
		"5 KB in total over 2 days; the busiest, 2026-11-28, carried 3 KB.",
		"2026-11-27 us-ca: 1.5 KB",
		"de&lt;script&gt;",
		">11-28<",
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %q:\n%s", want, svg)
		}
	}
	if strings.Contains(svg, "<script>") {
		t.Error("a series name reached the SVG unescaped")
	}
	if got := strings.Count(svg, "<rect"); got != 3+2 { // three non-zero parts, two legend keys
		t.Errorf("%d rects, want 5", got)
	}
	for n, want := range map[int64]int64{0: 0, 1: 1, 7: 10, 13: 20, 420: 500, 5000: 5000, 5001: 10000} {
		if got := niceCeiling(n); got != want {
			t.Errorf("niceCeiling(%d) = %d, want %d", n, got, want)
		}
	}
}
