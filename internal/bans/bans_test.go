package bans

import (
	"fmt"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"
)

// clock is a time source the test moves by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var (
	ip1 = netip.MustParseAddr("192.0.2.1")
	ip2 = netip.MustParseAddr("192.0.2.2")
)

func newTracker(c *clock) *Tracker {
	return New(Config{AuthFailures: 10, NotFound: 20, Window: time.Minute, Duration: 15 * time.Minute, Now: c.Now})
}

// step is one event of a scenario: a failure to record, or the clock moving on.
type step struct {
	advance time.Duration
	ip      netip.Addr
	kind    Kind
	times   int  // failures to record
	banned  bool // whether the last of them bans
}

func TestFailBansAfterThreshold(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
		check netip.Addr
		want  bool // check is banned at the end
	}{
		{"10 auth failures do not ban", []step{{ip: ip1, kind: AuthFailure, times: 10}}, ip1, false},
		{"the 11th auth failure bans", []step{{ip: ip1, kind: AuthFailure, times: 11, banned: true}}, ip1, true},
		{"20 not-found do not ban", []step{{ip: ip1, kind: NotFound, times: 20}}, ip1, false},
		{"the 21st not-found bans", []step{{ip: ip1, kind: NotFound, times: 21, banned: true}}, ip1, true},
		{"kinds count separately", []step{
			{ip: ip1, kind: AuthFailure, times: 10},
			{ip: ip1, kind: NotFound, times: 20},
		}, ip1, false},
		{"IPs count separately", []step{
			{ip: ip1, kind: AuthFailure, times: 10},
			{ip: ip2, kind: AuthFailure, times: 10},
		}, ip1, false},
		{"a ban is for the failing IP only", []step{{ip: ip1, kind: AuthFailure, times: 11, banned: true}}, ip2, false},
		{"failures outside the window do not add up", []step{
			{ip: ip1, kind: AuthFailure, times: 10},
			{advance: time.Minute, ip: ip1, kind: AuthFailure, times: 10},
		}, ip1, false},
		{"the window slides", []step{
			{ip: ip1, kind: AuthFailure, times: 5},
			{advance: 40 * time.Second, ip: ip1, kind: AuthFailure, times: 5},
			{advance: 30 * time.Second, ip: ip1, kind: AuthFailure, times: 5}, // the first 5 have left the window
			{advance: time.Second, ip: ip1, kind: AuthFailure, times: 1, banned: true},
		}, ip1, true},
		{"failures while banned do not re-ban", []step{
			{ip: ip1, kind: AuthFailure, times: 11, banned: true},
			{ip: ip1, kind: AuthFailure, times: 20},
		}, ip1, true},
		{"IPv4-mapped is the same IP", []step{
			{ip: ip1, kind: AuthFailure, times: 10},
			{ip: netip.AddrFrom16(ip1.As16()), kind: AuthFailure, times: 1, banned: true},
		}, ip1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			tr := newTracker(c)
			for i, s := range tt.steps {
				c.Advance(s.advance)
				for n := 1; n <= s.times; n++ {
					got := tr.Fail(s.ip, s.kind)
					want := s.banned && n == s.times
					if got != want {
						t.Fatalf("step %d: failure %d of %s from %s: Fail = %v, want %v", i, n, s.kind, s.ip, got, want)
					}
				}
			}
			if _, got := tr.Banned(tt.check); got != tt.want {
				t.Errorf("Banned(%s) = %v, want %v", tt.check, got, tt.want)
			}
		})
	}
}

func fail(tr *Tracker, ip netip.Addr, k Kind, n int) {
	for range n {
		tr.Fail(ip, k)
	}
}

func TestBanExpires(t *testing.T) {
	c := newClock()
	tr := newTracker(c)
	fail(tr, ip1, AuthFailure, 11)
	tests := []struct {
		advance    time.Duration
		wantLeft   time.Duration
		wantBanned bool
	}{
		{0, 15 * time.Minute, true},
		{time.Minute, 14 * time.Minute, true},
		{14*time.Minute - time.Nanosecond, time.Nanosecond, true},
		{time.Nanosecond, 0, false},
	}
	for _, tt := range tests {
		c.Advance(tt.advance)
		left, banned := tr.Banned(ip1)
		if left != tt.wantLeft || banned != tt.wantBanned {
			t.Errorf("after %s more: Banned = %s, %v, want %s, %v", tt.advance, left, banned, tt.wantLeft, tt.wantBanned)
		}
	}
	// The expired ban is swept; counting starts afresh.
	if tr.Fail(ip1, AuthFailure) {
		t.Error("first failure after the ban expired banned again")
	}
	if got := tr.List(); len(got) != 0 {
		t.Errorf("List() after expiry = %v, want none", got)
	}
}

