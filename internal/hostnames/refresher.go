package hostnames

import (
	"context"
	"errors"
	"fmt"
	"github.com/exitmesh/exitmesh/internal/loop"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// MaxInterval is the longest time between two re-resolutions of a hostname.
const MaxInterval = 5 * time.Minute

// concurrency bounds the lookups a round runs at once.
const concurrency = 8

// Store is the part of domain.Store a Refresher uses.
type Store interface {
	ListAllHostnames(ctx context.Context) ([]domain.AccountHostname, error)
	SetHostnameIP(ctx context.Context, username, hostname string, ip netip.Addr) error
}

// Refresher re-resolves every authorized hostname every Interval and records each address with
// Store.SetHostnameIP: the new address, or an invalid one when the name no longer resolves. When
// a lookup fails otherwise (a timeout, a failing DNS server) the last known address is kept, so a
// resolver outage does not lock customers out.
type Refresher struct {
	Store    Store
	Lookup   LookupFunc    // nil: the system resolver
	Interval time.Duration // at most and by default MaxInterval
	Log      *slog.Logger  // nil: no logs
	// Changed is called after a round in which some address changed, so the local node applies it
	// at once instead of at its next store sync. When it fails it is called again after the next
	// round, moved or not: the store already holds the new address, so no later round would see a
	// move to report. Nil: nothing is called.
	Changed func(ctx context.Context) error

	unapplied atomic.Bool // Changed failed: call it again after the next round

	mu      sync.Mutex              // guards failing
	failing map[hostKey]failureKind // hostnames whose last resolution failed, so each failure is logged once
}

type hostKey struct{ account, hostname string }

type failureKind int

const (
	lookupFailed failureKind = iota + 1 // the lookup failed: the address is unknown
	notFound                            // the name has no address
)

// Run refreshes at once, then every Interval, until ctx ends. A store failure is logged once until
// a refresh works again; lookup failures once per hostname until it resolves again.
func (r *Refresher) Run(ctx context.Context) {
	loop.Loop{Interval: r.interval(), Now: true, Step: r.RefreshOnce, Log: r.log(),
		Failing: "hostname refresh failed", Recovered: "hostname refresh works again"}.Run(ctx)
}

// RefreshOnce re-resolves every hostname once, at most 8 at a time, and records the results. It
// returns the store's errors; lookup failures are logged, not returned.
func (r *Refresher) RefreshOnce(ctx context.Context) error {
	hosts, err := r.Store.ListAllHostnames(ctx)
	if err != nil {
		return fmt.Errorf("list hostnames: %w", err)
	}
	r.forgetRemoved(hosts)
	lookup := r.lookup()
	var (
		wg      sync.WaitGroup
		slots   = make(chan struct{}, concurrency)
		errMu   sync.Mutex
		errs    []error
		changed atomic.Bool
	)
	for _, h := range hosts {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			wg.Wait() // errs is ours again
			return errors.Join(append(errs, ctx.Err())...)
		}
		wg.Go(func() {
			defer func() { <-slots }()
			moved, err := r.refresh(ctx, lookup, h)
			if moved {
				changed.Store(true)
			}
			if err != nil {
				errMu.Lock()
				errs = append(errs, err)
				errMu.Unlock()
			}
		})
	}
	wg.Wait()
	if (changed.Load() || r.unapplied.Load()) && r.Changed != nil {
		err := r.Changed(ctx)
		r.unapplied.Store(err != nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("apply moved addresses: %w", err))
		}
	}
	return errors.Join(errs...)
}

// refresh re-resolves one hostname and records its address, unless the lookup failed. It reports
// whether the address moved.
func (r *Refresher) refresh(ctx context.Context, lookup LookupFunc, h domain.AccountHostname) (bool, error) {
	ip, err := Resolve(ctx, lookup, h.Name)
	switch {
	case errors.Is(err, ErrNotFound):
		r.noteFailure(h, notFound, err)
	case err != nil:
		if ctx.Err() == nil {
			r.noteFailure(h, lookupFailed, err)
		}
		return false, nil
	default:
		r.noteSuccess(h, ip)
	}
	if err := r.Store.SetHostnameIP(ctx, h.Account, h.Name, ip); err != nil {
		return false, fmt.Errorf("set address of %s (account %s): %w", h.Name, h.Account, err)
	}
	return ip != h.IP, nil
}

// noteFailure logs a failure unless the hostname's last resolution failed the same way.
func (r *Refresher) noteFailure(h domain.AccountHostname, kind failureKind, err error) {
	key := hostKey{h.Account, h.Name}
	r.mu.Lock()
	if r.failing == nil {
		r.failing = make(map[hostKey]failureKind)
	}
	prev := r.failing[key]
	r.failing[key] = kind
	r.mu.Unlock()
	if prev == kind {
		return
	}
	if kind == notFound {
		r.log().Info("authorized hostname no longer resolves", "account", h.Account, "hostname", h.Name, "was", h.IP)
	} else {
		r.log().Warn("authorized hostname lookup failed; keeping its last address", "account", h.Account, "hostname", h.Name, "ip", h.IP, "err", err)
	}
}

// noteSuccess logs a hostname that resolves again after failing.
func (r *Refresher) noteSuccess(h domain.AccountHostname, ip netip.Addr) {
	key := hostKey{h.Account, h.Name}
	r.mu.Lock()
	_, failed := r.failing[key]
	delete(r.failing, key)
	r.mu.Unlock()
	if failed {
		r.log().Info("authorized hostname resolves again", "account", h.Account, "hostname", h.Name, "ip", ip)
	}
}

// forgetRemoved drops the failure records of hostnames no longer authorized.
func (r *Refresher) forgetRemoved(hosts []domain.AccountHostname) {
	current := make(map[hostKey]bool, len(hosts))
	for _, h := range hosts {
		current[hostKey{h.Account, h.Name}] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for key := range r.failing {
		if !current[key] {
			delete(r.failing, key)
		}
	}
}

func (r *Refresher) interval() time.Duration {
	if r.Interval <= 0 || r.Interval > MaxInterval {
		return MaxInterval
	}
	return r.Interval
}

func (r *Refresher) lookup() LookupFunc {
	if r.Lookup == nil {
		return NewLookup("")
	}
	return r.Lookup
}

func (r *Refresher) log() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}
