package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// problems collects validation errors, each prefixed by its key path.
type problems []error

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

// Validate reports every problem in c, joined with errors.Join, each prefixed by its key path
// (`proxies[1].exits[0].ip: required`). It expects ApplyDefaults to have run. Messages never
// repeat the store URL or an exit URL's password.
func (c *Config) Validate() error {
	var p problems
	validateStore(&p, c.Store)
	c.validateListeners(&p)
	if c.API.TLSCert == "" && c.API.TLSKey != "" {
		p.add("api.tls_cert", "required when api.tls_key is set")
	}
	if c.API.TLSKey == "" && c.API.TLSCert != "" {
		p.add("api.tls_key", "required when api.tls_cert is set")
	}
	c.validateUnconfirmed(&p)
	if c.Node.Name == "" {
		p.add("node.name", "required")
	}
	c.validateProxies(&p)
	for i, port := range c.Egress.DenyPorts {
		if port < 1 || port > 65535 {
			p.add(fmt.Sprintf("egress.deny_ports[%d]", i), "port %d out of range 1-65535", port)
		}
	}
	c.validateBans(&p)
	c.validateHostnames(&p)
	c.validateWebhooks(&p)
	c.validatePlans(&p)
	c.validateTimeouts(&p)
	c.validateLimits(&p)
	c.validateHealth(&p)
	positive(&p, "sessions.ttl", c.Sessions.TTL)
	positive(&p, "dashboard.session_ttl", c.Dashboard.SessionTTL)
	for i, name := range c.Dashboard.Operators {
		if name == "" {
			p.add(fmt.Sprintf("dashboard.operators[%d]", i), "empty username")
		}
	}
	c.validateSignup(&p)
	if c.Sessions.Max <= 0 {
		p.add("sessions.max", "must be positive")
	}
	if c.Retries < 0 || c.Retries > MaxRetries {
		p.add("retries", "must be 0 to %d", MaxRetries)
	}
	positive(&p, "sync.interval", c.Sync.Interval)
	positive(&p, "sync.feed_retention", c.Sync.FeedRetention)
	positive(&p, "usage.flush_interval", c.Usage.FlushInterval)
	positive(&p, "usage.meter_interval", c.Usage.MeterInterval)
	if c.Usage.ExitRetention < Duration(time.Hour) {
		p.add("usage.exit_retention", "must be at least 1h")
	}
	oneOf(&p, "log.level", c.Log.Level, "debug", "info", "warn", "error")
	oneOf(&p, "log.format", c.Log.Format, "text", "json")
	return errors.Join(p...)
}

func validateStore(p *problems, store string) {
	switch {
	case strings.HasPrefix(store, "sqlite:"):
		if strings.TrimPrefix(store, "sqlite:") == "" {
			p.add("store", "sqlite: needs a file path, as in sqlite:./exitmesh.db")
		}
	case strings.HasPrefix(store, "postgres://"), strings.HasPrefix(store, "postgresql://"):
		if u, err := url.Parse(store); err != nil || u.Host == "" {
			p.add("store", "not a valid postgres:// URL")
		}
	default:
		p.add("store", "must be sqlite:PATH or a postgres:// URL")
	}
}

// validateListeners checks every listen address and that no two listeners share one. Port 0 (a
// port the system picks) may repeat.
func (c *Config) validateListeners(p *problems) {
	if c.Node.API && c.API.Listen == "" {
		p.add("api.listen", "required when node.api is true")
	}
	used := make(map[string]string) // address → key of the listener using it
	claim := func(key, addr string) {
		if addr == "" {
			return
		}
		port, err := splitPort(addr)
		if err != nil {
			p.add(key, "%v", err)
			return
		}
		if prev, ok := used[addr]; ok && port != 0 {
			p.add(key, "%q is already %s", addr, prev)
		}
		used[addr] = key
	}
	claim("api.listen", c.API.Listen)
	claim("api.http_listen", c.API.HTTPListen)
	claim("metrics.listen", c.Metrics.Listen)
	for i, proxy := range c.Proxies {
		claim(fmt.Sprintf("proxies[%d].listen", i), proxy.Listen)
	}
}

// splitPort checks that addr is host:port with a numeric port, and returns the port.
func splitPort(addr string) (int, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("%q is not host:port", addr)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("%q: port must be a number from 0 to 65535", addr)
	}
	return int(n), nil
}

