package hostnames_test

import (
	"context"
	"errors"
	"github.com/exitmesh/exitmesh/internal/testlog"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/exitmesh/exitmesh/internal/dnstest"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/hostnames"
)

var (
	v4a = netip.MustParseAddr("192.0.2.1")
	v4b = netip.MustParseAddr("192.0.2.2")
	v6  = netip.MustParseAddr("2001:db8::1")
)

func TestResolveThroughDNSServer(t *testing.T) {
	dns := dnstest.Start(t)
	dns.Set("four.example.test", v4a)
	dns.Set("dual.example.test", v6, v4b)
	dns.Set("six.example.test", v6)
	lookup := hostnames.NewLookup(dns.Addr())
	tests := []struct {
		host     string
		want     netip.Addr
		notFound bool
	}{
		{"four.example.test", v4a, false},
		{"dual.example.test", v4b, false}, // IPv4 first
		{"six.example.test", v6, false},
		{"SIX.Example.Test", v6, false},
		{"unknown.example.test", netip.Addr{}, true},
	}
	for _, tt := range tests {
		got, err := hostnames.Resolve(context.Background(), lookup, tt.host)
		if got != tt.want || errors.Is(err, hostnames.ErrNotFound) != tt.notFound || (err != nil) != tt.notFound {
			t.Errorf("Resolve(%s) = %v, %v; want %v, not found %v", tt.host, got, err, tt.want, tt.notFound)
		}
	}
}

func TestResolveAnswers(t *testing.T) {
	timeout := &net.DNSError{Err: "i/o timeout", IsTimeout: true}
	tests := []struct {
		name     string
		addrs    []netip.Addr
		err      error
		want     netip.Addr
		wantErr  error // errors.Is target; nil for success
		notFound bool
	}{
		{"first IPv4", []netip.Addr{v6, v4b, v4a}, nil, v4b, nil, false},
		{"IPv6 when no IPv4", []netip.Addr{v6}, nil, v6, nil, false},
		{"IPv4-mapped is unmapped", []netip.Addr{netip.AddrFrom16(v4a.As16())}, nil, v4a, nil, false},
		{"no address", nil, nil, netip.Addr{}, hostnames.ErrNotFound, true},
		{"no such host", nil, &net.DNSError{Err: "no such host", IsNotFound: true}, netip.Addr{}, hostnames.ErrNotFound, true},
		{"timeout", nil, timeout, netip.Addr{}, timeout, false},
	}
	for _, tt := range tests {
		lookup := func(context.Context, string) ([]netip.Addr, error) { return tt.addrs, tt.err }
		got, err := hostnames.Resolve(context.Background(), lookup, "h.example.test")
		if got != tt.want || (tt.wantErr == nil) != (err == nil) || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: Resolve = %v, %v; want %v, %v", tt.name, got, err, tt.want, tt.wantErr)
		}
		if notFound := errors.Is(err, hostnames.ErrNotFound); notFound != tt.notFound {
			t.Errorf("%s: error %v is ErrNotFound = %v, want %v", tt.name, err, notFound, tt.notFound)
		}
	}
}

// set is one SetHostnameIP call.
type set struct {
	account, hostname string
	ip                netip.Addr
}

// store records SetHostnameIP calls; listErr and setErr make the calls fail.
type store struct {
	mu      sync.Mutex
	hosts   []domain.AccountHostname
	sets    []set
	listErr error
	setErr  error
}

func (s *store) ListAllHostnames(context.Context) ([]domain.AccountHostname, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.hosts), s.listErr
}

func (s *store) SetHostnameIP(_ context.Context, account, hostname string, ip netip.Addr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.setErr != nil {
		return s.setErr
	}
	s.sets = append(s.sets, set{account, hostname, ip})
	for i, h := range s.hosts {
		if h.Account == account && h.Name == hostname {
			s.hosts[i].IP = ip
		}
	}
	return nil
}

// takeSets returns the calls since the last takeSets, sorted.
func (s *store) takeSets() []set {
	s.mu.Lock()
	defer s.mu.Unlock()
	sets := s.sets
	s.sets = nil
	slices.SortFunc(sets, func(a, b set) int { return strings.Compare(a.account+" "+a.hostname, b.account+" "+b.hostname) })
	return sets
}

