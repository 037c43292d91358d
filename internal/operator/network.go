package operator

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// ProxyServers lists the proxy server catalogue, by name.
func (s *Service) ProxyServers(ctx context.Context) ([]domain.ProxyServer, error) {
	return s.cfg.Store.ListProxyServers(ctx)
}

// ExitRow is one exit as its node last reported it, described.
type ExitRow struct {
	domain.ExitStatus
	Health   string // "up" or "DOWN", with how long: "DOWN 12s"
	Latency  string // the last check's, or "-"
	Reported string // "3s ago"
}

// Exits lists the exits every node reports, of the proxy server called proxy ("" for all).
func (s *Service) Exits(ctx context.Context, proxy string) ([]ExitRow, error) {
	all, err := s.cfg.Store.ListExitStatuses(ctx)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	rows := make([]ExitRow, 0, len(all))
	for _, e := range all {
		if proxy == "" || e.Proxy == proxy {
			rows = append(rows, ExitRow{ExitStatus: e, Health: exitHealth(e, now), Latency: exitLatency(e), Reported: reportAge(e, now)})
		}
	}
	return rows, nil
}

// Traffic is bytes both ways and requests (forwarded requests and CONNECT tunnels).
type Traffic struct {
	Bytes, Requests int64
}

func (t *Traffic) add(c domain.UsageCounts) {
	t.Bytes += c.BytesIn + c.BytesOut
	t.Requests += c.Requests + c.Tunnels
}

// ProxyRow is one proxy server with its traffic and the health of its exits on every node that
// hosts it.
type ProxyRow struct {
	domain.ProxyServer
	Listed       bool // in the catalogue; false for a proxy server only nodes still report
	Today, Month Traffic
	Exits        []ExitRow
	Up           int // exits in rotation
}

// ProxyBoard is every proxy server, by name, on one day and in its month (UTC).
type ProxyBoard struct {
	Proxies []*ProxyRow
	Today   string // YYYY-MM-DD
	Month   string // YYYY-MM
}

// ProxyBoard describes the catalogue and every proxy server a node reports exits or traffic of,
// with its exits' health and its traffic today and this month: what the nodes have flushed.
func (s *Service) ProxyBoard(ctx context.Context) (ProxyBoard, error) {
	today := s.cfg.Now().UTC().Format(time.DateOnly)
	catalogue, err := s.cfg.Store.ListProxyServers(ctx)
	if err != nil {
		return ProxyBoard{}, err
	}
	exits, err := s.Exits(ctx, "")
	if err != nil {
		return ProxyBoard{}, err
	}
	usage, err := s.cfg.Store.Usage(ctx, domain.UsageFilter{From: today[:8] + "01", To: today})
	if err != nil {
		return ProxyBoard{}, err
	}
	byName := make(map[string]*ProxyRow)
	board := ProxyBoard{Today: today, Month: domain.MonthOf(today)}
	proxy := func(name string) *ProxyRow {
		if p, ok := byName[name]; ok {
			return p
		}
		p := &ProxyRow{ProxyServer: domain.ProxyServer{Name: name}}
		byName[name] = p
		board.Proxies = append(board.Proxies, p)
		return p
	}
	for _, ps := range catalogue {
		p := proxy(ps.Name)
		p.ProxyServer, p.Listed = ps, true
	}
	for _, e := range exits {
		p := proxy(e.Proxy)
		p.Exits = append(p.Exits, e)
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
	slices.SortStableFunc(board.Proxies, func(a, b *ProxyRow) int { return strings.Compare(a.Name, b.Name) })
	return board, nil
}

// Usage returns the usage rows f selects, per day, account, sub-account and proxy server.
func (s *Service) Usage(ctx context.Context, f domain.UsageFilter) ([]domain.UsageRow, error) {
	return s.cfg.Store.Usage(ctx, f)
}

// UsageReport is the usage rows of a filter, and the bandwidth of the month (UTC) against the
// plan's of the filter's account, or of every account.
type UsageReport struct {
	Rows     []domain.UsageRow
	Month    string       // YYYY-MM
	Accounts []AccountRow // the filter's account, or every account by username
}

// UsageReport reports the usage f selects and this month's bandwidth. Without an account in f it
// describes every account, reading them a page at a time.
func (s *Service) UsageReport(ctx context.Context, f domain.UsageFilter) (UsageReport, error) {
	rows, err := s.cfg.Store.Usage(ctx, f)
	if err != nil {
		return UsageReport{}, err
	}
	use, err := s.monthUse(ctx)
	if err != nil {
		return UsageReport{}, err
	}
	report := UsageReport{Rows: rows, Month: use.month.Month}
	if f.Username != "" {
		a, err := s.cfg.Store.GetAccount(ctx, f.Username)
		if err != nil {
			return UsageReport{}, err
		}
		report.Accounts = []AccountRow{use.row(a)}
		return report, nil
	}
	for q := (domain.AccountQuery{}); ; {
		page, err := s.cfg.Store.ListAccounts(ctx, q)
		if err != nil {
			return UsageReport{}, err
		}
		for _, a := range page.Accounts {
			report.Accounts = append(report.Accounts, use.row(a))
		}
		if q.After = page.Next; q.After == "" {
			return report, nil
		}
	}
}

// MaxWhoWindow bounds the window of WhoUsedExit: an abuse complaint names a time, not a season.
const MaxWhoWindow = 7 * 24 * time.Hour

// WhoUsedExit answers an abuse complaint: which accounts and sub-accounts used the exit with IP
// exit (as the complaint gives it: the address origins saw) within window around at — the hours that
// overlap [at-window/2, at+window/2) — and how much.
func (s *Service) WhoUsedExit(ctx context.Context, exit string, at time.Time, window time.Duration) ([]domain.ExitUse, error) {
	ip, err := netip.ParseAddr(strings.TrimSpace(exit))
	if err != nil {
		return nil, domain.Errorf(domain.EINVALID, "The exit %q is not an IP address.", exit)
	}
	if window <= 0 || window > MaxWhoWindow {
		return nil, domain.Errorf(domain.EINVALID, "The window must be positive and at most %s.", MaxWhoWindow)
	}
	if at.IsZero() {
		return nil, domain.Errorf(domain.EINVALID, "Give the time of the complaint.")
	}
	return s.cfg.Store.WhoUsedExit(ctx, ip.Unmap(), at.Add(-window/2), at.Add(window/2))
}

// WebhookDeliveriesShown is how many deliveries the operator's webhooks page lists.
const WebhookDeliveriesShown = 200

// WebhookDeliveries lists the newest webhook deliveries, to the operator's webhooks and to
// accounts', with their state and last attempt.
func (s *Service) WebhookDeliveries(ctx context.Context) ([]domain.WebhookDelivery, error) {
	return s.cfg.Store.ListWebhookDeliveries(ctx, WebhookDeliveriesShown)
}
