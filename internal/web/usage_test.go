package web

import (
	"reflect"
	"testing"

	"github.com/exitmesh/exitmesh/internal/domain"
)

func TestDaysBetween(t *testing.T) {
	for _, c := range []struct {
		from, to string
		want     int
	}{
		{"2026-02-27", "2026-03-01", 3},
		{"2026-03-01", "2026-03-01", 1},
		{"2026-03-02", "2026-03-01", 0},
		{"2025-01-01", "2025-12-31", 365},
		{"2020-01-01", "2026-01-01", maxUsageDays + 1}, // stops one past the bound: the page refuses it
		{"yesterday", "2026-03-01", 0},
	} {
		if got := daysBetween(c.from, c.to); len(got) != c.want {
			t.Errorf("daysBetween(%s, %s) has %d days, want %d", c.from, c.to, len(got), c.want)
		}
	}
	if got, want := daysBetween("2026-02-28", "2026-03-01"), []string{"2026-02-28", "2026-03-01"}; !reflect.DeepEqual(got, want) {
		t.Errorf("daysBetween = %q, want %q", got, want)
	}
}

func TestStack(t *testing.T) {
	days := []string{"2026-03-01", "2026-03-02"}
	rows := []domain.UsageRow{
		{Day: "2026-03-01", Proxy: "us-ca", UsageCounts: domain.UsageCounts{BytesIn: 10, BytesOut: 90}},
		{Day: "2026-03-01", Proxy: "us-ca", SubAccount: "bot", UsageCounts: domain.UsageCounts{BytesIn: 1, BytesOut: 2}},
		{Day: "2026-03-02", Proxy: "de", UsageCounts: domain.UsageCounts{BytesOut: 5}},
		{Day: "2026-02-28", Proxy: "de", UsageCounts: domain.UsageCounts{BytesOut: 7}}, // outside the days: left out
	}
	got := stack(days, rows, func(u domain.UsageRow) string { return u.Proxy })
	want := []series{{Name: "de", Values: []int64{0, 5}}, {Name: "us-ca", Values: []int64{103, 0}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stack = %+v, want %+v", got, want)
	}
}