func host(account, name string) domain.AccountHostname {
	return domain.AccountHostname{Account: account, Hostname: domain.Hostname{Name: name}}
}

// logBuffer collects a log that goroutines write while the test reads it.
type logBuffer = testlog.Buffer

func newLogger(l *logBuffer) *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

func TestRefreshOnceFollowsDNS(t *testing.T) {
	dns := dnstest.Start(t)
	dns.Set("home.example.test", v4a)
	dns.Set("office.example.test", v6)
	st := &store{hosts: []domain.AccountHostname{
		host("alice", "home.example.test"), host("bob", "office.example.test"), host("bob", "gone.example.test"),
	}}
	changes := 0
	var applyErr error // what Changed answers
	r := &hostnames.Refresher{Store: st, Lookup: hostnames.NewLookup(dns.Addr()), Changed: func(context.Context) error {
		changes++
		return applyErr
	}}
	rounds := []struct {
		name    string
		change  func()
		want    []set
		changed bool // some address moved (or the last apply failed): Changed is called
		fails   bool // Changed fails this round
	}{
		{"first resolution", func() {}, []set{
			{"alice", "home.example.test", v4a}, {"bob", "gone.example.test", netip.Addr{}}, {"bob", "office.example.test", v6},
		}, true, false},
		{"nothing changed", func() {}, []set{
			{"alice", "home.example.test", v4a}, {"bob", "gone.example.test", netip.Addr{}}, {"bob", "office.example.test", v6},
		}, false, false},
		{"address changed", func() { dns.Set("home.example.test", v4b) }, []set{
			{"alice", "home.example.test", v4b}, {"bob", "gone.example.test", netip.Addr{}}, {"bob", "office.example.test", v6},
		}, true, false},
		{"name removed", func() { dns.Set("home.example.test") }, []set{
			{"alice", "home.example.test", netip.Addr{}}, {"bob", "gone.example.test", netip.Addr{}}, {"bob", "office.example.test", v6},
		}, true, false},
		{"moved, but the node cannot apply it", func() { dns.Set("home.example.test", v4a) }, []set{
			{"alice", "home.example.test", v4a}, {"bob", "gone.example.test", netip.Addr{}}, {"bob", "office.example.test", v6},
		}, true, true},
		{"nothing moved: the failed apply is tried again", func() {}, []set{
			{"alice", "home.example.test", v4a}, {"bob", "gone.example.test", netip.Addr{}}, {"bob", "office.example.test", v6},
		}, true, false},
		{"applied: quiet again", func() {}, []set{
			{"alice", "home.example.test", v4a}, {"bob", "gone.example.test", netip.Addr{}}, {"bob", "office.example.test", v6},
		}, false, false},
	}
	for _, round := range rounds {
		round.change()
		applyErr = nil
		if round.fails {
			applyErr = errors.New("store unreachable")
		}
		if err := r.RefreshOnce(context.Background()); (err != nil) != round.fails {
			t.Fatalf("%s: RefreshOnce: %v, want an error: %v", round.name, err, round.fails)
		}
		if got := st.takeSets(); !reflect.DeepEqual(got, round.want) {
			t.Errorf("%s: SetHostnameIP calls\n got %v\nwant %v", round.name, got, round.want)
		}
		if called := changes > 0; called != round.changed {
			t.Errorf("%s: Changed called %d times, want called: %v", round.name, changes, round.changed)
		}
		changes = 0
	}
}

