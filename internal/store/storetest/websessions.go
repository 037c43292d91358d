package storetest

import (
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

func testWebSessions(t *testing.T, s domain.Store) {
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Second)
	v := version(t, s)
	live := domain.WebSession{ID: "h1", Username: "alice", CSRF: "c1", Expires: now.Add(time.Hour)}
	must(t, s.CreateWebSession(ctx, live))
	must(t, s.CreateWebSession(ctx, domain.WebSession{ID: "h2", Username: "bob", CSRF: "c2", Expires: now.Add(-time.Second)}))
	got, err := s.GetWebSession(ctx, "h1")
	if err != nil || got.Username != "alice" || got.CSRF != "c1" || !got.Expires.Equal(live.Expires) {
		t.Errorf("GetWebSession(h1) = %+v, %v; want %+v", got, err, live)
	}
	if _, err := s.GetWebSession(ctx, "h2"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("expired session: %v, want ENOTFOUND", err)
	}
	if err := s.CreateWebSession(ctx, live); err == nil {
		t.Error("a second session with the same id was accepted")
	}
	must(t, s.DeleteWebSession(ctx, "h1"))
	must(t, s.DeleteWebSession(ctx, "h1"))
	if _, err := s.GetWebSession(ctx, "h1"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("deleted session: %v, want ENOTFOUND", err)
	}
	if err := s.CreateWebSession(ctx, domain.WebSession{ID: "h3"}); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("session without a username: %v, want EINVALID", err)
	}
	if got := version(t, s); got != v {
		t.Errorf("sessions moved the version %d → %d", v, got)
	}
}