func TestUnban(t *testing.T) {
	c := newClock()
	tr := newTracker(c)
	fail(tr, ip1, AuthFailure, 11)
	if got := tr.Unban(ip2); got {
		t.Errorf("Unban(%s) never banned = true, want false", ip2)
	}
	if got := tr.Unban(ip1); !got {
		t.Errorf("Unban(%s) = false, want true", ip1)
	}
	if _, banned := tr.Banned(ip1); banned {
		t.Errorf("Banned(%s) after Unban = true", ip1)
	}
	if got := tr.Unban(ip1); got {
		t.Errorf("second Unban(%s) = true, want false", ip1)
	}
	// Counting starts afresh: the 11th failure bans again, not the 1st.
	c.Advance(time.Minute)
	for n := 1; n <= 11; n++ {
		if got, want := tr.Fail(ip1, AuthFailure), n == 11; got != want {
			t.Fatalf("failure %d after Unban: Fail = %v, want %v", n, got, want)
		}
	}
	// The new ban survives the sweep of the lifted one's expiry.
	c.Advance(14*time.Minute + time.Second)
	tr.Fail(ip2, AuthFailure) // sweeps
	if left, banned := tr.Banned(ip1); !banned || left != time.Minute-time.Second {
		t.Errorf("Banned(%s) = %s, %v, want 59s, true", ip1, left, banned)
	}
}

func TestList(t *testing.T) {
	c := newClock()
	tr := newTracker(c)
	start := c.Now()
	fail(tr, ip2, NotFound, 21)
	c.Advance(time.Second)
	fail(tr, ip1, AuthFailure, 11)
	got := tr.List()
	want := []Ban{
		{IP: ip2, Until: start.Add(15 * time.Minute), Reason: NotFound},
		{IP: ip1, Until: start.Add(15*time.Minute + time.Second), Reason: AuthFailure},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("List() = %v, want %v", got, want)
	}
}

func TestNilTracker(t *testing.T) {
	var tr *Tracker
	if tr.Fail(ip1, AuthFailure) {
		t.Error("nil Fail = true")
	}
	if left, banned := tr.Banned(ip1); banned || left != 0 {
		t.Errorf("nil Banned = %s, %v", left, banned)
	}
	if tr.Unban(ip1) {
		t.Error("nil Unban = true")
	}
	if got := tr.List(); got != nil {
		t.Errorf("nil List = %v", got)
	}
}

func TestInvalidInput(t *testing.T) {
	tr := newTracker(newClock())
	for range 30 {
		if tr.Fail(netip.Addr{}, AuthFailure) || tr.Fail(ip1, Kind(7)) || tr.Fail(ip1, Kind(-1)) {
			t.Fatal("Fail banned on an invalid IP or kind")
		}
	}
	if _, banned := tr.Banned(netip.Addr{}); banned {
		t.Error("the invalid address is banned")
	}
}

func TestCapEvictsOldestCountersNeverBans(t *testing.T) {
	c := newClock()
	tr := New(Config{AuthFailures: 2, MaxTracked: 3, Now: c.Now}) // the 3rd failure bans
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}) }
	fail(tr, addr(0), AuthFailure, 3) // banned: no longer a counter
	for _, s := range []struct{ ip, n int }{{1, 1}, {2, 2}, {3, 2}, {1, 1}, {4, 1}} {
		c.Advance(time.Second)
		fail(tr, addr(s.ip), AuthFailure, s.n)
	}
	// 4's counter exceeded the cap: the least recently failing, 2, was forgotten, not 1, the oldest.
	if got := len(tr.counters); got != 3 {
		t.Errorf("%d counters, want 3", got)
	}
	tests := []struct {
		ip   netip.Addr
		want bool // the next failure bans
	}{
		{addr(1), true},
		{addr(3), true},
		{addr(2), false}, // forgotten: counts from 1 again
	}
	for _, tt := range tests {
		if got := tr.Fail(tt.ip, AuthFailure); got != tt.want {
			t.Errorf("Fail(%s) = %v, want %v", tt.ip, got, tt.want)
		}
	}
	if _, banned := tr.Banned(addr(0)); !banned {
		t.Errorf("Banned(%s) = false: an active ban was dropped", addr(0))
	}
}

func TestStaleCountersAreSwept(t *testing.T) {
	c := newClock()
	tr := newTracker(c)
	for i := range 1000 {
		tr.Fail(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), AuthFailure)
	}
	c.Advance(time.Minute)
	tr.Fail(ip1, AuthFailure)
	if got := len(tr.counters); got != 1 {
		t.Errorf("%d counters after the window passed, want 1", got)
	}
}

