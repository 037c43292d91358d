package api

import (
	"net/netip"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// The endpoints: each reads its parameters, calls the account service and encodes what it returns.
// "username" names the sub-account a parent acts on (API.md §1).

func (s *Server) callerIP(c *call) (any, error) {
	return map[string]string{"ip": c.ip.String()}, nil
}

func (s *Server) listIPs(c *call) (any, error) {
	ips, err := s.cfg.Accounts.IPs(c.r.Context(), c.caller, c.params.one("username"))
	if err != nil {
		return nil, err
	}
	return map[string][]string{"ips": addrStrings(ips)}, nil
}

func addrStrings(ips []netip.Addr) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}

func (s *Server) addIP(c *call) (any, error) {
	ip, err := s.cfg.Accounts.AddIP(c.r.Context(), c.caller, c.params.one("username"), c.params.one("ip"), c.ip)
	if err != nil {
		return nil, err
	}
	return map[string]string{"ip": ip.String()}, nil
}

func (s *Server) deleteIP(c *call) (any, error) {
	return nil, s.cfg.Accounts.RemoveIP(c.r.Context(), c.caller, c.params.one("username"), c.params.one("ip"))
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
	hs, err := s.cfg.Accounts.Hostnames(c.r.Context(), c.caller, c.params.one("username"))
	if err != nil {
		return nil, err
	}
	out := make([]hostnameJSON, len(hs))
	for i, h := range hs {
		out[i] = hostnameOut(h)
	}
	return map[string][]hostnameJSON{"hostnames": out}, nil
}

func (s *Server) addHostname(c *call) (any, error) {
	h, err := s.cfg.Accounts.AddHostname(c.r.Context(), c.caller, c.params.one("username"), c.params.one("hostname"))
	if err != nil {
		return nil, err
	}
	return hostnameOut(h), nil
}

func (s *Server) deleteHostname(c *call) (any, error) {
	return nil, s.cfg.Accounts.RemoveHostname(c.r.Context(), c.caller, c.params.one("username"), c.params.one("hostname"))
}

func (s *Server) listProxies(c *call) (any, error) {
	ps, err := s.cfg.Accounts.Proxies(c.r.Context(), c.caller, c.params.one("username"))
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Address
	}
	return map[string][]string{"proxies": out}, nil
}

type proxyJSON struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Country string `json:"country"`
	// What its exits offer to steering; [] rather than null when none says.
	Countries []string `json:"countries"`
	Regions   []string `json:"regions"`
	Cities    []string `json:"cities"`
	ASNs      []uint32 `json:"asns"`
}

func (s *Server) availableProxies(c *call) (any, error) {
	cat, err := s.cfg.Accounts.Catalogue(c.r.Context())
	if err != nil {
		return nil, err
	}
	out := make([]proxyJSON, len(cat))
	for i, p := range cat {
		out[i] = proxyJSON{Name: p.Name, Address: p.Address, Country: p.Country, // appends make [] of nil
			Countries: append([]string{}, p.Countries...), Regions: append([]string{}, p.Regions...),
			Cities: append([]string{}, p.Cities...), ASNs: append([]uint32{}, p.ASNs...)}
	}
	return map[string][]proxyJSON{"proxies": out}, nil
}

func (s *Server) addProxy(c *call) (any, error) {
	p, err := s.cfg.Accounts.AddProxy(c.r.Context(), c.caller, c.params.one("username"), c.params.one("proxy"))
	if err != nil {
		return nil, err
	}
	return map[string]string{"proxy": p.Address}, nil
}

func (s *Server) deleteProxy(c *call) (any, error) {
	return nil, s.cfg.Accounts.RemoveProxy(c.r.Context(), c.caller, c.params.one("username"), c.params.one("proxy"))
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

// bandwidthJSON is the account's bandwidth in the calendar month (UTC) against its plan's.
type bandwidthJSON struct {
	Month string `json:"month"` // YYYY-MM
	Used  int64  `json:"used"`  // bytes in + bytes out, sub-accounts included, as flushed by the nodes
	Limit int64  `json:"limit"` // the plan's monthly bandwidth; 0 = unlimited
}

func (s *Server) usage(c *call) (any, error) {
	rep, err := s.cfg.Accounts.Usage(c.r.Context(), c.caller, c.params.one("username"), c.params.one("from"), c.params.one("to"))
	if err != nil {
		return nil, err
	}
	out := make([]usageJSON, len(rep.Rows))
	for i, r := range rep.Rows {
		out[i] = usageJSON{Day: r.Day, Proxy: r.Proxy, SubAccount: r.SubAccount, BytesIn: r.BytesIn,
			BytesOut: r.BytesOut, Requests: r.Requests, Tunnels: r.Tunnels}
	}
	bw := bandwidthJSON(rep.Bandwidth)
	return map[string]any{"usage": out, "bandwidth": bw}, nil
}
