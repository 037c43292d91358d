package storetest

import (
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
