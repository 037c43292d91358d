package api

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/hostnames"
)

// resolveTimeout bounds the DNS lookup of a hostname being added.
const resolveTimeout = 5 * time.Second

func (s *Server) callerIP(c *call) (any, error) {
	return map[string]string{"ip": c.ip.String()}, nil
}

func (s *Server) listIPs(c *call) (any, error) {
	return map[string][]string{"ips": addrStrings(c.account.IPs)}, nil
}

func addrStrings(ips []netip.Addr) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}

func (s *Server) addIP(c *call) (any, error) {
	ip := c.ip
	if v := c.params.one("ip"); v != "" {
		fe := formErrors{}
		ips := fe.ips("ip", []string{v})
		if err := fe.err(); err != nil {
			return nil, err
		}
		ip = ips[0]
	}
	if err := s.cfg.Store.AddIP(c.r.Context(), c.account.Username, ip); err != nil {
		return nil, err
	}
	return map[string]string{"ip": ip.String()}, nil
}

func (s *Server) deleteIP(c *call) (any, error) {
	fe := formErrors{}
	ips := fe.ips("ip", []string{fe.requireOne(c.params, "ip")})
	if err := fe.err(); err != nil {
		return nil, err
	}
	return nil, s.cfg.Store.RemoveIP(c.r.Context(), c.account.Username, ips[0])
}

type hostnameJSON struct {
	Hostname string `json:"hostname"`
	IP       string `json:"ip"` // "" while the hostname does not resolve
}

func hostnameOut(h domain.Hostname) hostnameJSON {
	out := hostnameJSON{Hostname: h.Name}
	if h.IP.IsValid() {
		out.IP = h.IP.String()
	}
	return out
}

func (s *Server) listHostnames(c *call) (any, error) {
	out := make([]hostnameJSON, len(c.account.Hostnames))
	for i, h := range c.account.Hostnames {
		out[i] = hostnameOut(h)
	}
	return map[string][]hostnameJSON{"hostnames": out}, nil
}

func (s *Server) addHostname(c *call) (any, error) {
	fe := formErrors{}
	name := fe.requireOne(c.params, "hostname")
	if err := fe.err(); err != nil {
		return nil, err
	}
	if err := domain.ValidateHostname(name); err != nil {
		return nil, fieldError("hostname", domain.ErrorMessage(err))
	}
	if slices.ContainsFunc(c.account.Hostnames, func(h domain.Hostname) bool { return h.Name == normalizeHostname(name) }) {
		return nil, newError(http.StatusBadRequest, "Hostname is already authorized.") // before the lookup
	}
	ctx, cancel := context.WithTimeout(c.r.Context(), resolveTimeout)
	defer cancel()
	ip, err := hostnames.Resolve(ctx, s.cfg.Lookup, name)
	if err != nil {
		return nil, fieldError("hostname", fmt.Sprintf("%s does not resolve to an IP address.", name))
	}
	if err := s.cfg.Store.AddHostname(c.r.Context(), c.account.Username, name, ip); err != nil {
		return nil, err
	}
	return hostnameOut(domain.Hostname{Name: normalizeHostname(name), IP: ip}), nil
}

func (s *Server) deleteHostname(c *call) (any, error) {
	fe := formErrors{}
	name := fe.requireOne(c.params, "hostname")
	if err := fe.err(); err != nil {
		return nil, err
	}
	return nil, s.cfg.Store.RemoveHostname(c.r.Context(), c.account.Username, name)
}

// catalogue is the proxy server catalogue, to translate between names and customer addresses.
type catalogue []domain.ProxyServer

func (s *Server) catalogue(ctx context.Context) (catalogue, error) {
	return s.cfg.Store.ListProxyServers(ctx)
}

// find accepts a proxy server's name or its address.
func (cat catalogue) find(nameOrAddress string) (domain.ProxyServer, bool) {
	for _, p := range cat {
		if p.Name == nameOrAddress || p.Address == nameOrAddress {
			return p, true
		}
	}
	return domain.ProxyServer{}, false
}

// addresses turns proxy server names into the addresses customers are told.
func (cat catalogue) addresses(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if p, ok := cat.find(n); ok {
			out = append(out, p.Address)
		}
	}
	return out
}

func (s *Server) listProxies(c *call) (any, error) {
	cat, err := s.catalogue(c.r.Context())
	if err != nil {
		return nil, err
	}
	return map[string][]string{"proxies": cat.addresses(c.account.Proxies)}, nil
}

