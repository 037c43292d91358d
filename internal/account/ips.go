package account

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// ParseIPs parses addresses a person typed, reporting each malformed one under field.
func ParseIPs(fe domain.FormErrors, field string, values []string) []netip.Addr {
	out := make([]netip.Addr, 0, len(values))
	for _, v := range values {
		ip, err := netip.ParseAddr(v)
		if err != nil {
			fe.Add(field, fmt.Sprintf("%q is not a valid IPv4 or IPv6 address.", v))
			continue
		}
		out = append(out, ip.Unmap())
	}
	return out
}

// parseIP parses the one address of the field "ip".
func parseIP(v string) (netip.Addr, error) {
	if v == "" {
		return netip.Addr{}, domain.FieldError("ip", MsgRequired)
	}
	fe := domain.FormErrors{}
	ips := ParseIPs(fe, "ip", []string{v})
	if err := fe.Err(); err != nil {
		return netip.Addr{}, err
	}
	return ips[0], nil
}

// MsgRequired is the message of a required field left empty.
const MsgRequired = "This field is required."

// IPs lists the authorized IPs of the account, or of its sub-account sub.
func (s *Service) IPs(ctx context.Context, c *Caller, sub string) ([]netip.Addr, error) {
	t, err := s.target(ctx, c, sub)
	if err != nil {
		return nil, err
	}
	if t.sub != nil {
		return t.sub.IPs, nil
	}
	return c.Account.IPs, nil
}

// AddIP authorizes ip (text as typed; "" means from, the caller's own address) for the account, or
// for its sub-account sub: a sub-account's IPs are some of its account's.
func (s *Service) AddIP(ctx context.Context, c *Caller, sub, ip string, from netip.Addr) (netip.Addr, error) {
	t, err := s.target(ctx, c, sub)
	if err != nil {
		return netip.Addr{}, err
	}
	addr := from.Unmap()
	if ip != "" {
		if addr, err = parseIP(ip); err != nil {
			return addr, err
		}
	}
	if t.sub == nil {
		if err := s.cfg.Store.AddIP(ctx, c.Account.Username, addr); err != nil {
			return addr, err
		}
		s.changed(ctx)
		return addr, nil
	}
	switch {
	case slices.Contains(t.sub.IPs, addr):
		return addr, domain.Errorf(domain.ECONFLICT, "IP address is already authorized.")
	case !slices.Contains(c.Account.IPs, addr):
		return addr, domain.Errorf(domain.EINVALID, "%s is not one of your account's authorized IPs; authorize it for the account first.", addr)
	}
	ips := append(slices.Clone(t.sub.IPs), addr)
	_, err = s.updateSub(ctx, t, domain.SubAccountUpdate{IPs: &ips})
	return addr, err
}

// RemoveIP takes ip off the account's authorized IPs (and its sub-accounts'), or off those of its
// sub-account sub only.
func (s *Service) RemoveIP(ctx context.Context, c *Caller, sub, ip string) error {
	t, err := s.target(ctx, c, sub)
	if err != nil {
		return err
	}
	addr, err := parseIP(ip)
	if err != nil {
		return err
	}
	if t.sub == nil {
		if err := s.cfg.Store.RemoveIP(ctx, c.Account.Username, addr); err != nil {
			return err
		}
		s.changed(ctx)
		return nil
	}
	if !slices.Contains(t.sub.IPs, addr) {
		return domain.Errorf(domain.EINVALID, "IP address is not authorized.")
	}
	ips := slices.DeleteFunc(slices.Clone(t.sub.IPs), func(a netip.Addr) bool { return a == addr })
	_, err = s.updateSub(ctx, t, domain.SubAccountUpdate{IPs: &ips})
	return err
}