func TestLookupFailuresKeepAddressAndLogOnce(t *testing.T) {
	var (
		mu      sync.Mutex
		answers = map[string][]netip.Addr{"home.example.test": {v4a}}
		broken  = true
	)
	lookup := func(_ context.Context, h string) ([]netip.Addr, error) {
		mu.Lock()
		defer mu.Unlock()
		if broken && h == "home.example.test" {
			return nil, &net.DNSError{Err: "server misbehaving", Name: h, IsTemporary: true}
		}
		if a, ok := answers[h]; ok {
			return a, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: h, IsNotFound: true}
	}
	var logs logBuffer
	st := &store{hosts: []domain.AccountHostname{host("alice", "home.example.test"), host("bob", "gone.example.test")}}
	r := &hostnames.Refresher{Store: st, Lookup: lookup, Log: newLogger(&logs)}
	const failed, vanished, back = "lookup failed; keeping its last address", "no longer resolves", "resolves again"
	rounds := []struct {
		name                   string
		fix                    bool
		want                   []set
		failed, vanished, back int // log lines so far
	}{
		{"failing", false, []set{{"bob", "gone.example.test", netip.Addr{}}}, 1, 1, 0},
		{"still failing", false, []set{{"bob", "gone.example.test", netip.Addr{}}}, 1, 1, 0},
		{"resolves again", true, []set{{"alice", "home.example.test", v4a}, {"bob", "gone.example.test", netip.Addr{}}}, 1, 1, 1},
		{"still resolves", true, []set{{"alice", "home.example.test", v4a}, {"bob", "gone.example.test", netip.Addr{}}}, 1, 1, 1},
	}
	for _, round := range rounds {
		mu.Lock()
		broken = !round.fix
		mu.Unlock()
		if err := r.RefreshOnce(context.Background()); err != nil {
			t.Fatalf("%s: RefreshOnce: %v", round.name, err)
		}
		if got := st.takeSets(); !reflect.DeepEqual(got, round.want) {
			t.Errorf("%s: SetHostnameIP calls\n got %v\nwant %v", round.name, got, round.want)
		}
		got := []int{logs.Count(failed), logs.Count(vanished), logs.Count(back)}
		if want := []int{round.failed, round.vanished, round.back}; !slices.Equal(got, want) {
			t.Errorf("%s: log lines (failed, vanished, back) = %v, want %v\n%s", round.name, got, want, logs.String())
		}
	}
}

func TestRefreshOnceReturnsStoreErrors(t *testing.T) {
	lookup := func(context.Context, string) ([]netip.Addr, error) { return []netip.Addr{v4a}, nil }
	errDB := errors.New("database is down")
	tests := []struct {
		name    string
		st      *store
		wantMsg string
	}{
		{"list", &store{listErr: errDB}, "list hostnames: database is down"},
		{"set", &store{hosts: []domain.AccountHostname{host("alice", "home.example.test")}, setErr: errDB},
			"set address of home.example.test (account alice): database is down"},
	}
	for _, tt := range tests {
		r := &hostnames.Refresher{Store: tt.st, Lookup: lookup}
		err := r.RefreshOnce(context.Background())
		if !errors.Is(err, errDB) || err.Error() != tt.wantMsg {
			t.Errorf("%s: RefreshOnce = %v, want %q", tt.name, err, tt.wantMsg)
		}
	}
}

func TestRunRefreshesEveryIntervalWithBoundedConcurrency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			mu                      sync.Mutex
			lookups, inFlight, peak int
		)
		lookup := func(ctx context.Context, _ string) ([]netip.Addr, error) {
			mu.Lock()
			lookups++
			inFlight++
			peak = max(peak, inFlight)
			mu.Unlock()
			time.Sleep(time.Second) // a slow resolver, in the bubble's fake time
			mu.Lock()
			inFlight--
			mu.Unlock()
			return []netip.Addr{v4a}, nil
		}
		st := &store{}
		for i := range 20 {
			st.hosts = append(st.hosts, host("alice", string(rune('a'+i))+".example.test"))
		}
		r := &hostnames.Refresher{Store: st, Lookup: lookup, Interval: time.Minute}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			r.Run(ctx)
			close(done)
		}()
		count := func() int {
			synctest.Wait()
			mu.Lock()
			defer mu.Unlock()
			return lookups
		}
		steps := []struct {
			wait time.Duration
			want int // lookups so far
		}{
			{0, 8},                            // the first round starts at once, 8 at a time
			{3 * time.Second, 20},             // and ends after 3 slow batches
			{time.Minute - 3*time.Second, 28}, // the next round starts an interval after the first
			{time.Minute, 48},
		}
		for _, s := range steps {
			time.Sleep(s.wait)
			if got := count(); got != s.want {
				t.Errorf("after %s more: %d lookups, want %d", s.wait, got, s.want)
			}
		}
		if peak != 8 {
			t.Errorf("at most %d lookups at once, want 8", peak)
		}
		cancel()
		<-done
	})
}
