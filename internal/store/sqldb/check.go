package sqldb

import (
	"net/netip"
	"slices"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// The errors a person can cause, worded for that person.

func errAccountNotFound(username string) error {
	return domain.Errorf(domain.ENOTFOUND, "Account %q not found.", username)
}

var (
	errSubNotFound     = domain.Errorf(domain.ENOTFOUND, "Sub-account not found.")
	errUsernameTaken   = domain.Errorf(domain.ECONFLICT, "Username is already taken.")
	errPasswordMissing = domain.Errorf(domain.EINVALID, "Password is required.")
	errIPTaken         = domain.Errorf(domain.ECONFLICT, "IP address is already authorized.")
	errIPNotAuthorized = domain.Errorf(domain.EINVALID, "IP address is not authorized.")
	errProxyTaken      = domain.Errorf(domain.ECONFLICT, "Proxy server is already authorized.")
)

func errUnknownPlan(name string) error {
	return domain.Errorf(domain.EINVALID, "Unknown plan %q.", name)
}

func errUnknownProxy(name string) error {
	return domain.Errorf(domain.EINVALID, "Unknown proxy server %q.", name)
}

func errProxyNotOnAccount(name string) error {
	return domain.Errorf(domain.EINVALID, "Proxy server %q is not authorized for this account.", name)
}

func errIPNotOnAccount(ip netip.Addr) error {
	return domain.Errorf(domain.EINVALID, "IP address %s is not authorized for this account.", ip)
}

// errLimit says which plan limit an addition would exceed.
func errLimit(plan domain.Plan, limit int, one, many string) error {
	what := many
	if limit == 1 {
		what = one
	}
	return domain.Errorf(domain.ELIMIT, "Your plan %q allows %d %s; upgrade your plan to add more.", plan.Name, limit, what)
}

func errProxyLimit(p domain.Plan) error {
	return errLimit(p, p.MaxProxies, "proxy server", "proxy servers")
}

func errIPLimit(p domain.Plan) error {
	return errLimit(p, p.MaxIPs, "IP address", "IP addresses")
}

func errSubLimit(p domain.Plan) error {
	return errLimit(p, p.MaxSubs, "sub-account", "sub-accounts")
}

// checkIP returns ip in the form it is stored in: IPv4-mapped IPv6 unmapped, zone dropped.
func checkIP(ip netip.Addr) (netip.Addr, error) {
	if !ip.IsValid() {
		return netip.Addr{}, domain.Errorf(domain.EINVALID, "Invalid IP address.")
	}
	ip = ip.Unmap().WithZone("")
	if ip.IsUnspecified() {
		return netip.Addr{}, domain.Errorf(domain.EINVALID, "IP address %s cannot be authorized.", ip)
	}
	return ip, nil
}

// checkIPs checks every address and returns them sorted without duplicates.
func checkIPs(ips []netip.Addr) ([]netip.Addr, error) {
	out := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		ip, err := checkIP(ip)
		if err != nil {
			return nil, err
		}
		out = append(out, ip)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out), nil
}

// uniqueSorted returns names sorted without duplicates, leaving names untouched.
func uniqueSorted(names []string) []string {
	return slices.Compact(slices.Sorted(slices.Values(names)))
}

// checkPassword rejects an empty password hash.
func checkPassword(hash string) error {
	if hash == "" {
		return errPasswordMissing
	}
	return nil
}

// checkNewLogin validates what an account and a sub-account both need at creation, and returns the
// IPs normalized.
func checkNewLogin(username, passwordHash string, ips []netip.Addr) ([]netip.Addr, error) {
	if err := domain.ValidateUsername(username); err != nil {
		return nil, err
	}
	if err := checkPassword(passwordHash); err != nil {
		return nil, err
	}
	return checkIPs(ips)
}
