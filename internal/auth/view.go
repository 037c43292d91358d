// Package auth decides who a proxy client is — an account or sub-account by Basic credentials, or an
// account by its authorized source IP — from an in-memory view of the store. The view follows the
// store's change feed and applies each change to the accounts it names, so a change costs work in
// proportion to what it changed, not to the size of the network, and the proxy hot path never waits
// for the database.
package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// ErrBadCredentials means the username is unknown or the password does not match.
var ErrBadCredentials = errors.New("invalid proxy credentials")

// Principal is who a proxy request acts for: an account, or one of its sub-accounts. A Principal is
// never changed once the view publishes it; a change publishes a new one.
type Principal struct {
	AccountID int64
	SubID     int64  // 0 when the account itself
	Login     string // the username that authenticated
	Account   string // the account's username
	Disabled  bool   // account disabled, or sub-account inactive
	// BillingDay is the day (1-28) the account's billing periods start; AccountLimits are the
	// account's own bandwidth limits and SubLimits the sub-account's (zero for the account itself).
	BillingDay    int
	AccountLimits domain.Limits
	SubLimits     domain.Limits
	plan          *planLimits
	proxies       []string // sorted; the strings are shared through the view's interning
	hash          string
}

// MayUse reports whether the principal has authorized the proxy server named proxy.
func (p *Principal) MayUse(proxy string) bool {
	_, ok := slices.BinarySearch(p.proxies, proxy)
	return ok
}

// Bandwidth returns the monthly bandwidth of the account's plan in bytes (per billing period); 0 =
// unlimited. It follows changes to the plan.
func (p *Principal) Bandwidth() int64 {
	if p.plan == nil {
		return 0
	}
	return p.plan.bandwidth.Load()
}

// planLimits is what the proxies read of a plan, shared by every principal on it, so a plan's
// change is one store, whatever the number of its accounts.
type planLimits struct {
	bandwidth   atomic.Int64
	rate        atomic.Int64
	speed       atomic.Int64
	connections atomic.Int64
}

// Rates are a plan's per-account rate, speed and concurrency limits (domain.Plan); 0 = none.
type Rates struct {
	Rate        int   // requests and tunnel opens per second
	Speed       int64 // bytes per second, each way
	Connections int   // requests and tunnels in flight
}

// Rates returns the rate, speed and concurrency limits of the account's plan. They follow changes
// to the plan.
func (p *Principal) Rates() Rates {
	if p.plan == nil {
		return Rates{}
	}
	return Rates{Rate: int(p.plan.rate.Load()), Speed: p.plan.speed.Load(), Connections: int(p.plan.connections.Load())}
}

// accountState is what one account contributes to the view, kept to take it out again when the
// account changes.
type accountState struct {
	principal *Principal
	subs      []subState
	ips       []netip.Addr // the account's authorized IPs (unique network-wide)
	hostIPs   []netip.Addr // the current addresses of its authorized hostnames
	tokens    [][sha256.Size]byte
}

// tokenEntry is an active API token of an account or sub-account.
type tokenEntry struct {
	id        int64
	principal *Principal
	expires   time.Time    // zero: never
	reported  atomic.Int64 // the unix second of the last use handed to TokenUses
}

type subState struct {
	principal *Principal
	ips       []netip.Addr
	hostIPs   []netip.Addr // the current addresses of its hostnames (some of its account's)
}

// View is the proxy's read-only picture of accounts. The zero View is not usable; call NewView.
type View struct {
	verifier *Verifier
	log      atomic.Pointer[slog.Logger]

	// applyMu serializes what changes the view (Load, Refresh), so that a newer state is never
	// replaced by an older one. The readers never take it.
	applyMu sync.Mutex

	mu       sync.RWMutex // guards the fields below; writers hold it for one account at a time
	seq      int64        // the store version the view reflects; -1 before the first load
	logins   map[string]*Principal
	ips      map[netip.Addr]*Principal // each address's winner (see resolve)
	accounts map[int64]*accountState
	owner    map[netip.Addr]int64   // an authorized IP's account
	hosts    map[netip.Addr][]int64 // accounts one of whose hostnames resolves to the address
	plans    map[string]*planLimits
	names    map[string]string // interned proxy server names
	tokens   map[[sha256.Size]byte]*tokenEntry

	// Uses, when set, learns of every token use (at most once a second per token), for the store's
	// last_used.
	Uses *TokenUses
}