func TestBannedDoesNotAllocate(t *testing.T) {
	tr := newTracker(newClock())
	fail(tr, ip1, AuthFailure, 11)
	for _, ip := range []netip.Addr{ip1, ip2} {
		if n := testing.AllocsPerRun(100, func() { tr.Banned(ip) }); n != 0 {
			t.Errorf("Banned(%s) allocates %v times, want 0", ip, n)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	tr := New(Config{MaxTracked: 50})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				ip := netip.AddrFrom4([4]byte{10, byte(g), 0, byte(i % 64)})
				tr.Fail(ip, Kind(i%2))
				tr.Banned(ip)
				if i%100 == 0 {
					tr.List()
					tr.Unban(ip)
				}
			}
		})
	}
	wg.Wait()
}

func TestRetryAfterAndRemaining(t *testing.T) {
	tests := []struct {
		d          time.Duration
		retryAfter string
		remaining  string
	}{
		{15 * time.Minute, "900", "15 more minutes"},
		{14*time.Minute + time.Millisecond, "841", "15 more minutes"},
		{14 * time.Minute, "840", "14 more minutes"},
		{60 * time.Second, "60", "1 more minute"},
		{59*time.Second + time.Millisecond, "60", "1 more minute"},
		{59 * time.Second, "59", "59 more seconds"},
		{1500 * time.Millisecond, "2", "2 more seconds"},
		{time.Nanosecond, "1", "1 more second"},
	}
	for _, tt := range tests {
		if got := RetryAfter(tt.d); got != tt.retryAfter {
			t.Errorf("RetryAfter(%s) = %q, want %q", tt.d, got, tt.retryAfter)
		}
		if got := Remaining(tt.d); got != tt.remaining {
			t.Errorf("Remaining(%s) = %q, want %q", tt.d, got, tt.remaining)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{AuthFailure: "auth-failure", NotFound: "not-found", 9: "Kind(9)"} {
		if got := fmt.Sprint(k); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}

func BenchmarkBanned(b *testing.B) {
	tr := New(Config{})
	fail(tr, ip1, AuthFailure, 11)
	for _, ip := range []netip.Addr{ip1, ip2} {
		b.Run(ip.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tr.Banned(ip)
			}
		})
	}
}

func BenchmarkBannedNobodyBanned(b *testing.B) {
	tr := New(Config{})
	b.ReportAllocs()
	for b.Loop() {
		tr.Banned(ip1)
	}
}

func TestOnBanReportsLocalBansOnly(t *testing.T) {
	c := newClock()
	var reported []Ban
	tr := New(Config{AuthFailures: 2, Now: c.Now, OnBan: func(b Ban) { reported = append(reported, b) }})
	ip := netip.MustParseAddr("192.0.2.7")
	fail(tr, ip, AuthFailure, 3)
	want := Ban{IP: ip, Until: c.Now().Add(15 * time.Minute), Reason: AuthFailure}
	if len(reported) != 1 || reported[0] != want {
		t.Fatalf("OnBan got %v, want [%v]", reported, want)
	}
	tr.Import(Ban{IP: netip.MustParseAddr("192.0.2.8"), Until: c.Now().Add(time.Hour)})
	fail(tr, ip, AuthFailure, 5) // already banned: no new ban
	if len(reported) != 1 {
		t.Errorf("OnBan called for an import or a banned IP: %v", reported)
	}
}

func TestImport(t *testing.T) {
	c := newClock()
	tr := newTracker(c)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("::ffff:192.0.2.2")
	if !tr.Import(Ban{IP: a, Until: c.Now().Add(10 * time.Minute), Reason: NotFound}) {
		t.Fatal("Import of a new ban changed nothing")
	}
	if tr.Import(Ban{IP: a, Until: c.Now().Add(5 * time.Minute)}) {
		t.Error("a shorter ban replaced a longer one")
	}
	if !tr.Import(Ban{IP: a, Until: c.Now().Add(20 * time.Minute)}) {
		t.Error("a longer ban did not extend the ban")
	}
	if tr.Import(Ban{IP: b, Until: c.Now().Add(-time.Second)}) {
		t.Error("an expired ban was imported")
	}
	// An imported ban ending before a local one still expires on time (expiries stay ordered).
	tr.Import(Ban{IP: b, Until: c.Now().Add(time.Minute)})
	if left, banned := tr.Banned(netip.MustParseAddr("192.0.2.2")); !banned || left != time.Minute {
		t.Errorf("imported ban of the mapped form: %v %v", left, banned)
	}
	c.Advance(2 * time.Minute)
	fail(tr, netip.MustParseAddr("192.0.2.99"), AuthFailure, 1) // sweeps
	if _, banned := tr.Banned(netip.MustParseAddr("192.0.2.2")); banned {
		t.Error("imported ban outlived its end")
	}
	if left, banned := tr.Banned(a); !banned || left != 18*time.Minute {
		t.Errorf("longest ban of a: %v %v, want 18m", left, banned)
	}
	if got := len(tr.List()); got != 1 {
		t.Errorf("List has %d bans, want 1", got)
	}
}

// TestReconcile follows the network's list: shared bans it no longer lists are lifted here too,
// while a ban this tracker decided stays until the network has had it (Shared).
func TestReconcile(t *testing.T) {
	c := newClock()
	tr := newTracker(c)
	ip3 := netip.MustParseAddr("192.0.2.3")
	banned := func(ip netip.Addr) time.Duration {
		t.Helper()
		left, ok := tr.Banned(ip)
		if !ok {
			return 0
		}
		return left
	}
	fail(tr, ip1, AuthFailure, 11) // local, not yet written
	local := tr.List()[0]
	tr.Import(Ban{IP: ip2, Until: c.Now().Add(10 * time.Minute)})

	if got := tr.Reconcile(nil); got != 1 {
		t.Errorf("Reconcile(nil) dropped %d bans, want 1 (the imported one)", got)
	}
	if banned(ip2) != 0 {
		t.Errorf("the imported ban survived a list without it")
	}
	if banned(ip1) != 15*time.Minute {
		t.Errorf("the local ban not yet shared was dropped: %s left", banned(ip1))
	}

	tr.Shared(Ban{IP: ip1, Until: local.Until.Add(-time.Second)}) // not this ban: ignored
	tr.Reconcile(nil)
	if banned(ip1) == 0 {
		t.Fatal("Shared of another ban's end made the local ban liftable")
	}
	tr.Shared(local)
	if got := tr.Reconcile(nil); got != 1 || banned(ip1) != 0 {
		t.Errorf("a shared ban the network no longer lists: dropped %d, %s left; want 1, 0", got, banned(ip1))
	}

	// Listed bans are imported in any address form; an ended one is not.
	tr.Reconcile([]Ban{
		{IP: netip.MustParseAddr("::ffff:192.0.2.3"), Until: c.Now().Add(5 * time.Minute)},
		{IP: ip2, Until: c.Now().Add(-time.Second)},
	})
	if banned(ip3) != 5*time.Minute || banned(ip2) != 0 {
		t.Errorf("after import: %s = %s, %s = %s; want 5m, 0", ip3, banned(ip3), ip2, banned(ip2))
	}
	// A shared ban takes the network's end, even a sooner one (lifted, then banned again elsewhere).
	tr.Reconcile([]Ban{{IP: ip3, Until: c.Now().Add(3 * time.Minute)}})
	if banned(ip3) != 3*time.Minute {
		t.Errorf("shared ban of %s lasts %s, want the network's 3m", ip3, banned(ip3))
	}

	// A local ban is replaced by a longer network ban (then shared), never by a shorter one.
	c.Advance(time.Minute)
	fail(tr, ip1, AuthFailure, 11)
	tr.Reconcile([]Ban{{IP: ip1, Until: c.Now().Add(10 * time.Minute)}})
	if banned(ip1) != 15*time.Minute {
		t.Errorf("a shorter network ban replaced the local one: %s left, want 15m", banned(ip1))
	}
	tr.Reconcile(nil)
	if banned(ip1) != 15*time.Minute {
		t.Error("the local ban was dropped before it was shared")
	}
	tr.Reconcile([]Ban{{IP: ip1, Until: c.Now().Add(20 * time.Minute)}})
	if banned(ip1) != 20*time.Minute {
		t.Errorf("a longer network ban did not extend the local one: %s left", banned(ip1))
	}
	if got := tr.Reconcile(nil); got != 1 || banned(ip1) != 0 || banned(ip3) != 0 {
		t.Errorf("dropped %d; want the shared ban of %s gone (%s went with the list before)", got, ip1, ip3)
	}
	if got := tr.List(); len(got) != 0 {
		t.Errorf("List() = %v, want none", got)
	}

	// The expiry of a dropped ban does not end a later ban of the same IP.
	fail(tr, ip3, AuthFailure, 11)
	c.Advance(16 * time.Minute)
	fail(tr, ip2, AuthFailure, 1) // sweeps
	if banned(ip3) != 0 {
		t.Error("the local ban outlived its end")
	}
	var nilTracker *Tracker
	nilTracker.Shared(local)
	if nilTracker.Reconcile([]Ban{local}) != 0 {
		t.Error("nil Reconcile dropped bans")
	}
}
