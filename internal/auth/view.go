// Package auth decides who a proxy client is — an account or sub-account by Basic credentials, or an
// account by its authorized source IP — from an in-memory view of the store. The view is rebuilt
// whenever the store's version changes, so the proxy hot path never waits for the database.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// ErrBadCredentials means the username is unknown or the password does not match.
var ErrBadCredentials = errors.New("invalid proxy credentials")

// Principal is who a proxy request acts for: an account, or one of its sub-accounts.
type Principal struct {
	AccountID int64
	SubID     int64  // 0 when the account itself
	Login     string // the username that authenticated
	Account   string // the account's username
	Disabled  bool   // account disabled, or sub-account inactive
	proxies   map[string]struct{}
	hash      string
}

// MayUse reports whether the principal has authorized the proxy server named proxy.
func (p *Principal) MayUse(proxy string) bool {
	_, ok := p.proxies[proxy]
	return ok
}

type index struct {
	version int64
	logins  map[string]*Principal
	ips     map[netip.Addr]*Principal
}

// maxCached bounds the verified-credential cache; when full it starts over.
const maxCached = 100_000

// View is the proxy's read-only picture of accounts. The zero View is not usable; call NewView.
type View struct {
	idx atomic.Pointer[index]

	cacheKey [32]byte
	mu       sync.Mutex          // guards verified
	verified map[[32]byte]string // digest of (login, password) → the hash it was verified against

	// slots bounds concurrent argon2 verifications: each takes ~19 MiB and tens of milliseconds,
	// and wrong passwords are never cached.
	slots chan struct{}
}

// NewView returns an empty view: every login is unknown until Load.
func NewView() *View {
	v := &View{verified: make(map[[32]byte]string), slots: make(chan struct{}, runtime.GOMAXPROCS(0))}
	rand.Read(v.cacheKey[:])
	v.idx.Store(&index{version: -1})
	return v
}

// Version returns the store version the view was built from (-1 before the first Load).
func (v *View) Version() int64 { return v.idx.Load().version }

// Load replaces the view with one built from s.
func (v *View) Load(s domain.Snapshot) {
	idx := &index{
		version: s.Version,
		logins:  make(map[string]*Principal, len(s.Accounts)+len(s.Subs)),
		ips:     make(map[netip.Addr]*Principal),
	}
	byID := make(map[int64]*Principal, len(s.Accounts))
	for _, a := range s.Accounts {
		p := &Principal{AccountID: a.ID, Login: a.Username, Account: a.Username, Disabled: a.Disabled,
			proxies: set(a.Proxies), hash: a.PasswordHash}
		idx.logins[a.Username] = p
		byID[a.ID] = p
		for _, ip := range a.IPs {
			idx.ips[ip] = p
		}
	}
	subIPs := make(map[netip.Addr][]*Principal)
	for _, s := range s.Subs {
		parent, ok := byID[s.AccountID]
		if !ok {
			continue
		}
		p := &Principal{AccountID: s.AccountID, SubID: s.ID, Login: s.Username, Account: parent.Account,
			Disabled: parent.Disabled || !s.Active, proxies: set(s.Proxies), hash: s.PasswordHash}
		idx.logins[s.Username] = p
		for _, ip := range s.IPs {
			subIPs[ip] = append(subIPs[ip], p)
		}
	}
	// An IP listed by exactly one sub-account authenticates as that sub-account (its proxy subset and
	// its usage); listed by several, it stays the account's.
	for ip, subs := range subIPs {
		if len(subs) == 1 {
			idx.ips[ip] = subs[0]
		}
	}
	v.idx.Store(idx)
}

func set(names []string) map[string]struct{} {
	m := make(map[string]struct{}, len(names))
	for _, n := range names {
		m[n] = struct{}{}
	}
	return m
}

// ByIP returns the principal whose authorized IP is ip.
func (v *View) ByIP(ip netip.Addr) (*Principal, bool) {
	p, ok := v.idx.Load().ips[ip.Unmap()]
	return p, ok
}

// Authenticate checks a login and password. Credentials verified before against the same password
// hash are answered from memory; others pay one argon2id verification (also for unknown logins, so
// timing does not reveal which logins exist).
func (v *View) Authenticate(ctx context.Context, login, password string) (*Principal, error) {
	p := v.idx.Load().logins[login]
	key := v.digest(login, password)
	if p != nil && v.cachedHash(key) == p.hash {
		return p, nil
	}
	select {
	case v.slots <- struct{}{}:
		defer func() { <-v.slots }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	hash := dummyHash()
	if p != nil {
		hash = p.hash
	}
	ok, err := CheckPassword(hash, password)
	if err != nil || !ok || p == nil {
		return nil, ErrBadCredentials
	}
	v.remember(key, p.hash)
	return p, nil
}

func (v *View) digest(login, password string) [32]byte {
	h := sha256.New()
	h.Write(v.cacheKey[:])
	h.Write([]byte(login))
	h.Write([]byte{0})
	h.Write([]byte(password))
	var d [32]byte
	h.Sum(d[:0])
	return d
}

func (v *View) cachedHash(key [32]byte) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	h, ok := v.verified[key]
	if !ok {
		return "\x00" // matches no stored hash
	}
	return h
}

func (v *View) remember(key [32]byte, hash string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.verified) >= maxCached {
		clear(v.verified)
	}
	v.verified[key] = hash
}

// dummyHash is verified against when a login is unknown, so that answer takes as long as a wrong password.
var dummyHash = sync.OnceValue(func() string {
	h, err := HashPassword("exitmesh-unknown-login")
	if err != nil {
		panic(err)
	}
	return h
})