// NewView returns an empty view that checks passwords with verifier (nil: a new one).
func NewView(verifier *Verifier) *View {
	if verifier == nil {
		verifier = NewVerifier()
	}
	v := &View{verifier: verifier}
	v.reset(-1, 0)
	return v
}

func (v *View) reset(seq int64, size int) {
	v.seq = seq
	v.logins = make(map[string]*Principal, size)
	v.ips = make(map[netip.Addr]*Principal, size)
	v.accounts = make(map[int64]*accountState, size)
	v.owner = make(map[netip.Addr]int64, size)
	v.hosts = make(map[netip.Addr][]int64)
	v.plans = make(map[string]*planLimits)
	v.names = make(map[string]string)
	v.tokens = make(map[[sha256.Size]byte]*tokenEntry)
}

// Version returns the store version the view reflects (-1 before the first Load).
func (v *View) Version() int64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.seq
}

// Len returns how many logins (accounts and sub-accounts) the view holds.
func (v *View) Len() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.logins)
}

// Load replaces the whole view with one built from s.
func (v *View) Load(s domain.Snapshot) {
	v.applyMu.Lock()
	defer v.applyMu.Unlock()
	v.load(s)
}

func (v *View) load(s domain.Snapshot) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.reset(s.Version, len(s.Accounts)+len(s.Subs))
	v.setPlans(s.Plans)
	subs, tokens := subsByAccount(s.Subs), tokensByAccount(s.Tokens)
	for _, a := range s.Accounts {
		v.putAccount(a, subs[a.ID], tokens[a.ID])
	}
	for ip := range v.owner {
		v.resolve(ip)
	}
	for ip := range v.hosts {
		v.resolve(ip)
	}
}

// apply brings the view from d.From to d.To. The caller holds applyMu and has checked d.From is
// where the view stands.
func (v *View) apply(d domain.Delta) {
	if d.Plans != nil {
		v.mu.Lock()
		v.setPlans(d.Plans)
		v.mu.Unlock()
	}
	current := make(map[int64]*domain.Account, len(d.Accounts))
	for i := range d.Accounts {
		current[d.Accounts[i].ID] = &d.Accounts[i]
	}
	subs, tokens := subsByAccount(d.Subs), tokensByAccount(d.Tokens)
	done := make(map[int64]bool, len(d.Changes))
	for _, c := range d.Changes {
		if c.Kind != domain.ChangeAccount || done[c.Ref] {
			continue
		}
		done[c.Ref] = true
		v.mu.Lock()
		v.replaceAccount(c.Ref, current[c.Ref], subs[c.Ref], tokens[c.Ref])
		v.mu.Unlock()
	}
	v.mu.Lock()
	v.seq = d.To
	v.mu.Unlock()
}

func subsByAccount(subs []domain.SubAccount) map[int64][]domain.SubAccount {
	m := make(map[int64][]domain.SubAccount)
	for _, s := range subs {
		m[s.AccountID] = append(m[s.AccountID], s)
	}
	return m
}

func tokensByAccount(tokens []domain.Token) map[int64][]domain.Token {
	m := make(map[int64][]domain.Token)
	for _, t := range tokens {
		m[t.AccountID] = append(m[t.AccountID], t)
	}
	return m
}

// setPlans updates the limits of every plan in place. A plan no longer listed keeps its last limits
// (an account cannot be on it).
func (v *View) setPlans(plans []domain.Plan) {
	for _, p := range plans {
		pl := v.plan(p.Name)
		pl.bandwidth.Store(p.MonthlyBandwidth)
		pl.rate.Store(int64(p.Rate))
		pl.speed.Store(p.Speed)
		pl.connections.Store(int64(p.Connections))
	}
}

