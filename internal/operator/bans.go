package operator

import (
	"context"
	"net/netip"
	"strings"

	"github.com/exitmesh/exitmesh/internal/bans"
	"github.com/exitmesh/exitmesh/internal/domain"
)

// BanRow is a ban in force with how long it still lasts.
type BanRow struct {
	domain.Ban
	Left string // "14 more minutes"
}

// BansPage is a page of the bans in force.
type BansPage struct {
	Bans []BanRow
	Next string // the IP the next page starts after; "" after the last page
}

// BansPage returns the page of bans q selects that are still in force (EINVALID for a prefix that
// cannot start an IP).
func (s *Service) BansPage(ctx context.Context, q domain.BanQuery) (BansPage, error) {
	page, err := s.cfg.Store.ListBansPage(ctx, q)
	if err != nil {
		return BansPage{}, err
	}
	now := s.cfg.Now()
	rows := make([]BanRow, 0, len(page.Bans))
	for _, b := range page.Bans {
		if left := b.Until.Sub(now); left > 0 {
			rows = append(rows, BanRow{Ban: b, Left: bans.Remaining(left)})
		}
	}
	return BansPage{Bans: rows, Next: page.Next}, nil
}

// LiftBan ends the ban of the IP address ip for the whole network (ENOTFOUND if none is in force;
// a field error "ip" if ip is not an address) and returns the address. The store forgets the ban
// now, this node's tracker at once, and every other node within a sync interval (its ban sharing
// reconciles with the store).
func (s *Service) LiftBan(ctx context.Context, ip string) (netip.Addr, error) {
	addr, err := netip.ParseAddr(strings.TrimSpace(ip))
	if err != nil {
		return netip.Addr{}, domain.FieldError("ip", "Invalid IP address.")
	}
	if err := s.cfg.Store.LiftBan(ctx, addr); err != nil {
		return netip.Addr{}, err
	}
	s.cfg.Bans.Unban(addr)
	s.cfg.Changed(ctx)
	return addr.Unmap(), nil
}
