package storetest

import (
	"net/netip"
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