func (c *Config) validateProxies(p *problems) {
	names := make(map[string]int)
	for i, proxy := range c.Proxies {
		key := fmt.Sprintf("proxies[%d]", i)
		validName(p, key+".name", proxy.Name)
		if proxy.Name == APIListener {
			p.add(key+".name", "%q names the account API's listener in metrics; choose another name", proxy.Name)
		}
		if j, ok := names[proxy.Name]; ok && proxy.Name != "" {
			p.add(key+".name", "%q is already the name of proxies[%d]", proxy.Name, j)
		} else {
			names[proxy.Name] = i
		}
		if proxy.Listen == "" {
			p.add(key+".listen", "required")
		}
		if _, err := splitPort(proxy.Address); err != nil && proxy.Address != "" {
			p.add(key+".address", "%v", err)
		}
		country(p, key+".country", proxy.Country)
		validateExits(p, key, proxy.Exits)
		if proxy.Active < 0 {
			p.add(key+".active", "must be 0 (all exits) or positive")
		}
		positive(p, key+".turnover", proxy.Turnover)
		if t := proxy.TLS; t != nil {
			if t.Cert == "" {
				p.add(key+".tls.cert", "required with tls: a PEM certificate file")
			}
			if t.Key == "" {
				p.add(key+".tls.key", "required with tls: a PEM key file")
			}
		}
	}
}

func (c *Config) validateHealth(p *problems) {
	h := c.Health
	positive(p, "health.interval", h.Interval)
	positive(p, "health.timeout", h.Timeout)
	if h.Interval > 0 && h.Timeout > h.Interval {
		p.add("health.timeout", "must not exceed health.interval (%s)", h.Interval)
	}
	if h.Fall <= 0 {
		p.add("health.fall", "must be positive")
	}
	if h.Rise <= 0 {
		p.add("health.rise", "must be positive")
	}
	if t := h.Target; t != "" {
		if u, err := url.Parse(t); strings.Contains(t, "://") && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
			p.add("health.target", "want host:port or an http:// or https:// URL, got %q", t)
		} else if !strings.Contains(t, "://") {
			if port, err := splitPort(t); err != nil || port == 0 {
				p.add("health.target", "want host:port with a port from 1 to 65535 or an http(s):// URL, got %q", t)
			}
		}
	}
}

func validateExits(p *problems, proxyKey string, exits []Exit) {
	if len(exits) == 0 {
		p.add(proxyKey+".exits", "at least one exit is required")
	}
	ips := make(map[netip.Addr]int)
	for j, exit := range exits {
		key := fmt.Sprintf("%s.exits[%d]", proxyKey, j)
		if !exit.IP.IsValid() {
			p.add(key+".ip", "required")
		} else if k, ok := ips[exit.IP]; ok {
			p.add(key+".ip", "%s is already the IP of %s.exits[%d]", exit.IP, proxyKey, k)
		} else {
			ips[exit.IP] = j
		}
		if exit.URL != "" {
			if err := checkUpstream(exit.URL); err != nil {
				p.add(key+".url", "%v", err)
			}
		}
		country(p, key+".country", exit.Country)
		validatePlace(p, key, exit)
	}
}

// validatePlace checks an exit's region and city, which the decoder and defaults left in their one
// case: a region must be a subdivision of the exit's country.
func validatePlace(p *problems, key string, exit Exit) {
	if r := exit.Region; r != "" {
		if norm, ok := domain.NormalizeRegion(r); !ok || norm != r {
			p.add(key+".region", "%q is not an ISO 3166-2 subdivision code such as US-CA", r)
		} else if exit.Country != "" && r[:2] != exit.Country {
			p.add(key+".region", "%q is not in the exit's country %s", r, exit.Country)
		}
	}
	if c := exit.City; c != "" {
		if norm, ok := domain.NormalizeCity(c); !ok || norm != c {
			p.add(key+".city", "%q is not a city slug such as los_angeles: 1 to 64 lower-case letters, digits and _", c)
		}
	}
}

// checkUpstream checks an upstream proxy URL without repeating it: it may hold a password.
func checkUpstream(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a valid URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "socks5":
		return errors.New("scheme must be http, https or socks5")
	case u.Hostname() == "":
		return errors.New("missing host")
	case strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "":
		return errors.New("want scheme://[user:password@]host:port and nothing after the port")
	}
	return nil
}

func (c *Config) validateBans(p *problems) {
	if c.Bans.AuthFailures <= 0 {
		p.add("bans.auth_failures", "must be positive")
	}
	if c.Bans.NotFound <= 0 {
		p.add("bans.not_found", "must be positive")
	}
	positive(p, "bans.window", c.Bans.Window)
	positive(p, "bans.duration", c.Bans.Duration)
}

func (c *Config) validateUnconfirmed(p *problems) {
	if c.API.UnconfirmedAllowance <= 0 {
		p.add("api.unconfirmed_allowance", "must be positive")
	}
	if b := c.API.UnconfirmedBlock; b < MinUnconfirmedBlock || b > MaxUnconfirmedBlock {
		p.add("api.unconfirmed_block", "must be from %s to %s, got %s", MinUnconfirmedBlock, MaxUnconfirmedBlock, b)
	}
}