func (v *View) plan(name string) *planLimits {
	pl, ok := v.plans[name]
	if !ok {
		pl = &planLimits{}
		v.plans[name] = pl
	}
	return pl
}

// replaceAccount takes the account id out of the view and puts a (its current state, nil when it is
// gone) in, then settles every address either state touched.
func (v *View) replaceAccount(id int64, a *domain.Account, subs []domain.SubAccount, tokens []domain.Token) {
	touched := v.removeAccount(id)
	if a != nil {
		v.putAccount(*a, subs, tokens)
		st := v.accounts[id]
		touched = append(append(touched, st.ips...), st.hostIPs...)
	}
	for _, ip := range touched {
		v.resolve(ip)
	}
}

// removeAccount takes an account and its sub-accounts out, and returns the addresses it held.
func (v *View) removeAccount(id int64) []netip.Addr {
	st, ok := v.accounts[id]
	if !ok {
		return nil
	}
	delete(v.accounts, id)
	delete(v.logins, st.principal.Login)
	for _, s := range st.subs {
		delete(v.logins, s.principal.Login)
	}
	for _, h := range st.tokens {
		delete(v.tokens, h)
	}
	for _, ip := range st.ips {
		if v.owner[ip] == id {
			delete(v.owner, ip)
		}
	}
	for _, ip := range st.hostIPs {
		if rest := slices.DeleteFunc(v.hosts[ip], func(x int64) bool { return x == id }); len(rest) > 0 {
			v.hosts[ip] = rest
		} else {
			delete(v.hosts, ip)
		}
	}
	return append(slices.Clone(st.ips), st.hostIPs...)
}

// putAccount adds an account, its sub-accounts and its active tokens; the addresses they hold are
// settled by the caller.
func (v *View) putAccount(a domain.Account, subs []domain.SubAccount, tokens []domain.Token) {
	p := &Principal{AccountID: a.ID, Login: a.Username, Account: a.Username, Disabled: a.Disabled,
		BillingDay: a.BillingDay, AccountLimits: a.Limits,
		plan: v.plan(a.Plan), proxies: v.intern(a.Proxies), hash: a.PasswordHash}
	st := &accountState{principal: p, ips: slices.Clip(slices.Clone(a.IPs))}
	v.logins[a.Username] = p
	for _, ip := range a.IPs {
		v.owner[ip] = a.ID
	}
	for _, h := range a.Hostnames {
		if h.IP.IsValid() && !slices.Contains(st.hostIPs, h.IP) {
			st.hostIPs = append(st.hostIPs, h.IP)
			v.hosts[h.IP] = append(v.hosts[h.IP], a.ID)
		}
	}
	for _, s := range subs {
		sp := &Principal{AccountID: a.ID, SubID: s.ID, Login: s.Username, Account: a.Username,
			Disabled: a.Disabled || !s.Active, BillingDay: a.BillingDay, AccountLimits: a.Limits, SubLimits: s.Limits,
			plan: p.plan, proxies: v.intern(s.Proxies), hash: s.PasswordHash}
		v.logins[s.Username] = sp
		var hostIPs []netip.Addr
		for _, name := range s.Hostnames {
			if i := slices.IndexFunc(a.Hostnames, func(h domain.Hostname) bool { return h.Name == name }); i >= 0 && a.Hostnames[i].IP.IsValid() {
				hostIPs = append(hostIPs, a.Hostnames[i].IP)
			}
		}
		st.subs = append(st.subs, subState{principal: sp, ips: slices.Clip(slices.Clone(s.IPs)), hostIPs: hostIPs})
	}
	v.accounts[a.ID] = st
	v.putTokens(st, tokens)
}

