package web

import (
	"html/template"
	"net/http"
	"slices"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

const (
	opsUsageDays    = 30  // the default period, ending today (UTC)
	opsUsageMaxDays = 366 // the longest period one page draws
)

// opsUsageDay is one row of the network usage table: bytes through each proxy server on a day.
type opsUsageDay struct {
	Day   string
	Bytes []int64 // in the order of the page's proxy servers
	Total int64
}

// opsUsagePage charts the bytes (both ways) through each proxy server per day for the whole
// network, the last 30 days by default, with the same figures as a table.
func (s *Server) opsUsagePage(w http.ResponseWriter, r *http.Request, v *visitor) {
	p := page{Title: "Network usage", Nav: "ops-usage"}
	status := http.StatusOK
	today := time.Now().UTC().Truncate(24 * time.Hour)
	from, to := today.AddDate(0, 0, 1-opsUsageDays), today
	var err error
	if q := r.URL.Query().Get("from"); q != "" {
		from, err = time.Parse(time.DateOnly, q)
	}
	if q := r.URL.Query().Get("to"); q != "" && err == nil {
		to, err = time.Parse(time.DateOnly, q)
	}
	switch {
	case err != nil:
		p.Error, status = "Dates are YYYY-MM-DD, e.g. "+today.Format(time.DateOnly)+".", http.StatusBadRequest
	case to.Before(from):
		p.Error, status = "The period ends before it starts.", http.StatusBadRequest
	case to.Sub(from) >= opsUsageMaxDays*24*time.Hour:
		p.Error, status = "Choose a period of at most 366 days.", http.StatusBadRequest
	}
	if p.Error != "" {
		from, to = today.AddDate(0, 0, 1-opsUsageDays), today
	}
	rows, err := s.cfg.Operator.Usage(r.Context(), domain.UsageFilter{From: from.Format(time.DateOnly), To: to.Format(time.DateOnly)})
	if err != nil {
		s.opsPageFailed(w, r, v, err)
		return
	}
	var days []string
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		days = append(days, d.Format(time.DateOnly))
	}
	var proxies []string
	bytes := map[string]map[string]int64{} // proxy → day → bytes
	for _, u := range rows {
		if bytes[u.Proxy] == nil {
			bytes[u.Proxy] = map[string]int64{}
			proxies = append(proxies, u.Proxy)
		}
		bytes[u.Proxy][u.Day] += u.BytesIn + u.BytesOut
	}
	slices.Sort(proxies)
	parts := make([]series, len(proxies))
	totals := opsUsageDay{Day: "Total", Bytes: make([]int64, len(proxies))}
	table := make([]opsUsageDay, len(days))
	for i, day := range days {
		table[i] = opsUsageDay{Day: day, Bytes: make([]int64, len(proxies))}
	}
	for j, proxy := range proxies {
		parts[j] = series{Name: proxy, Values: make([]int64, len(days))}
		for i, day := range days {
			n := bytes[proxy][day]
			parts[j].Values[i] = n
			table[i].Bytes[j], table[i].Total = n, table[i].Total+n
			totals.Bytes[j] += n
			totals.Total += n
		}
	}
	p.Data = struct {
		From, To string
		Chart    template.HTML
		Proxies  []string
		Days     []opsUsageDay
		Totals   opsUsageDay
	}{from.Format(time.DateOnly), to.Format(time.DateOnly),
		barChart("Bytes per day per proxy server, "+days[0]+" to "+days[len(days)-1]+" (UTC)", days, parts),
		proxies, table, totals}
	s.render(w, status, "ops_usage", v, p)
}
