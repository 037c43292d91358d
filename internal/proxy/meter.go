package proxy

import (
	"net/netip"
	"sync"
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/metrics"
)

// Live metering (SPEC §2.11): a tunnel, an upgraded connection or a long answer is counted while it
// runs, not only when it ends, so one transfer cannot overshoot a bandwidth limit by its whole size.
// Every MeterInterval the meter adds what each open transfer moved since the last look to the usage
// recorder (bytes only: the request or tunnel itself is counted once, when it ends), then checks the
// limits covering its login; a login with a spent limit has its open transfers cut. The bound on what
// a login can move past a limit on this node is what it moves in one interval plus one splice burst
// (docs/SECURITY.md).
//
// The meter runs one goroutine per proxy server, and only while transfers are open: the first one
// starts it, and it ends at the tick that finds none.

// transfer is one open tunnel or answer being metered.
type transfer struct {
	p     *auth.Principal
	exit  netip.Addr
	moved func() (up, down int64) // what it has moved so far
	cut   func()                  // ends it

	mu                       sync.Mutex // guards the following fields
	reportedUp, reportedDown int64
	ended                    bool
}

type meter struct {
	mu      sync.Mutex // guards the following fields
	open    map[*transfer]struct{}
	running bool
}

// longAnswer is the size beyond which an answer is metered while it streams; one of unknown length
// always is. A shorter one is counted when it ends, like a request.
const longAnswer = 1 << 20

// startTransfer meters a transfer of p until finishTransfer; nil (nothing metered) without a usage
// recorder.
func (s *Server) startTransfer(p *auth.Principal, exit netip.Addr, moved func() (int64, int64), cut func()) *transfer {
	if s.cfg.Usage == nil {
		return nil
	}
	t := &transfer{p: p, exit: exit, moved: moved, cut: cut}
	m := &s.meter
	m.mu.Lock()
	if m.open == nil {
		m.open = make(map[*transfer]struct{})
	}
	m.open[t] = struct{}{}
	start := !m.running
	m.running = true
	m.mu.Unlock()
	if start {
		go s.runMeter()
	}
	return t
}

// finishTransfer stops metering t and returns what it moved that the meter has not reported, given
// its final totals. A nil t reported nothing.
func (s *Server) finishTransfer(t *transfer, up, down int64) (restUp, restDown int64) {
	if t == nil {
		return up, down
	}
	s.meter.mu.Lock()
	delete(s.meter.open, t)
	s.meter.mu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ended = true
	return up - t.reportedUp, down - t.reportedDown
}

// runMeter reports and checks the open transfers every MeterInterval until none is open.
func (s *Server) runMeter() {
	tick := time.NewTicker(s.cfg.MeterInterval)
	defer tick.Stop()
	for range tick.C {
		m := &s.meter
		m.mu.Lock()
		if len(m.open) == 0 {
			m.running = false
			m.mu.Unlock()
			return
		}
		open := make([]*transfer, 0, len(m.open))
		for t := range m.open {
			open = append(open, t)
		}
		m.mu.Unlock()
		for _, t := range open {
			s.report(t)
		}
		for _, t := range open {
			// The limits as they are now: the login's account may have changed since the transfer began.
			if rf := s.checkBandwidth(s.cfg.Accounts.Current(t.p)); rf != nil {
				s.cutTransfer(t)
			}
		}
	}
}

// report adds what t moved since the last report to the login's usage.
func (s *Server) report(t *transfer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return
	}
	up, down := t.moved()
	in, out := up-t.reportedUp, down-t.reportedDown
	if in == 0 && out == 0 {
		return
	}
	t.reportedUp, t.reportedDown = up, down
	s.cfg.Usage.Add(usageLogin(t.p), s.cfg.Name, t.exit, domain.UsageCounts{BytesIn: in, BytesOut: out})
}

// cutTransfer ends a transfer whose login has spent a limit.
func (s *Server) cutTransfer(t *transfer) {
	t.mu.Lock()
	ended := t.ended
	t.mu.Unlock()
	if ended {
		return
	}
	s.metrics.Limits.Hit(metrics.LimitBandwidth)
	s.log.Info("transfer cut: bandwidth limit spent", "login", t.p.Login)
	t.cut()
}
