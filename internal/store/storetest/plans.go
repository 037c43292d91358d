package storetest

import (
	"context"
	"reflect"
	"testing"

	"github.com/exitmesh/exitmesh/internal/domain"
)

func testPlans(t *testing.T, s domain.Store) {
	ctx := t.Context()
	ps, err := s.ListPlans(ctx)
	must(t, err)
	if ps == nil || len(ps) != 0 {
		t.Fatalf("ListPlans on an empty store = %#v, want an empty, non-nil list", ps)
	}
	v0 := version(t, s)
	must(t, s.CreatePlan(ctx, small))
	must(t, s.CreatePlan(ctx, big))
	if got, want := version(t, s), v0+2; got != want {
		t.Errorf("version after two CreatePlan = %d, want %d", got, want)
	}
	got, err := s.GetPlan(ctx, "small")
	must(t, err)
	if got != small {
		t.Errorf("GetPlan = %+v, want %+v", got, small)
	}
	ps, err = s.ListPlans(ctx)
	must(t, err)
	if want := []domain.Plan{big, small}; !reflect.DeepEqual(ps, want) {
		t.Errorf("ListPlans = %+v, want %+v", ps, want)
	}

	bigger := big
	bigger.MaxIPs, bigger.MonthlyBandwidth = 20, 5<<30
	must(t, s.UpdatePlan(ctx, bigger))
	if got, err := s.GetPlan(ctx, "big"); err != nil || got != bigger {
		t.Errorf("GetPlan after UpdatePlan = %+v, %v; want %+v", got, err, bigger)
	}

	// PutPlan creates, replaces, and leaves an identical plan (and the version) alone.
	extra := domain.Plan{Name: "extra", MaxProxies: 1}
	must(t, s.PutPlan(ctx, extra))
	extra.MaxSubs = 3
	must(t, s.PutPlan(ctx, extra))
	if got, err := s.GetPlan(ctx, "extra"); err != nil || got != extra {
		t.Errorf("GetPlan after PutPlan = %+v, %v; want %+v", got, err, extra)
	}
	v := version(t, s)
	must(t, s.PutPlan(ctx, extra))
	if got := version(t, s); got != v {
		t.Errorf("version after PutPlan of an identical plan = %d, want %d", got, v)
	}
}

func testPlanErrors(t *testing.T, s domain.Store) {
	must(t, s.CreatePlan(t.Context(), small))
	negative := small
	negative.MaxIPs = -1
	runErrCases(t, s, []errCase{
		{"CreatePlan duplicate", func(ctx context.Context, s domain.Store) error {
			return s.CreatePlan(ctx, small)
		}, domain.ECONFLICT, `"small" already exists`},
		{"CreatePlan bad name", func(ctx context.Context, s domain.Store) error {
			return s.CreatePlan(ctx, domain.Plan{Name: "Big Plan"})
		}, domain.EINVALID, "Plan name"},
		{"CreatePlan empty name", func(ctx context.Context, s domain.Store) error {
			return s.CreatePlan(ctx, domain.Plan{})
		}, domain.EINVALID, "Plan name"},
		{"CreatePlan negative limit", func(ctx context.Context, s domain.Store) error {
			return s.CreatePlan(ctx, domain.Plan{Name: "neg", MaxSubs: -1})
		}, domain.EINVALID, "negative"},
		{"UpdatePlan missing", func(ctx context.Context, s domain.Store) error {
			return s.UpdatePlan(ctx, domain.Plan{Name: "missing"})
		}, domain.ENOTFOUND, `Plan "missing" not found.`},
		{"UpdatePlan negative limit", func(ctx context.Context, s domain.Store) error {
			return s.UpdatePlan(ctx, negative)
		}, domain.EINVALID, "negative"},
		{"PutPlan bad name", func(ctx context.Context, s domain.Store) error {
			return s.PutPlan(ctx, domain.Plan{Name: "a/b"})
		}, domain.EINVALID, "Plan name"},
		{"PutPlan negative limit", func(ctx context.Context, s domain.Store) error {
			return s.PutPlan(ctx, negative)
		}, domain.EINVALID, "negative"},
		{"GetPlan missing", func(ctx context.Context, s domain.Store) error {
			_, err := s.GetPlan(ctx, "missing")
			return err
		}, domain.ENOTFOUND, `Plan "missing" not found.`},
	})
	if got, err := s.GetPlan(t.Context(), "small"); err != nil || got != small {
		t.Errorf("GetPlan after failed changes = %+v, %v; want %+v", got, err, small)
	}
}

