package storetest

import (
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

func testExitStatuses(t *testing.T, s domain.Store) {
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Second)
	v := version(t, s)
	a := []domain.ExitStatus{
		{Proxy: "us-ca", IP: ip("127.0.0.2"), Healthy: true, Active: true, Latency: 1500 * time.Microsecond, Checks: 10, Updated: now},
		{Proxy: "us-ca", IP: ip("203.0.113.7"), Via: "socks5://u:xxxxx@127.0.0.1:1080", Healthy: false, Active: true,
			Checks: 10, Failures: 4, LastError: "connection refused", Since: now.Add(-time.Minute), Updated: now},
	}
	must(t, s.PutExitStatuses(ctx, "node-a", a))
	must(t, s.PutExitStatuses(ctx, "node-b", []domain.ExitStatus{{Proxy: "de", IP: ip("127.0.0.9"), Healthy: true, Updated: now}}))
	// A new report replaces the node's old one: exits removed from its config disappear.
	must(t, s.PutExitStatuses(ctx, "node-a", a[1:]))
	if got := version(t, s); got != v {
		t.Errorf("exit status moved the version %d → %d", v, got)
	}
	got, err := s.ListExitStatuses(ctx)
	must(t, err)
	want := []domain.ExitStatus{a[1], {Node: "node-b", Proxy: "de", IP: ip("127.0.0.9"), Healthy: true, Updated: now}}
	want[0].Node = "node-a"
	if len(got) != len(want) {
		t.Fatalf("ListExitStatuses = %+v, want %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Node != w.Node || g.Proxy != w.Proxy || g.IP != w.IP || g.Via != w.Via || g.Healthy != w.Healthy ||
			g.Active != w.Active || g.Latency != w.Latency || g.Checks != w.Checks || g.Failures != w.Failures ||
			g.LastError != w.LastError || !g.Since.Equal(w.Since) || !g.Updated.Equal(w.Updated) {
			t.Errorf("ListExitStatuses[%d] = %+v, want %+v", i, g, w)
		}
	}
	if err := s.PutExitStatuses(ctx, "", nil); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("PutExitStatuses without a node: %v, want EINVALID", err)
	}
}
