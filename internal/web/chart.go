package web

import (
	"fmt"
	"html/template"
	"math"
	"strings"

	"github.com/exitmesh/exitmesh/internal/config"
)

// series is one stacked part of a bar chart, e.g. one proxy server's bytes on each day.
type series struct {
	Name   string
	Values []int64 // one per label
}

// palette is distinguishable for common colour blindness (Okabe–Ito).
var palette = []string{"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"}

// barChart draws stacked bars, one per label, as inline SVG: drawn on the server, so the page needs no
// script and no chart library, and the figure carries a text description for screen readers. Values
// are bytes.
func barChart(title string, labels []string, parts []series) template.HTML {
	const w, h, left, bottom, top = 720, 240, 64, 28, 12
	totals := make([]int64, len(labels))
	for _, s := range parts {
		for i, v := range s.Values {
			totals[i] += v
		}
	}
	peak := int64(0)
	for _, t := range totals {
		peak = max(peak, t)
	}
	scaleMax := niceCeiling(peak)
	var b strings.Builder
	id := chartID(title)
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-labelledby="%s-title %s-desc" xmlns="http://www.w3.org/2000/svg">`, w, h+40, id, id)
	fmt.Fprintf(&b, `<title id="%s-title">%s</title><desc id="%s-desc">%s</desc>`, id, template.HTMLEscapeString(title), id, template.HTMLEscapeString(describe(labels, totals)))
	plotH := float64(h - bottom - top)
	for i := 0; i <= 4; i++ { // grid lines with their values
		y := float64(top) + plotH*float64(4-i)/4
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#d0d7de"/>`, left, w, y, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`, left-6, y+4, config.Size(scaleMax*int64(i)/4).Human())
	}
	if n := len(labels); n > 0 {
		slot := float64(w-left) / float64(n)
		barW := math.Max(2, slot*0.7)
		for i, label := range labels {
			x := float64(left) + slot*float64(i) + (slot-barW)/2
			y := float64(top) + plotH
			for j, s := range parts {
				if i >= len(s.Values) || s.Values[i] == 0 || scaleMax == 0 {
					continue
				}
				hgt := plotH * float64(s.Values[i]) / float64(scaleMax)
				y -= hgt
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`,
					x, y, barW, hgt, palette[j%len(palette)], template.HTMLEscapeString(label), template.HTMLEscapeString(s.Name), config.Size(s.Values[i]).Human())
			}
			if n <= 16 || i%((n+15)/16) == 0 { // at most 16 labels fit under the bars
				fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, x+barW/2, h-bottom+16, template.HTMLEscapeString(shortLabel(label)))
			}
		}
	}
	for j, s := range parts { // legend
		x := left + 140*(j%5)
		y := h + 8 + 16*(j/5)
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`,
			x, y, palette[j%len(palette)], x+14, y+9, template.HTMLEscapeString(s.Name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // every piece of text above is escaped
}

// chartID makes the chart's element ids from its title ("Bytes per day" → chart-bytes-per-day), so
// that charts with different titles on one page label themselves apart.
func chartID(title string) string {
	b := []byte("chart-")
	for _, c := range []byte(strings.ToLower(title)) {
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
			b = append(b, c)
		case b[len(b)-1] != '-':
			b = append(b, '-')
		}
	}
	return strings.TrimSuffix(string(b), "-")
}

// niceCeiling rounds n up to 1, 2 or 5 times a power of ten, so the grid reads well.
func niceCeiling(n int64) int64 {
	if n <= 0 {
		return 0
	}
	p := int64(1)
	for p*10 <= n {
		p *= 10
	}
	for _, m := range []int64{1, 2, 5, 10} {
		if m*p >= n {
			return m * p
		}
	}
	return 10 * p
}

// shortLabel turns a day 2026-11-28 into 11-28.
func shortLabel(label string) string {
	if len(label) == 10 && label[4] == '-' {
		return label[5:]
	}
	return label
}

func describe(labels []string, totals []int64) string {
	if len(labels) == 0 {
		return "No traffic in this period."
	}
	var sum int64
	busiest := 0
	for i, t := range totals {
		sum += t
		if t > totals[busiest] {
			busiest = i
		}
	}
	return fmt.Sprintf("%s in total over %d days; the busiest, %s, carried %s.", config.Size(sum).Human(), len(labels), labels[busiest], config.Size(totals[busiest]).Human())
}