// putTokens adds the active tokens of an account (and of its sub-accounts) to the view.
func (v *View) putTokens(st *accountState, tokens []domain.Token) {
	for _, t := range tokens {
		var h [sha256.Size]byte
		if !t.Active || len(t.Hash) != hex.EncodedLen(len(h)) {
			continue
		}
		if _, err := hex.Decode(h[:], []byte(t.Hash)); err != nil {
			continue // a hash that is not one matches no token
		}
		p := st.principal
		for _, s := range st.subs {
			if s.principal.SubID == t.SubID {
				p = s.principal
			}
		}
		if t.SubID != 0 && p == st.principal {
			continue // its sub-account is gone
		}
		v.tokens[h] = &tokenEntry{id: t.ID, principal: p, expires: t.Expires}
		st.tokens = append(st.tokens, h)
	}
}

// resolve settles who the address ip authenticates as:
//   - an authorized IP is its account's (IPs are unique network-wide), unless exactly one of that
//     account's sub-accounts lists it: then that sub-account's (its proxy subset and its usage);
//   - otherwise the current address of an authorized hostname is its account's (the lowest account
//     id, when several hostnames resolve to it), unless exactly one of that account's sub-accounts
//     holds a hostname resolving there: an explicit IP is the stronger claim.
func (v *View) resolve(ip netip.Addr) {
	if id, ok := v.owner[ip]; ok {
		v.ips[ip] = claimant(v.accounts[id], ip, func(s subState) []netip.Addr { return s.ips })
		return
	}
	if ids := v.hosts[ip]; len(ids) > 0 {
		v.ips[ip] = claimant(v.accounts[slices.Min(ids)], ip, func(s subState) []netip.Addr { return s.hostIPs })
		return
	}
	delete(v.ips, ip)
}

// claimant is whom an address of the account st authenticates as: the one sub-account whose
// addresses (addrs) hold ip, else the account.
func claimant(st *accountState, ip netip.Addr, addrs func(subState) []netip.Addr) *Principal {
	winner, listed := st.principal, 0
	for _, s := range st.subs {
		if slices.Contains(addrs(s), ip) {
			winner, listed = s.principal, listed+1
		}
	}
	if listed > 1 {
		return st.principal
	}
	return winner
}

// intern returns names sorted, each string shared with every other principal naming the same proxy
// server: a million logins on a few proxy servers keep a few strings.
func (v *View) intern(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		s, ok := v.names[n]
		if !ok {
			s = n
			v.names[n] = s
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ByIP returns the principal whose authorized IP is ip.
func (v *View) ByIP(ip netip.Addr) (*Principal, bool) {
	v.mu.RLock()
	p, ok := v.ips[ip.Unmap()]
	v.mu.RUnlock()
	return p, ok
}

// Current returns the principal the view holds now for p's login: p itself when nothing changed,
// the principal that replaced it when its account changed, and p when the login is gone.
func (v *View) Current(p *Principal) *Principal {
	v.mu.RLock()
	cur := v.logins[p.Login]
	v.mu.RUnlock()
	if cur == nil {
		return p
	}
	return cur
}

// AuthenticateToken finds the account or sub-account of an active, unexpired API token.
func (v *View) AuthenticateToken(token string) (*Principal, error) {
	if !WellFormedToken(token) {
		return nil, ErrBadCredentials
	}
	sum := sha256.Sum256([]byte(token))
	v.mu.RLock()
	e := v.tokens[sum]
	v.mu.RUnlock()
	now := time.Now()
	if e == nil || (!e.expires.IsZero() && !now.Before(e.expires)) {
		return nil, ErrBadCredentials
	}
	if sec := now.Unix(); v.Uses != nil && e.reported.Swap(sec) != sec {
		v.Uses.Record(e.id, now)
	}
	return e.principal, nil
}

// Authenticate checks a login and password against the view.
func (v *View) Authenticate(ctx context.Context, login, password string) (*Principal, error) {
	v.mu.RLock()
	p := v.logins[login]
	v.mu.RUnlock()
	hash := ""
	if p != nil {
		hash = p.hash
	}
	ok, err := v.verifier.Verify(ctx, login, password, hash)
	if err != nil {
		return nil, err
	}
	if !ok || p == nil {
		return nil, ErrBadCredentials
	}
	return p, nil
}