func testProxyServers(t *testing.T, s domain.Store) {
	ctx := t.Context()
	ps, err := s.ListProxyServers(ctx)
	must(t, err)
	if ps == nil || len(ps) != 0 {
		t.Fatalf("ListProxyServers on an empty store = %#v, want an empty, non-nil list", ps)
	}
	for _, p := range proxyServers {
		must(t, s.PutProxyServer(ctx, p))
	}
	// An update by name; the country is stored upper-case.
	must(t, s.PutProxyServer(ctx, domain.ProxyServer{Name: "world", Address: "w.example.net:8080", Country: "nl"}))
	v := version(t, s)
	must(t, s.PutProxyServer(ctx, domain.ProxyServer{Name: "world", Address: "w.example.net:8080", Country: "NL"}))
	if got := version(t, s); got != v {
		t.Errorf("version after PutProxyServer of an identical entry = %d, want %d", got, v)
	}
	ps, err = s.ListProxyServers(ctx)
	must(t, err)
	want := []domain.ProxyServer{proxyServers[1], proxyServers[2], proxyServers[0],
		{Name: "world", Address: "w.example.net:8080", Country: "NL"}}
	if !reflect.DeepEqual(ps, want) {
		t.Errorf("ListProxyServers = %+v, want %+v", ps, want)
	}

	runErrCases(t, s, []errCase{
		{"bad name", func(ctx context.Context, s domain.Store) error {
			return s.PutProxyServer(ctx, domain.ProxyServer{Name: "US CA", Address: "h:1"})
		}, domain.EINVALID, "Proxy server name"},
		{"address without port", func(ctx context.Context, s domain.Store) error {
			return s.PutProxyServer(ctx, domain.ProxyServer{Name: "x", Address: "x.example.net"})
		}, domain.EINVALID, "host:port"},
		{"empty address", func(ctx context.Context, s domain.Store) error {
			return s.PutProxyServer(ctx, domain.ProxyServer{Name: "x"})
		}, domain.EINVALID, "host:port"},
		{"bad country", func(ctx context.Context, s domain.Store) error {
			return s.PutProxyServer(ctx, domain.ProxyServer{Name: "x", Address: "x:1", Country: "USA"})
		}, domain.EINVALID, "two-letter"},
		{"bad exit country", func(ctx context.Context, s domain.Store) error {
			return s.PutProxyServer(ctx, domain.ProxyServer{Name: "x", Address: "x:1", Places: domain.Places{Countries: []string{"US,DE"}}})
		}, domain.EINVALID, "two-letter"},
		{"bad region", func(ctx context.Context, s domain.Store) error {
			return s.PutProxyServer(ctx, domain.ProxyServer{Name: "x", Address: "x:1", Places: domain.Places{Regions: []string{"us-ca"}}})
		}, domain.EINVALID, "ISO 3166-2"},
		{"bad city", func(ctx context.Context, s domain.Store) error {
			return s.PutProxyServer(ctx, domain.ProxyServer{Name: "x", Address: "x:1", Places: domain.Places{Cities: []string{"a,b"}}})
		}, domain.EINVALID, "slug"},
	})

	// Places come back sorted and without repeats; a change of places alone is a change.
	placed := domain.ProxyServer{Name: "world", Address: "w.example.net:8080", Country: "NL", Places: domain.Places{
		Countries: []string{"US", "DE", "US"}, Regions: []string{"US-CA", "DE-BE"}, Cities: []string{"los_angeles", "berlin", "berlin"},
		ASNs: []uint32{64501, 64500, 4294967295}}}
	v = version(t, s)
	must(t, s.PutProxyServer(ctx, placed))
	if got := version(t, s); got == v {
		t.Errorf("PutProxyServer with new places left the version at %d", got)
	}
	ps, err = s.ListProxyServers(ctx)
	must(t, err)
	want[3].Places = domain.Places{Countries: []string{"DE", "US"}, Regions: []string{"DE-BE", "US-CA"},
		Cities: []string{"berlin", "los_angeles"}, ASNs: []uint32{64500, 64501, 4294967295}}
	if !reflect.DeepEqual(ps, want) {
		t.Errorf("ListProxyServers after places = %+v, want %+v", ps, want)
	}
}
