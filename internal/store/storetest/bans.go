package storetest

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

func testBans(t *testing.T, s domain.Store) {
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Second)
	v := version(t, s)
	must(t, s.PutBan(ctx, domain.Ban{IP: ip("192.0.2.1"), Until: now.Add(15 * time.Minute), Reason: "auth-failure"}))
	must(t, s.PutBan(ctx, domain.Ban{IP: ip("::ffff:192.0.2.2"), Until: now.Add(5 * time.Minute), Reason: "not-found"}))
	must(t, s.PutBan(ctx, domain.Ban{IP: ip("192.0.2.1"), Until: now.Add(time.Minute), Reason: "not-found"})) // shorter: ignored
	must(t, s.PutBan(ctx, domain.Ban{IP: ip("192.0.2.2"), Until: now.Add(10 * time.Minute), Reason: "auth-failure"}))
	must(t, s.PutBan(ctx, domain.Ban{IP: ip("2001:db8::9"), Until: now.Add(-time.Minute), Reason: "auth-failure"})) // over
	if got := version(t, s); got != v {
		t.Errorf("bans moved the version %d → %d", v, got)
	}
	got, err := s.ListBans(ctx)
	must(t, err)
	want := []domain.Ban{
		{IP: ip("192.0.2.2"), Until: now.Add(10 * time.Minute), Reason: "auth-failure"},
		{IP: ip("192.0.2.1"), Until: now.Add(15 * time.Minute), Reason: "auth-failure"},
	}
	if len(got) != len(want) {
		t.Fatalf("ListBans = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].IP != want[i].IP || !got[i].Until.Equal(want[i].Until) || got[i].Reason != want[i].Reason {
			t.Errorf("ListBans[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	if err := s.PutBan(ctx, domain.Ban{Until: now.Add(time.Minute)}); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("PutBan without an IP: %v, want EINVALID", err)
	}
}

// testLiftBan: a lifted ban leaves the list at once and stays lifted against late writes of bans
// decided before the lift, while a ban decided after it is in force again.
func testLiftBan(t *testing.T, s domain.Store) {
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	a, b := ip("192.0.2.1"), ip("192.0.2.2")
	must(t, s.PutBan(ctx, domain.Ban{IP: a, Until: now.Add(15 * time.Minute), Reason: "auth-failure", Since: now.Add(-time.Second)}))
	must(t, s.PutBan(ctx, domain.Ban{IP: b, Until: now.Add(15 * time.Minute), Reason: "not-found"}))
	listed := func() map[netip.Addr]domain.Ban {
		t.Helper()
		got, err := s.ListBans(ctx)
		must(t, err)
		m := make(map[netip.Addr]domain.Ban)
		for _, b := range got {
			m[b.IP] = b
		}
		return m
	}
	if got := listed()[a].Since; !got.Equal(now.Add(-time.Second)) {
		t.Errorf("ListBans Since = %v, want %v", got, now.Add(-time.Second))
	}
	if got := listed()[b].Since; got.IsZero() {
		t.Error("a ban put without Since lists no Since, want the time it was put")
	}

	v := version(t, s)
	must(t, s.LiftBan(ctx, ip("::ffff:192.0.2.1"))) // any form of the address
	if got := version(t, s); got != v {
		t.Errorf("LiftBan moved the version %d → %d", v, got)
	}
	if m := listed(); len(m) != 1 || m[b].IP != b {
		t.Errorf("ListBans after lifting %s = %v, want only %s", a, m, b)
	}
	for _, tt := range []struct {
		ip   netip.Addr
		code string
	}{{a, domain.ENOTFOUND}, {ip("198.51.100.1"), domain.ENOTFOUND}, {netip.Addr{}, domain.EINVALID}} {
		if err := s.LiftBan(ctx, tt.ip); domain.ErrorCode(err) != tt.code {
			t.Errorf("LiftBan(%v) = %v, want %s", tt.ip, err, tt.code)
		}
	}

	// A node writes late a ban it decided before the lift: it stays lifted, however long it is.
	must(t, s.PutBan(ctx, domain.Ban{IP: a, Until: now.Add(time.Hour), Reason: "auth-failure", Since: now.Add(-time.Minute)}))
	if _, ok := listed()[a]; ok {
		t.Errorf("a ban decided before the lift came back: %v", listed()[a])
	}
	// A ban decided after the lift is in force, with its own end even if sooner.
	must(t, s.PutBan(ctx, domain.Ban{IP: a, Until: now.Add(5 * time.Minute), Reason: "not-found", Since: time.Now().Add(time.Second)}))
	if got := listed()[a]; !got.Until.Equal(now.Add(5*time.Minute).Truncate(time.Second)) || got.Reason != "not-found" {
		t.Errorf("ban after the lift = %+v, want until %v, not-found", got, now.Add(5*time.Minute))
	}
	must(t, s.LiftBan(ctx, a))
	must(t, s.LiftBan(ctx, b))
	if m := listed(); len(m) != 0 {
		t.Errorf("ListBans after lifting all = %v", m)
	}
}

// testBansPage: pages of the bans in force follow the IPs' text byte by byte, chain without gap or
// repeat through Next, and a prefix selects the IPs whose text starts with it.
func testBansPage(t *testing.T, s domain.Store) {
	ctx := t.Context()
	page, err := s.ListBansPage(ctx, domain.BanQuery{})
	must(t, err)
	if page.Bans == nil || len(page.Bans) != 0 || page.Next != "" {
		t.Fatalf("ListBansPage on an empty store = %#v, want an empty, non-nil list", page)
	}
	now := time.Now().UTC().Truncate(time.Second)
	since := now.Add(-time.Second).Truncate(time.Millisecond)
	// In force, put in neither order: the page order is the text's, not the end's nor the number's.
	inForce := []string{"203.0.113.7", "192.0.2.2", "2001:db8::a", "192.0.2.10", "198.51.100.1", "192.0.2.1",
		"2001:db8::1", "203.0.113.70", "192.0.2.11"}
	for i, a := range inForce {
		must(t, s.PutBan(ctx, domain.Ban{IP: ip(a), Until: now.Add(time.Duration(len(inForce)-i) * time.Minute),
			Reason: "auth-failure", Since: since}))
	}
	must(t, s.PutBan(ctx, domain.Ban{IP: ip("192.0.2.12"), Until: now.Add(-time.Minute), Reason: "auth-failure"})) // over
	must(t, s.PutBan(ctx, domain.Ban{IP: ip("203.0.113.8"), Until: now.Add(time.Hour), Reason: "not-found"}))
	must(t, s.LiftBan(ctx, ip("203.0.113.8")))

	// list follows Next from q to the last page, checking each page's size, and returns the IPs.
	list := func(q domain.BanQuery) []string {
		t.Helper()
		var got []string
		for pages := 0; ; pages++ {
			page, err := s.ListBansPage(ctx, q)
			must(t, err)
			if pages > len(inForce) {
				t.Fatalf("ListBansPage(%+v): still a next page after %d pages", q, pages)
			}
			if q.Limit > 0 && (len(page.Bans) > q.Limit || page.Next != "" && len(page.Bans) != q.Limit) {
				t.Errorf("ListBansPage(%+v) = %d bans, next %q: want a full page before a next one", q, len(page.Bans), page.Next)
			}
			for _, b := range page.Bans {
				got = append(got, b.IP.String())
			}
			if page.Next == "" {
				return got
			}
			if len(page.Bans) == 0 || page.Next != page.Bans[len(page.Bans)-1].IP.String() {
				t.Fatalf("ListBansPage(%+v): next %q, want the page's last IP", q, page.Next)
			}
			q.After = page.Next
		}
	}
	all := []string{"192.0.2.1", "192.0.2.10", "192.0.2.11", "192.0.2.2", "198.51.100.1", "2001:db8::1", "2001:db8::a",
		"203.0.113.7", "203.0.113.70"}
	for _, tt := range []struct {
		q    domain.BanQuery
		want []string
	}{
		{domain.BanQuery{}, all},
		{domain.BanQuery{Limit: 1}, all},
		{domain.BanQuery{Limit: 2}, all},
		{domain.BanQuery{Limit: 4}, all},
		{domain.BanQuery{Limit: len(all)}, all},
		{domain.BanQuery{Prefix: "192.0.2.1", Limit: 2}, []string{"192.0.2.1", "192.0.2.10", "192.0.2.11"}},
		{domain.BanQuery{Prefix: "192.0.2."}, []string{"192.0.2.1", "192.0.2.10", "192.0.2.11", "192.0.2.2"}},
		{domain.BanQuery{Prefix: "203.0.113.", Limit: 1}, []string{"203.0.113.7", "203.0.113.70"}}, // not the lifted .8
		{domain.BanQuery{Prefix: "2001:DB8:"}, []string{"2001:db8::1", "2001:db8::a"}},             // any case
		{domain.BanQuery{Prefix: "2"}, []string{"2001:db8::1", "2001:db8::a", "203.0.113.7", "203.0.113.70"}},
		{domain.BanQuery{Prefix: "192.0.2.12"}, nil}, // over
		{domain.BanQuery{Prefix: "10."}, nil},
		{domain.BanQuery{After: "192.0.2.11"}, []string{"192.0.2.2", "198.51.100.1", "2001:db8::1", "2001:db8::a", "203.0.113.7", "203.0.113.70"}},
		{domain.BanQuery{After: "::ffff:192.0.2.11", Limit: 3}, []string{"192.0.2.2", "198.51.100.1", "2001:db8::1", "2001:db8::a", "203.0.113.7", "203.0.113.70"}},
		{domain.BanQuery{After: "2001:DB8::1"}, []string{"2001:db8::a", "203.0.113.7", "203.0.113.70"}},
		{domain.BanQuery{After: "192.0.2.100", Prefix: "192.0.2.1"}, []string{"192.0.2.11"}}, // after an IP not banned
		{domain.BanQuery{After: "203.0.113.70"}, nil},
	} {
		if got := list(tt.q); !slices.Equal(got, tt.want) {
			t.Errorf("pages of ListBansPage(%+v) = %v, want %v", tt.q, got, tt.want)
		}
	}

	// A page carries each ban whole.
	page, err = s.ListBansPage(ctx, domain.BanQuery{Prefix: "198."})
	must(t, err)
	want := domain.Ban{IP: ip("198.51.100.1"), Until: now.Add(5 * time.Minute), Reason: "auth-failure", Since: since}
	if len(page.Bans) != 1 || page.Next != "" || page.Bans[0].IP != want.IP || !page.Bans[0].Until.Equal(want.Until) ||
		page.Bans[0].Reason != want.Reason || !page.Bans[0].Since.Equal(want.Since) {
		t.Errorf("ListBansPage(198.) = %+v next %q, want [%+v]", page.Bans, page.Next, want)
	}

	runErrCases(t, s, []errCase{
		{"prefix too long", func(ctx context.Context, s domain.Store) error {
			_, err := s.ListBansPage(ctx, domain.BanQuery{Prefix: strings.Repeat("1", domain.MaxBanPrefix+1)})
			return err
		}, domain.EINVALID, "at most 64 characters"},
		{"prefix not of an IP", func(ctx context.Context, s domain.Store) error {
			_, err := s.ListBansPage(ctx, domain.BanQuery{Prefix: "192.0.2.%"})
			return err
		}, domain.EINVALID, "only digits, the letters a to f, dots and colons"},
		{"after not an IP", func(ctx context.Context, s domain.Store) error {
			_, err := s.ListBansPage(ctx, domain.BanQuery{After: "192.0.2."})
			return err
		}, domain.EINVALID, "starts after an IP address"},
	})
}

// testBansPageMax: a limit of 0, or above MaxBanPage, is MaxBanPage.
func testBansPageMax(t *testing.T, s domain.Store) {
	ctx := t.Context()
	until := time.Now().Add(time.Hour)
	var want []string
	for i := range domain.MaxBanPage + 1 {
		a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		must(t, s.PutBan(ctx, domain.Ban{IP: a, Until: until, Reason: "auth-failure"}))
		want = append(want, a.String())
	}
	slices.Sort(want) // Go compares strings byte by byte, as the store orders them
	for _, limit := range []int{0, -1, domain.MaxBanPage, domain.MaxBanPage + 1, 1 << 30} {
		page, err := s.ListBansPage(ctx, domain.BanQuery{Limit: limit})
		must(t, err)
		if len(page.Bans) != domain.MaxBanPage || page.Next != want[domain.MaxBanPage-1] {
			t.Errorf("ListBansPage(limit %d) = %d bans, next %q; want %d, next %q", limit, len(page.Bans), page.Next,
				domain.MaxBanPage, want[domain.MaxBanPage-1])
		}
		if last, err := s.ListBansPage(ctx, domain.BanQuery{After: page.Next, Limit: limit}); err != nil ||
			len(last.Bans) != 1 || last.Bans[0].IP.String() != want[domain.MaxBanPage] || last.Next != "" {
			t.Errorf("the page after %q (limit %d) = %+v, %v; want only %s", page.Next, limit, last, err, want[domain.MaxBanPage])
		}
	}
}