func (c *Config) validateHostnames(p *problems) {
	if i := c.Hostnames.Interval; i <= 0 || i > MaxHostnameInterval {
		p.add("hostnames.interval", "must be positive and at most %s, got %s", MaxHostnameInterval, i)
	}
	if r := c.Hostnames.Resolver; r != "" {
		if port, err := splitPort(r); err != nil {
			p.add("hostnames.resolver", "%v", err)
		} else if host, _, _ := net.SplitHostPort(r); host == "" || port == 0 {
			p.add("hostnames.resolver", "%q: want a DNS server's host:port, such as 127.0.0.1:53", r)
		}
	}
}

func (c *Config) validateWebhooks(p *problems) {
	for i, w := range c.Webhooks {
		key := fmt.Sprintf("webhooks[%d]", i)
		if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.add(key+".url", "%q: want an http:// or https:// URL", w.URL)
		}
		if len(w.Secret) < MinWebhookSecret {
			p.add(key+".secret", "must be at least %d characters (receivers check signatures with it)", MinWebhookSecret)
		}
		if len(w.Events) == 0 {
			p.add(key+".events", "required: some of %s", strings.Join(domain.EventTypes, ", "))
		}
		for j, e := range w.Events {
			if !slices.Contains(domain.EventTypes, e) {
				p.add(fmt.Sprintf("%s.events[%d]", key, j), "%q: not an event; want one of %s", e, strings.Join(domain.EventTypes, ", "))
			}
		}
	}
}

func (c *Config) validatePlans(p *problems) {
	names := make(map[string]int)
	for i, plan := range c.Plans {
		key := fmt.Sprintf("plans[%d]", i)
		validName(p, key+".name", plan.Name)
		if j, ok := names[plan.Name]; ok && plan.Name != "" {
			p.add(key+".name", "%q is already the name of plans[%d]", plan.Name, j)
		} else {
			names[plan.Name] = i
		}
		for _, limit := range []struct {
			name  string
			value int64
		}{
			{"proxies", int64(plan.Proxies)}, {"subs", int64(plan.Subs)}, {"ips", int64(plan.IPs)},
			{"hostnames", int64(plan.Hostnames)}, {"bandwidth", int64(plan.Bandwidth)}, {"tokens", int64(plan.Tokens)},
			{"rate", int64(plan.Rate)}, {"speed", int64(plan.Speed)}, {"connections", int64(plan.Connections)},
		} {
			if limit.value < 0 {
				p.add(key+"."+limit.name, "must not be negative")
			}
		}
	}
}

func (c *Config) validateTimeouts(p *problems) {
	t := c.Timeouts
	positive(p, "timeouts.origin", t.Origin)
	positive(p, "timeouts.max_origin", t.MaxOrigin)
	positive(p, "timeouts.read_header", t.ReadHeader)
	positive(p, "timeouts.idle", t.Idle)
	positive(p, "timeouts.tunnel_idle", t.TunnelIdle)
	positive(p, "timeouts.write", t.Write)
	positive(p, "timeouts.shutdown", t.Shutdown)
	if t.Origin > t.MaxOrigin && t.MaxOrigin > 0 {
		p.add("timeouts.origin", "%s exceeds timeouts.max_origin (%s)", t.Origin, t.MaxOrigin)
	}
}

func (c *Config) validateLimits(p *problems) {
	l := c.Limits
	if l.MaxHeaderBytes <= 0 {
		p.add("limits.max_header_bytes", "must be positive")
	}
	if l.MaxHeaderFields <= 0 {
		p.add("limits.max_header_fields", "must be positive")
	}
	for _, limit := range []struct {
		key   string
		value int
	}{{"limits.connections_per_ip", l.ConnectionsPerIP}, {"limits.connections_per_account", l.ConnectionsPerAccount}} {
		if limit.value < 1 || limit.value > MaxConnectionsLimit {
			p.add(limit.key, "must be from 1 to %d, got %d", MaxConnectionsLimit, limit.value)
		}
	}
}

func positive(p *problems, key string, d Duration) {
	if d <= 0 {
		p.add(key, "must be positive, got %s", d)
	}
}

func oneOf(p *problems, key, value string, allowed ...string) {
	for _, a := range allowed {
		if value == a {
			return
		}
	}
	p.add(key, "%q is not one of %s", value, strings.Join(allowed, ", "))
}

// validName checks a proxy server or plan name: 1 to 64 of a-z, 0-9, - and _ (as domain.ValidateName).
func validName(p *problems, key, name string) {
	if name == "" {
		p.add(key, "required")
		return
	}
	ok := len(name) <= 64
	for _, r := range name {
		ok = ok && (r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}
	if !ok {
		p.add(key, "%q must be 1 to 64 of a-z, 0-9, - and _", name)
	}
}

// country checks an optional ISO 3166-1 alpha-2 code, which ApplyDefaults has upper-cased.
func country(p *problems, key, code string) {
	if code == "" {
		return
	}
	if len(code) != 2 || code[0] < 'A' || code[0] > 'Z' || code[1] < 'A' || code[1] > 'Z' {
		p.add(key, "%q is not a two-letter country code such as US", code)
	}
}
