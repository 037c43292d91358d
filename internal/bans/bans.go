// Package bans bans client IPs temporarily after too many failures (SPEC §2.4, API §4): more than
// a configured number of failed authentications, or of requests for unknown API paths, from one
// IP within a window ban that IP for a while. One Tracker is shared by the API and the proxy
// servers of a node. A nil *Tracker is valid and bans nobody.
//
// Memory is bounded: failure counters expire after the window and at most MaxTracked IPs are
// counted at once, the least recently failing forgotten first. Active bans are never dropped;
// each needs more than the threshold of failures, so their number is bounded by the failure rate
// times the ban duration.
package bans

import (
	"container/list"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is a kind of failure. Each kind is counted separately against its own threshold.
type Kind int

const (
	AuthFailure Kind = iota // a 401 on the API, wrong credentials on a proxy
	NotFound                // a 404 on the API
	numKinds
)

// String returns the kind as operators see it: "auth-failure" or "not-found".
func (k Kind) String() string {
	switch k {
	case AuthFailure:
		return "auth-failure"
	case NotFound:
		return "not-found"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Config sets when an IP is banned. Zero values take the defaults noted.
type Config struct {
	AuthFailures int              // default 10: more AuthFailure failures than this within Window ban
	NotFound     int              // default 20: more NotFound failures than this within Window ban
	Window       time.Duration    // default 60s
	Duration     time.Duration    // default 15m: how long a ban lasts
	MaxTracked   int              // default 100,000: IPs whose failures are counted at once
	Now          func() time.Time // default time.Now; tests pass a clock they control
	// OnBan, if set, is called (outside the tracker's lock) with each ban Fail decides, so a node
	// can share it with the others. It must not block.
	OnBan func(Ban)
	// Exempt, if set, names addresses whose failures are never counted: the node's own exits, from
	// which any customer's traffic may arrive (banning one would punish the exit, not the client).
	Exempt func(netip.Addr) bool
}

func (c *Config) applyDefaults() {
	setInt := func(n *int, def int) {
		if *n <= 0 {
			*n = def
		}
	}
	setDuration := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	setInt(&c.AuthFailures, 10)
	setInt(&c.NotFound, 20)
	setDuration(&c.Window, time.Minute)
	setDuration(&c.Duration, 15*time.Minute)
	setInt(&c.MaxTracked, 100_000)
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Ban is an active ban, as List reports it.
type Ban struct {
	IP     netip.Addr
	Until  time.Time
	Reason Kind
}

// Tracker counts failures per IP and holds the active bans. Its methods are safe for concurrent use.
type Tracker struct {
	cfg   Config
	epoch time.Time // failure times are kept as offsets from it: 8 bytes each instead of 24

	// active is len(bans), readable without the lock: Banned skips the lock when nobody is banned.
	active atomic.Int64

	mu       sync.RWMutex // guards the following fields
	bans     map[netip.Addr]held
	expiries []Ban                        // bans in the order they expire, for sweeping
	counters map[netip.Addr]*list.Element // of *counter
	recency  list.List                    // counters, least recently failed first
}

// held is an active ban and where the network stands with it. A ban Fail decided is local until
// Shared says the network's list has it; an imported one is shared from the start. Reconcile lifts
// shared bans the network no longer lists, and leaves local ones alone: they have not reached it yet.
type held struct {
	Ban
	shared bool
}

// counter holds the times of one IP's recent failures, oldest first, per kind, as offsets from
// the tracker's epoch.
type counter struct {
	ip    netip.Addr
	last  time.Duration
	times [numKinds][]time.Duration
}

// New returns a tracker for cfg.
func New(cfg Config) *Tracker {
	cfg.applyDefaults()
	return &Tracker{
		cfg:      cfg,
		epoch:    cfg.Now(),
		bans:     make(map[netip.Addr]held),
		counters: make(map[netip.Addr]*list.Element),
	}
}

// normalize makes one key of the forms an address may arrive in (IPv4-mapped, zoned).
func normalize(ip netip.Addr) netip.Addr { return ip.Unmap().WithZone("") }

// Banned reports whether ip is banned and for how much longer. It is the hot path: it takes at
// most a read lock and does not allocate.
func (t *Tracker) Banned(ip netip.Addr) (retryAfter time.Duration, banned bool) {
	if t == nil || t.active.Load() == 0 {
		return 0, false
	}
	ip = normalize(ip)
	t.mu.RLock()
	b, ok := t.bans[ip]
	t.mu.RUnlock()
	if !ok {
		return 0, false
	}
	if left := b.Until.Sub(t.cfg.Now()); left > 0 {
		return left, true
	}
	return 0, false
}

// Fail records a failure of kind k from ip and reports whether this failure banned ip: the one
// that makes the count within the window exceed the kind's threshold. Failures from an IP already
// banned neither count nor extend the ban. Callers never report successful requests.
func (t *Tracker) Fail(ip netip.Addr, k Kind) bool {
	if t == nil || !ip.IsValid() || k < 0 || k >= numKinds || (t.cfg.Exempt != nil && t.cfg.Exempt(ip)) {
		return false
	}
	b, banned := t.fail(normalize(ip), k)
	if banned && t.cfg.OnBan != nil {
		t.cfg.OnBan(b)
	}
	return banned
}

func (t *Tracker) fail(ip netip.Addr, k Kind) (Ban, bool) {
	now := t.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweep(now)
	if b, ok := t.bans[ip]; ok && now.Before(b.Until) {
		return Ban{}, false
	}
	c := t.touch(ip, now.Sub(t.epoch))
	if c.add(k, t.cfg.Window) <= t.threshold(k) {
		return Ban{}, false
	}
	t.forget(ip)
	b := Ban{IP: ip, Until: now.Add(t.cfg.Duration), Reason: k}
	t.ban(held{Ban: b})
	return b, true
}

// Import applies a ban decided elsewhere (by another node): ip is banned until b.Until unless it
// already is for longer. It reports whether it changed anything; it does not call OnBan.
func (t *Tracker) Import(b Ban) bool {
	if t == nil || !b.IP.IsValid() {
		return false
	}
	b.IP = normalize(b.IP)
	now := t.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur, ok := t.bans[b.IP]; !now.Before(b.Until) || ok && !cur.Until.Before(b.Until) {
		return false
	}
	t.forget(b.IP)
	t.ban(held{Ban: b, shared: true})
	return true
}

// Shared records that b, a ban Fail decided, is in the network's list now (the node wrote it to
// the store), so that Reconcile lifts it once the network no longer lists it. A ban replaced since
// is left as it is.
func (t *Tracker) Shared(b Ban) {
	if t == nil {
		return
	}
	ip := normalize(b.IP)
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur, ok := t.bans[ip]; ok && cur.Until.Equal(b.Until) {
		cur.shared = true
		t.bans[ip] = cur
	}
}

// Reconcile makes the tracker follow the network's bans in force, active: each is imported (a ban
// the network ends differently from this tracker's shared one takes the network's end), and every
// shared ban active no longer lists was lifted by an operator, or ended, and is dropped. Local bans
// not yet Shared are kept: the network has not heard of them. It returns how many bans it dropped.
func (t *Tracker) Reconcile(active []Ban) (dropped int) {
	if t == nil {
		return 0
	}
	now := t.cfg.Now()
	listed := make(map[netip.Addr]Ban, len(active))
	for _, b := range active {
		if b.IP = normalize(b.IP); b.IP.IsValid() && now.Before(b.Until) {
			if cur, ok := listed[b.IP]; !ok || cur.Until.Before(b.Until) {
				listed[b.IP] = b
			}
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for ip, cur := range t.bans {
		if _, ok := listed[ip]; cur.shared && !ok {
			delete(t.bans, ip)
			dropped++
		}
	}
	for ip, b := range listed {
		cur, ok := t.bans[ip]
		if !ok || cur.shared && !cur.Until.Equal(b.Until) || !cur.shared && cur.Until.Before(b.Until) {
			t.forget(ip)
			t.ban(held{Ban: b, shared: true})
		}
	}
	t.active.Store(int64(len(t.bans)))
	return dropped
}

// Unban lifts ip's ban and reports whether it was banned.
func (t *Tracker) Unban(ip netip.Addr) bool {
	if t == nil {
		return false
	}
	ip = normalize(ip)
	now := t.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.bans[ip]
	if ok {
		delete(t.bans, ip)
		t.active.Store(int64(len(t.bans)))
	}
	return ok && now.Before(b.Until)
}

// List returns the active bans, soonest to expire first.
func (t *Tracker) List() []Ban {
	if t == nil {
		return nil
	}
	now := t.cfg.Now()
	t.mu.RLock()
	list := make([]Ban, 0, len(t.bans))
	for _, b := range t.bans {
		if now.Before(b.Until) {
			list = append(list, b.Ban)
		}
	}
	t.mu.RUnlock()
	slices.SortFunc(list, func(a, b Ban) int {
		if c := a.Until.Compare(b.Until); c != 0 {
			return c
		}
		return a.IP.Compare(b.IP)
	})
	return list
}

func (t *Tracker) threshold(k Kind) int {
	if k == NotFound {
		return t.cfg.NotFound
	}
	return t.cfg.AuthFailures
}

// touch returns ip's counter, creating it, and marks it the most recently failed. A new counter
// beyond MaxTracked evicts the least recently failed one.
func (t *Tracker) touch(ip netip.Addr, now time.Duration) *counter {
	if e, ok := t.counters[ip]; ok {
		t.recency.MoveToBack(e)
		c := e.Value.(*counter)
		c.last = now
		return c
	}
	c := &counter{ip: ip, last: now}
	t.counters[ip] = t.recency.PushBack(c)
	if len(t.counters) > t.cfg.MaxTracked {
		t.forget(t.recency.Front().Value.(*counter).ip)
	}
	return c
}

// forget drops ip's counter.
func (t *Tracker) forget(ip netip.Addr) {
	if e, ok := t.counters[ip]; ok {
		t.recency.Remove(e)
		delete(t.counters, ip)
	}
}

// ban records b, keeping expiries in the order the bans end (imported bans may end before local ones).
func (t *Tracker) ban(b held) {
	t.bans[b.IP] = b
	i, _ := slices.BinarySearchFunc(t.expiries, b.Until, func(e Ban, until time.Time) int { return e.Until.Compare(until) })
	t.expiries = slices.Insert(t.expiries, i, b.Ban)
	t.active.Store(int64(len(t.bans)))
}

// sweep drops the counters with no failure within the window and the bans that have expired.
// Both are kept in time order, so the work is proportional to what is dropped.
func (t *Tracker) sweep(now time.Time) {
	cutoff := now.Sub(t.epoch) - t.cfg.Window
	for e := t.recency.Front(); e != nil && e.Value.(*counter).last <= cutoff; e = t.recency.Front() {
		t.forget(e.Value.(*counter).ip)
	}
	n := 0
	for n < len(t.expiries) && !now.Before(t.expiries[n].Until) {
		b := t.expiries[n]
		if cur, ok := t.bans[b.IP]; ok && cur.Until.Equal(b.Until) { // not lifted, nor replaced
			delete(t.bans, b.IP)
		}
		n++
	}
	if n > 0 {
		t.expiries = slices.Delete(t.expiries, 0, n)
		t.active.Store(int64(len(t.bans)))
	}
}

// add records a failure of kind k at c.last, forgets that kind's failures older than the window,
// and returns how many remain. At most threshold+1 times are ever held: that many ban.
func (c *counter) add(k Kind, window time.Duration) int {
	times := c.times[k]
	old := 0
	for old < len(times) && times[old] <= c.last-window {
		old++
	}
	times = append(slices.Delete(times, 0, old), c.last)
	c.times[k] = times
	return len(times)
}

// RetryAfter formats d for a Retry-After header: whole seconds, rounded up, at least 1.
func RetryAfter(d time.Duration) string {
	return strconv.FormatInt(ceilDiv(d, time.Second), 10)
}

// Remaining describes how long a ban still lasts, rounded up, for a sentence such as "Your IP
// address is temporarily banned for 14 more minutes.": "14 more minutes", "1 more minute",
// "30 more seconds".
func Remaining(d time.Duration) string {
	if seconds := ceilDiv(d, time.Second); seconds < 60 {
		return plural(seconds, "second")
	}
	return plural(ceilDiv(d, time.Minute), "minute")
}

func plural(n int64, unit string) string {
	if n == 1 {
		return "1 more " + unit
	}
	return fmt.Sprintf("%d more %ss", n, unit)
}

// ceilDiv returns d/unit rounded up, at least 1.
func ceilDiv(d, unit time.Duration) int64 {
	return max(1, int64((d+unit-1)/unit))
}
