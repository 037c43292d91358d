package web

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/operator"
)

// opsProxy is one proxy server on the proxies page: its catalogue entry, its traffic, and the
// health of its exits on every node that hosts it.
type opsProxy struct {
	domain.ProxyServer
	Listed       bool // in the catalogue; false for a proxy server only nodes still report
	Today, Month opsTraffic
	Exits        []opsExit
	Up           int // exits in rotation
}

// opsTraffic is bytes both ways and requests (forwarded requests and CONNECT tunnels).
type opsTraffic struct {
	Bytes, Requests int64
}

func (t *opsTraffic) add(c domain.UsageCounts) {
	t.Bytes += c.BytesIn + c.BytesOut
	t.Requests += c.Requests + c.Tunnels
}

// opsExit is one exit as a node last reported it, in the words of exitmesh admin exits.
type opsExit struct {
	domain.ExitStatus
	Health, Latency, Reported string
}

// opsProxiesPage shows the catalogue with each proxy server's exits' health board and traffic
// today and this month (UTC).
func (s *Server) opsProxiesPage(w http.ResponseWriter, r *http.Request, v *visitor) {
	ctx := r.Context()
	now := time.Now()
	today := now.UTC().Format(time.DateOnly)
	catalogue, err := s.cfg.Store.ListProxyServers(ctx)
	var statuses []domain.ExitStatus
	if err == nil {
		statuses, err = s.cfg.Store.ListExitStatuses(ctx)
	}
	var usage []domain.UsageRow
	if err == nil {
		usage, err = s.cfg.Store.Usage(ctx, domain.UsageFilter{From: today[:8] + "01", To: today})
	}
	if err != nil {
		s.opsPageFailed(w, r, v, err)
		return
	}
	byName := make(map[string]*opsProxy)
	var proxies []*opsProxy
	proxy := func(name string) *opsProxy {
		if p, ok := byName[name]; ok {
			return p
		}
		p := &opsProxy{ProxyServer: domain.ProxyServer{Name: name}}
		byName[name] = p
		proxies = append(proxies, p)
		return p
	}
	for _, ps := range catalogue {
		p := proxy(ps.Name)
		p.ProxyServer, p.Listed = ps, true
	}
	for _, e := range statuses {
		p := proxy(e.Proxy)
		p.Exits = append(p.Exits, opsExit{ExitStatus: e, Health: operator.ExitHealth(e, now),
			Latency: operator.ExitLatency(e), Reported: operator.ReportAge(e, now)})
		if e.Healthy {
			p.Up++
		}
	}
	for _, u := range usage {
		p := proxy(u.Proxy)
		p.Month.add(u.UsageCounts)
		if u.Day == today {
			p.Today.add(u.UsageCounts)
		}
	}
	slices.SortStableFunc(proxies, func(a, b *opsProxy) int { return strings.Compare(a.Name, b.Name) })
	s.render(w, http.StatusOK, "ops_proxies", v, page{Title: "Proxy servers", Nav: "ops-proxies", Data: struct {
		Proxies      []*opsProxy
		Today, Month string
	}{proxies, today, today[:7]}})
}
