package auth

import (
	"database/sql"
	"fmt"
	"github.com/exitmesh/exitmesh/internal/testlog"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/store"
)

// The view follows the store's change feed. Each test runs against a real SQLite store and checks
// the view against one loaded in full from the same store: the feed must never make it differ.

type feedFixture struct {
	t     *testing.T
	store domain.Store
	raw   *sql.DB // the same file, for what no store method does: a corrupt entry
	view  *View
	logs  *syncBuffer
}

// syncBuffer collects a log that goroutines write while the test reads it.
type syncBuffer = testlog.Buffer

const pwHash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"

func newFeedFixture(t *testing.T) *feedFixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "exitmesh.db")
	s, err := store.Open(t.Context(), "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	f := &feedFixture{t: t, store: s, raw: raw, view: NewView(nil), logs: &syncBuffer{}}
	f.view.SetLog(slog.New(slog.NewTextHandler(f.logs, nil)))
	ctx := t.Context()
	for _, p := range []domain.Plan{{Name: "small", MaxProxies: 3, MaxSubs: 5, MaxIPs: 10, MaxHostnames: 5, MonthlyBandwidth: 1 << 30},
		{Name: "big", MaxProxies: 3, MaxSubs: 5, MaxIPs: 50, MaxHostnames: 5}} {
		f.must(s.CreatePlan(ctx, p))
	}
	for _, name := range []string{"us-ca", "de", "world"} {
		f.must(s.PutProxyServer(ctx, domain.ProxyServer{Name: name, Address: name + ".example.net:31280"}))
	}
	return f
}

func (f *feedFixture) must(err error) {
	f.t.Helper()
	if err != nil {
		f.t.Fatal(err)
	}
}

func (f *feedFixture) refresh() {
	f.t.Helper()
	f.must(f.view.Refresh(f.t.Context(), f.store))
}

// fullLoads is how many times the view loaded every account.
func (f *feedFixture) fullLoads() int { return f.logs.Count("account view loaded in full") }

// checkAgainstFullLoad compares the view with a view loaded in full from the store now.
func (f *feedFixture) checkAgainstFullLoad(what string) {
	f.t.Helper()
	snap, err := f.store.Snapshot(f.t.Context())
	f.must(err)
	want := NewView(nil)
	want.Load(snap)
	if got := describe(f.view); got != describe(want) {
		f.t.Fatalf("%s: the view following the feed differs from a full load:\n got: %s\nwant: %s", what, got, describe(want))
	}
}

// describe renders what the proxies can ask a view, sorted, with the version.
func describe(v *View) string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var lines []string
	for login, p := range v.logins {
		lines = append(lines, fmt.Sprintf("login %s: %s", login, principalString(p)))
	}
	for ip, p := range v.ips {
		lines = append(lines, fmt.Sprintf("ip %s: %s", ip, principalString(p)))
	}
	slices.Sort(lines)
	return fmt.Sprintf("version %d; %s", v.seq, strings.Join(lines, "; "))
}

func principalString(p *Principal) string {
	return fmt.Sprintf("%d/%d %s of %s disabled=%v bw=%d proxies=%v hash=%t", p.AccountID, p.SubID, p.Login,
		p.Account, p.Disabled, p.Bandwidth(), p.proxies, p.hash != "")
}