type proxyJSON struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Country string `json:"country"`
}

func (s *Server) availableProxies(c *call) (any, error) {
	cat, err := s.catalogue(c.r.Context())
	if err != nil {
		return nil, err
	}
	out := make([]proxyJSON, len(cat))
	for i, p := range cat {
		out[i] = proxyJSON{Name: p.Name, Address: p.Address, Country: p.Country}
	}
	return map[string][]proxyJSON{"proxies": out}, nil
}

// proxyParam reads the "proxy" parameter and finds it in the catalogue (row 15 when unknown).
func (s *Server) proxyParam(c *call) (domain.ProxyServer, error) {
	fe := formErrors{}
	v := fe.requireOne(c.params, "proxy")
	if err := fe.err(); err != nil {
		return domain.ProxyServer{}, err
	}
	cat, err := s.catalogue(c.r.Context())
	if err != nil {
		return domain.ProxyServer{}, err
	}
	p, ok := cat.find(v)
	if !ok {
		return p, newError(http.StatusBadRequest, fmt.Sprintf("Proxy server %q is not recognized; see /api/proxies/available/.", v))
	}
	return p, nil
}

func (s *Server) addProxy(c *call) (any, error) {
	p, err := s.proxyParam(c)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.AuthorizeProxy(c.r.Context(), c.account.Username, p.Name); err != nil {
		return nil, err
	}
	return map[string]string{"proxy": p.Address}, nil
}

func (s *Server) deleteProxy(c *call) (any, error) {
	p, err := s.proxyParam(c)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(c.account.Proxies, p.Name) {
		return nil, newError(http.StatusBadRequest, fmt.Sprintf("Proxy server %q is not on your account.", p.Address))
	}
	return nil, s.cfg.Store.RevokeProxy(c.r.Context(), c.account.Username, p.Name)
}

type usageJSON struct {
	Day        string `json:"day"`
	Proxy      string `json:"proxy"`
	SubAccount string `json:"sub_account"` // "" for the account's own traffic
	BytesIn    int64  `json:"bytes_in"`
	BytesOut   int64  `json:"bytes_out"`
	Requests   int64  `json:"requests"`
	Tunnels    int64  `json:"tunnels"`
}

func (s *Server) usage(c *call) (any, error) {
	fe := formErrors{}
	from, to := c.params.one("from"), c.params.one("to")
	for field, v := range map[string]string{"from": from, "to": to} {
		if _, err := time.Parse(time.DateOnly, v); v != "" && err != nil {
			fe.add(field, "Enter a date as YYYY-MM-DD.")
		}
	}
	if err := fe.err(); err != nil {
		return nil, err
	}
	rows, err := s.cfg.Store.Usage(c.r.Context(), domain.UsageFilter{Username: c.account.Username, From: from, To: to})
	if err != nil {
		return nil, err
	}
	out := make([]usageJSON, len(rows))
	for i, r := range rows {
		out[i] = usageJSON{Day: r.Day, Proxy: r.Proxy, SubAccount: r.SubAccount, BytesIn: r.BytesIn,
			BytesOut: r.BytesOut, Requests: r.Requests, Tunnels: r.Tunnels}
	}
	bw, err := s.bandwidth(c, time.Now().UTC())
	if err != nil {
		return nil, err
	}
	return map[string]any{"usage": out, "bandwidth": bw}, nil
}

// bandwidthJSON is the account's bandwidth in the calendar month (UTC) against its plan's.
type bandwidthJSON struct {
	Month string `json:"month"` // YYYY-MM
	Used  int64  `json:"used"`  // bytes in + bytes out, sub-accounts included, as flushed by the nodes
	Limit int64  `json:"limit"` // the plan's monthly bandwidth; 0 = unlimited
}

// bandwidth sums the account's usage rows of the month of now.
func (s *Server) bandwidth(c *call, now time.Time) (bandwidthJSON, error) {
	first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	rows, err := s.cfg.Store.Usage(c.r.Context(), domain.UsageFilter{Username: c.account.Username,
		From: first.Format(time.DateOnly), To: first.AddDate(0, 1, -1).Format(time.DateOnly)})
	if err != nil {
		return bandwidthJSON{}, err
	}
	bw := bandwidthJSON{Month: first.Format("2006-01"), Limit: c.plan.MonthlyBandwidth}
	for _, r := range rows {
		bw.Used += r.BytesIn + r.BytesOut
	}
	return bw, nil
}
