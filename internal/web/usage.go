package web

import (
	"cmp"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/internal/account"
	"github.com/exitmesh/exitmesh/internal/domain"
)

// maxUsageDays bounds the period of the usage page: a year of daily bars still reads.
const maxUsageDays = 366

// usagePage shows the account's traffic from one day to another (the last 30 days, UTC, unless the
// form says otherwise): per day and proxy server, per day and sub-account, as charts and as a table,
// and the month's bandwidth against the plan's.
func (s *Server) usagePage(w http.ResponseWriter, r *http.Request, v *visitor) {
	p := page{Title: "Usage", Nav: "usage"}
	today := s.cfg.Now().UTC()
	q := r.URL.Query()
	from := cmp.Or(strings.TrimSpace(q.Get("from")), today.AddDate(0, 0, -29).Format(time.DateOnly))
	to := cmp.Or(strings.TrimSpace(q.Get("to")), today.Format(time.DateOnly))
	var report account.UsageReport
	c, status := s.read(r, v, &p, http.StatusOK)
	if c != nil {
		var err error
		report, err = s.cfg.Accounts.Usage(r.Context(), c, "", from, to)
		status = s.shown(&p, status, err)
	}
	data := struct {
		From, To        string
		Bandwidth       account.Bandwidth
		Rows            []domain.UsageRow
		Total           domain.UsageCounts
		ByProxy, BySub  template.HTML
		HasSubs, Charts bool
	}{From: from, To: to, Bandwidth: report.Bandwidth, Rows: report.Rows}
	days := daysBetween(from, to)
	if status == http.StatusOK && len(days) > maxUsageDays {
		p.Error, status = "Choose a period of at most 366 days.", http.StatusBadRequest
	}
	if status == http.StatusOK {
		data.Charts = true
		data.ByProxy = barChart("Bytes per day and proxy server", days, stack(days, report.Rows, func(u domain.UsageRow) string { return u.Proxy }))
		data.HasSubs = slices.ContainsFunc(report.Rows, func(u domain.UsageRow) bool { return u.SubAccount != "" })
		data.BySub = barChart("Bytes per day and sub-account", days, stack(days, report.Rows, func(u domain.UsageRow) string {
			return cmp.Or(u.SubAccount, v.account.Username+" (account)")
		}))
		for _, u := range report.Rows {
			data.Total.Add(u.UsageCounts)
		}
	}
	p.Data = data
	s.render(w, status, "usage", v, p)
}

// daysBetween lists the dates from first to last, inclusive; nil if either is not a date. It stops
// one past maxUsageDays.
func daysBetween(first, last string) []string {
	d, err1 := time.Parse(time.DateOnly, first)
	end, err2 := time.Parse(time.DateOnly, last)
	if err1 != nil || err2 != nil {
		return nil
	}
	var days []string
	for ; !d.After(end) && len(days) <= maxUsageDays; d = d.AddDate(0, 0, 1) {
		days = append(days, d.Format(time.DateOnly))
	}
	return days
}

// stack sums the bytes of rows per day and per group (a proxy server, a sub-account): one series
// per group, in name order, with a value for each of days.
func stack(days []string, rows []domain.UsageRow, group func(domain.UsageRow) string) []series {
	index := make(map[string]int, len(days))
	for i, d := range days {
		index[d] = i
	}
	values := map[string][]int64{}
	for _, u := range rows {
		i, ok := index[u.Day]
		if !ok {
			continue
		}
		name := group(u)
		if values[name] == nil {
			values[name] = make([]int64, len(days))
		}
		values[name][i] += u.BytesIn + u.BytesOut // what the plan counts
	}
	out := make([]series, 0, len(values))
	for name, vs := range values {
		out = append(out, series{Name: name, Values: vs})
	}
	slices.SortFunc(out, func(a, b series) int { return strings.Compare(a.Name, b.Name) })
	return out
}