// TestViewAppliesTheFeed: a sequence of every kind of change, each followed through the feed, leaves
// the view as a full load would, and only the first refresh loads in full.
func TestViewAppliesTheFeed(t *testing.T) {
	f := newFeedFixture(t)
	ctx := t.Context()
	s := f.store
	f.refresh()
	steps := []struct {
		what string
		do   func() error
	}{
		{"create alice", func() error {
			_, err := s.CreateAccount(ctx, domain.NewAccount{Username: "alice", PasswordHash: pwHash, Plan: "small",
				Confirmed: true, Proxies: []string{"us-ca", "de"}, IPs: []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")}})
			return err
		}},
		{"create bob", func() error {
			_, err := s.CreateAccount(ctx, domain.NewAccount{Username: "bob", PasswordHash: pwHash, Plan: "big", Proxies: []string{"world"}})
			return err
		}},
		{"a sub-account holding one of alice's IPs", func() error {
			_, err := s.CreateSubAccount(ctx, "alice", domain.NewSubAccount{Username: "alice-1", PasswordHash: pwHash,
				Proxies: []string{"de"}, IPs: []netip.Addr{netip.MustParseAddr("192.0.2.2")}})
			return err
		}},
		{"a second sub-account listing it too", func() error {
			_, err := s.CreateSubAccount(ctx, "alice", domain.NewSubAccount{Username: "alice-2", PasswordHash: pwHash,
				IPs: []netip.Addr{netip.MustParseAddr("192.0.2.2")}})
			return err
		}},
		{"bob's hostname resolving to a new address", func() error {
			return s.AddHostname(ctx, "bob", "bob.example.org", netip.MustParseAddr("198.51.100.7"))
		}},
		{"alice's hostname resolving to her own IP", func() error {
			return s.AddHostname(ctx, "alice", "alice.example.org", netip.MustParseAddr("192.0.2.1"))
		}},
		{"bob's hostname moving", func() error {
			return s.SetHostnameIP(ctx, "bob", "bob.example.org", netip.MustParseAddr("198.51.100.8"))
		}},
		{"alice-2 deleted", func() error { return s.DeleteSubAccount(ctx, "alice", "alice-2") }},
		{"alice disabled", func() error {
			_, err := s.UpdateAccount(ctx, "alice", domain.AccountUpdate{Disabled: ptr(true)})
			return err
		}},
		{"alice's IP removed", func() error { return s.RemoveIP(ctx, "alice", netip.MustParseAddr("192.0.2.2")) }},
		{"bob moves to the small plan", func() error {
			_, err := s.UpdateAccount(ctx, "bob", domain.AccountUpdate{Plan: ptr("small")})
			return err
		}},
		{"the small plan's bandwidth", func() error {
			return s.UpdatePlan(ctx, domain.Plan{Name: "small", MaxProxies: 3, MaxSubs: 5, MaxIPs: 10, MaxHostnames: 5, MonthlyBandwidth: 7 << 30})
		}},
		{"bob's password and proxies", func() error {
			if err := s.RevokeProxy(ctx, "bob", "world"); err != nil {
				return err
			}
			_, err := s.UpdateAccount(ctx, "bob", domain.AccountUpdate{PasswordHash: ptr(pwHash + "x")})
			return err
		}},
	}
	for _, step := range steps {
		f.must(step.do())
		f.refresh()
		f.checkAgainstFullLoad(step.what)
	}
	if n := f.fullLoads(); n != 1 {
		t.Errorf("%d full loads, want 1 (the first)", n)
	}
	if p, ok := f.view.ByIP(netip.MustParseAddr("198.51.100.8")); !ok || p.Login != "bob" {
		t.Errorf("bob's hostname's new address authenticates as %v", p)
	}
	if _, ok := f.view.ByIP(netip.MustParseAddr("198.51.100.7")); ok {
		t.Error("bob's hostname's old address still authenticates")
	}
}

func ptr[T any](v T) *T { return &v }

// TestConcurrentRefreshesNeverGoBack: while changes are made, several goroutines refresh at once and
// a reader samples the version: it never decreases, every refresh leaves the view at least as new as
// the store was when it began, and the view ends equal to a full load.
func TestConcurrentRefreshesNeverGoBack(t *testing.T) {
	f := newFeedFixture(t)
	ctx := t.Context()
	for i := range 10 {
		_, err := f.store.CreateAccount(ctx, domain.NewAccount{Username: fmt.Sprintf("a%d", i), PasswordHash: pwHash, Plan: "big"})
		f.must(err)
	}
	f.refresh()
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	wg.Go(func() { // the writer
		defer stop.Store(true)
		for i := range 200 {
			account := fmt.Sprintf("a%d", i%10)
			ip := netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
			if err := f.store.AddIP(ctx, account, ip); err != nil {
				errs <- err
				return
			}
			if (i/10)%2 == 1 { // every other address is withdrawn again
				if err := f.store.RemoveIP(ctx, account, ip); err != nil {
					errs <- err
					return
				}
			}
		}
	})
	for range 4 { // refreshers
		wg.Go(func() {
			for !stop.Load() {
				before, err := f.store.Version(ctx)
				if err == nil {
					err = f.view.Refresh(ctx, f.store)
				}
				if err != nil {
					errs <- err
					return
				}
				if got := f.view.Version(); got < before {
					errs <- fmt.Errorf("a refresh begun at version %d left the view at %d", before, got)
					return
				}
			}
		})
	}
	wg.Go(func() { // the sampler
		last := int64(-1)
		for !stop.Load() {
			v := f.view.Version()
			if v < last {
				errs <- fmt.Errorf("the view went back from version %d to %d", last, v)
				return
			}
			last = v
			time.Sleep(100 * time.Microsecond)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	f.refresh()
	f.checkAgainstFullLoad("after the storm")
	if n := f.fullLoads(); n != 1 {
		t.Errorf("%d full loads, want 1", n)
	}
}

// TestFeedGapAndFaultsLoadInFull: a view older than the feed keeps, and an entry it cannot read
// (an unknown kind, an account entry without an account), are answered with a full load, logged,
// never with a wrong view nor a crash.
func TestFeedGapAndFaultsLoadInFull(t *testing.T) {
	f := newFeedFixture(t)
	ctx := t.Context()
	_, err := f.store.CreateAccount(ctx, domain.NewAccount{Username: "alice", PasswordHash: pwHash, Plan: "small",
		IPs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}})
	f.must(err)
	f.refresh()

	// Down past the retained window: the changes made meanwhile are pruned.
	f.must(f.store.AddIP(ctx, "alice", netip.MustParseAddr("192.0.2.3")))
	_, err = f.store.PruneChanges(ctx, time.Now().Add(time.Hour))
	f.must(err)
	f.refresh()
	f.checkAgainstFullLoad("after a gap")
	if n := f.logs.Count("older than the change feed keeps"); n != 1 || f.fullLoads() != 2 {
		t.Errorf("after a gap: %d gap loads, %d full loads; want 1 and 2", n, f.fullLoads())
	}

	for i, bad := range []struct{ kind, ref string }{{"'bogus'", "1"}, {"'account'", "0"}} {
		head, err := f.store.Version(ctx)
		f.must(err)
		_, err = f.raw.ExecContext(ctx, `UPDATE meta SET value = value + 1 WHERE key = 'version'`)
		f.must(err)
		_, err = f.raw.ExecContext(ctx, `INSERT INTO changes (seq, kind, ref, at) VALUES ($1, `+bad.kind+`, `+bad.ref+`, 0)`, head+1)
		f.must(err)
		f.must(f.store.RemoveIP(ctx, "alice", netip.MustParseAddr("192.0.2.3")))
		f.refresh()
		f.checkAgainstFullLoad("after an unreadable entry")
		if n := f.logs.Count("change feed entry unreadable"); n != i+1 {
			t.Errorf("entry kind %s ref %s: %d faults logged, want %d", bad.kind, bad.ref, n, i+1)
		}
		f.must(f.store.AddIP(ctx, "alice", netip.MustParseAddr("192.0.2.3")))
	}
	if f.fullLoads() != 4 {
		t.Errorf("%d full loads, want 4", f.fullLoads())
	}
	// And the feed is followed again afterwards.
	f.must(f.store.AddIP(ctx, "alice", netip.MustParseAddr("192.0.2.4")))
	f.refresh()
	f.checkAgainstFullLoad("back on the feed")
	if f.fullLoads() != 4 {
		t.Errorf("%d full loads after a normal change, want still 4", f.fullLoads())
	}
}
