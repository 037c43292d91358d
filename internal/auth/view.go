// Package auth decides who a proxy client is — an account or sub-account by Basic credentials, or an
// account by its authorized source IP — from an in-memory view of the store. The view is rebuilt
// whenever the store's version changes, so the proxy hot path never waits for the database.
package auth

import (
	"context"
	"errors"
	"net/netip"
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
	Bandwidth int64  // the account's plan's monthly bandwidth in bytes; 0 = unlimited
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

// View is the proxy's read-only picture of accounts. The zero View is not usable; call NewView.
type View struct {
	idx      atomic.Pointer[index]
	verifier *Verifier
}

// NewView returns an empty view that checks passwords with verifier (nil: a new one).
func NewView(verifier *Verifier) *View {
	if verifier == nil {
		verifier = NewVerifier()
	}
	v := &View{verifier: verifier}
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
	bandwidth := make(map[string]int64, len(s.Plans))
	for _, p := range s.Plans {
		bandwidth[p.Name] = p.MonthlyBandwidth
	}
	byID := make(map[int64]*Principal, len(s.Accounts))
	for _, a := range s.Accounts {
		p := &Principal{AccountID: a.ID, Login: a.Username, Account: a.Username, Disabled: a.Disabled,
			Bandwidth: bandwidth[a.Plan], proxies: set(a.Proxies), hash: a.PasswordHash}
		idx.logins[a.Username] = p
		byID[a.ID] = p
		for _, ip := range a.IPs {
			idx.ips[ip] = p
		}
	}
	// An authorized hostname's current address authenticates its account, unless that address is
	// some account's authorized IP: an explicit IP is the stronger claim.
	for i, a := range s.Accounts {
		for _, h := range a.Hostnames {
			if _, taken := idx.ips[h.IP]; h.IP.IsValid() && !taken {
				idx.ips[h.IP] = byID[s.Accounts[i].ID]
			}
		}
	}
	subIPs := make(map[netip.Addr][]*Principal)
	for _, s := range s.Subs {
		parent, ok := byID[s.AccountID]
		if !ok {
			continue
		}
		p := &Principal{AccountID: s.AccountID, SubID: s.ID, Login: s.Username, Account: parent.Account,
			Disabled: parent.Disabled || !s.Active, Bandwidth: parent.Bandwidth, proxies: set(s.Proxies), hash: s.PasswordHash}
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

// Authenticate checks a login and password against the view.
func (v *View) Authenticate(ctx context.Context, login, password string) (*Principal, error) {
	p := v.idx.Load().logins[login]
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
