package config

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// validConfig is the SPEC example, which passes Validate.
func validConfig(t *testing.T) *Config {
	t.Helper()
	c, err := Load(specFile)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestValidateRules(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // the start of one of the joined errors
	}{
		{"store scheme", func(c *Config) { c.Store = "mysql://db" }, "store: must be"},
		{"sqlite path", func(c *Config) { c.Store = "sqlite:" }, "store: sqlite: needs"},
		{"postgres host", func(c *Config) { c.Store = "postgres://" }, "store: not a valid"},
		{"api listen required", func(c *Config) { c.API.Listen = "" }, "api.listen: required"},
		{"api listen port", func(c *Config) { c.API.Listen = "127.0.0.1:https" }, "api.listen: \"127.0.0.1:https\": port must be"},
		{"api listen no port", func(c *Config) { c.API.Listen = "127.0.0.1" }, "api.listen: \"127.0.0.1\" is not host:port"},
		{"http listen", func(c *Config) { c.API.HTTPListen = "x:99999" }, "api.http_listen: "},
		{"metrics listen", func(c *Config) { c.Metrics.Listen = "nowhere" }, "metrics.listen: "},
		{"listen shared", func(c *Config) { c.Metrics.Listen = c.API.HTTPListen }, `metrics.listen: "127.0.0.1:8080" is already api.http_listen`},
		{"tls key missing", func(c *Config) { c.API.TLSKey = "" }, "api.tls_key: required when api.tls_cert is set"},
		{"tls cert missing", func(c *Config) { c.API.TLSCert = "" }, "api.tls_cert: required when api.tls_key is set"},
		{"unconfirmed allowance", func(c *Config) { c.API.UnconfirmedAllowance = -1 }, "api.unconfirmed_allowance: must be positive"},
		{"unconfirmed block short", func(c *Config) { c.API.UnconfirmedBlock = Duration(4*time.Hour - time.Second) }, "api.unconfirmed_block: must be from 4h0m0s to 6h0m0s, got 3h59m59s"},
		{"unconfirmed block long", func(c *Config) { c.API.UnconfirmedBlock = Duration(7 * time.Hour) }, "api.unconfirmed_block: must be from 4h0m0s to 6h0m0s, got 7h0m0s"},
		{"node name", func(c *Config) { c.Node.Name = "" }, "node.name: required"},
		{"proxy name required", func(c *Config) { c.Proxies[0].Name = "" }, "proxies[0].name: required"},
		{"proxy name chars", func(c *Config) { c.Proxies[0].Name = "US-CA" }, `proxies[0].name: "US-CA" must be`},
		{"proxy name long", func(c *Config) { c.Proxies[0].Name = strings.Repeat("a", 65) }, "proxies[0].name: "},
		{"proxy name unique", func(c *Config) { c.Proxies = append(c.Proxies, proxyCopy(c, "us-ca", ":1")) }, `proxies[1].name: "us-ca" is already the name of proxies[0]`},
		{"proxy listen required", func(c *Config) { c.Proxies[0].Listen = "" }, "proxies[0].listen: required"},
		{"proxy listen port", func(c *Config) { c.Proxies[0].Listen = "127.0.0.1:x" }, "proxies[0].listen: "},
		{"proxy listen unique", func(c *Config) { c.Proxies = append(c.Proxies, proxyCopy(c, "b", "127.0.0.1:31280")) }, `proxies[1].listen: "127.0.0.1:31280" is already proxies[0].listen`},
		{"proxy address", func(c *Config) { c.Proxies[0].Address = "us-ca.example.net" }, "proxies[0].address: "},
		{"proxy country", func(c *Config) { c.Proxies[0].Country = "USA" }, `proxies[0].country: "USA" is not`},
		{"exits required", func(c *Config) { c.Proxies[0].Exits = nil }, "proxies[0].exits: at least one exit"},
		{"active negative", func(c *Config) { c.Proxies[0].Active = -1 }, "proxies[0].active: must be 0"},
		{"turnover", func(c *Config) { c.Proxies[0].Turnover = Duration(-time.Second) }, "proxies[0].turnover: must be positive"},
		{"health interval", func(c *Config) { c.Health.Interval = 0 }, "health.interval: must be positive"},
		{"health timeout", func(c *Config) { c.Health.Timeout = Duration(time.Minute) }, "health.timeout: must not exceed health.interval (30s)"},
		{"health fall", func(c *Config) { c.Health.Fall = 0 }, "health.fall: must be positive"},
		{"health rise", func(c *Config) { c.Health.Rise = -2 }, "health.rise: must be positive"},
		{"health target port", func(c *Config) { c.Health.Target = "example.net" }, `health.target: want host:port with a port from 1 to 65535 or an http(s):// URL, got "example.net"`},
		{"health target scheme", func(c *Config) { c.Health.Target = "ftp://example.net/" }, `health.target: want host:port or an http:// or https:// URL, got "ftp://example.net/"`},
		{"sessions ttl", func(c *Config) { c.Sessions.TTL = 0 }, "sessions.ttl: must be positive"},
		{"sessions max", func(c *Config) { c.Sessions.Max = -1 }, "sessions.max: must be positive"},
		{"retries", func(c *Config) { c.Retries = 9 }, "retries: must be 0 to 8"},
		{"negative retries", func(c *Config) { c.Retries = -1 }, "retries: must be 0 to 8"},
		{"exit ip required", func(c *Config) { c.Proxies[0].Exits[1].IP = netip.Addr{} }, "proxies[0].exits[1].ip: required"},
		{"exit ip unique", func(c *Config) { c.Proxies[0].Exits[2].IP = c.Proxies[0].Exits[0].IP }, "proxies[0].exits[2].ip: 127.0.0.2 is already the IP of proxies[0].exits[0]"},
		{"exit url scheme", func(c *Config) { c.Proxies[0].Exits[2].URL = "ftp://u:secret@h:1" }, "proxies[0].exits[2].url: scheme must be"},
		{"exit url host", func(c *Config) { c.Proxies[0].Exits[2].URL = "socks5://:1080" }, "proxies[0].exits[2].url: missing host"},
		{"exit url path", func(c *Config) { c.Proxies[0].Exits[2].URL = "http://h:1/x?y" }, "proxies[0].exits[2].url: want scheme://"},
		{"exit url parse", func(c *Config) { c.Proxies[0].Exits[2].URL = "http://u:secret@h:port" }, "proxies[0].exits[2].url: not a valid URL"},
		{"exit country", func(c *Config) { c.Proxies[0].Exits[0].Country = "D1" }, `proxies[0].exits[0].country: "D1" is not`},
		{"exit region form", func(c *Config) { c.Proxies[0].Exits[0].Region = "CALIFORNIA" }, `proxies[0].exits[0].region: "CALIFORNIA" is not an ISO 3166-2 subdivision code such as US-CA`},
		{"exit region underscore", func(c *Config) { c.Proxies[0].Exits[0].Region = "US_CA" }, `proxies[0].exits[0].region: "US_CA" is not an ISO 3166-2`},
		{"exit region country", func(c *Config) { c.Proxies[0].Exits[0].Country, c.Proxies[0].Exits[0].Region = "DE", "US-CA" }, `proxies[0].exits[0].region: "US-CA" is not in the exit's country DE`},
		{"exit city", func(c *Config) { c.Proxies[0].Exits[1].City = "los angeles" }, `proxies[0].exits[1].city: "los angeles" is not a city slug such as los_angeles`},
		{"exit city case", func(c *Config) { c.Proxies[0].Exits[1].City = "Paris" }, `proxies[0].exits[1].city: "Paris" is not a city slug`},
		{"deny port low", func(c *Config) { c.Egress.DenyPorts = []int{25, 0} }, "egress.deny_ports[1]: port 0 out of range"},
		{"deny port high", func(c *Config) { c.Egress.DenyPorts = []int{65536} }, "egress.deny_ports[0]: port 65536 out of range"},
		{"bans auth failures", func(c *Config) { c.Bans.AuthFailures = -1 }, "bans.auth_failures: must be positive"},
		{"bans not found", func(c *Config) { c.Bans.NotFound = -1 }, "bans.not_found: must be positive"},
		{"bans window", func(c *Config) { c.Bans.Window = -1 }, "bans.window: must be positive"},
		{"bans duration", func(c *Config) { c.Bans.Duration = -1 }, "bans.duration: must be positive"},
		{"hostnames interval", func(c *Config) { c.Hostnames.Interval = -1 }, "hostnames.interval: must be positive and at most 5m0s"},
		{"hostnames interval long", func(c *Config) { c.Hostnames.Interval = Duration(5*time.Minute + time.Second) }, "hostnames.interval: must be positive and at most 5m0s, got 5m1s"},
		{"hostnames resolver no port", func(c *Config) { c.Hostnames.Resolver = "127.0.0.1" }, `hostnames.resolver: "127.0.0.1" is not host:port`},
		{"hostnames resolver port", func(c *Config) { c.Hostnames.Resolver = "127.0.0.1:dns" }, `hostnames.resolver: "127.0.0.1:dns": port must be`},
		{"hostnames resolver port 0", func(c *Config) { c.Hostnames.Resolver = "127.0.0.1:0" }, `hostnames.resolver: "127.0.0.1:0": want a DNS server's host:port`},
		{"hostnames resolver host", func(c *Config) { c.Hostnames.Resolver = ":53" }, `hostnames.resolver: ":53": want a DNS server's host:port`},
		{"plan name required", func(c *Config) { c.Plans[0].Name = "" }, "plans[0].name: required"},
		{"plan name chars", func(c *Config) { c.Plans[0].Name = "a b" }, `plans[0].name: "a b" must be`},
		{"plan name unique", func(c *Config) { c.Plans = append(c.Plans, Plan{Name: "starter"}) }, `plans[1].name: "starter" is already the name of plans[0]`},
		{"plan proxies", func(c *Config) { c.Plans[0].Proxies = -1 }, "plans[0].proxies: must not be negative"},
		{"plan subs", func(c *Config) { c.Plans[0].Subs = -1 }, "plans[0].subs: must not be negative"},
		{"plan ips", func(c *Config) { c.Plans[0].IPs = -1 }, "plans[0].ips: must not be negative"},
		{"plan hostnames", func(c *Config) { c.Plans[0].Hostnames = -1 }, "plans[0].hostnames: must not be negative"},
		{"plan bandwidth", func(c *Config) { c.Plans[0].Bandwidth = -1 }, "plans[0].bandwidth: must not be negative"},
		{"timeout origin", func(c *Config) { c.Timeouts.Origin = -1 }, "timeouts.origin: must be positive"},
		{"timeout origin cap", func(c *Config) { c.Timeouts.Origin = c.Timeouts.MaxOrigin + 1 }, "timeouts.origin: 2m0.000000001s exceeds timeouts.max_origin"},
		{"timeout max origin", func(c *Config) { c.Timeouts.MaxOrigin = -1 }, "timeouts.max_origin: must be positive"},
		{"timeout read header", func(c *Config) { c.Timeouts.ReadHeader = -1 }, "timeouts.read_header: must be positive"},
		{"timeout idle", func(c *Config) { c.Timeouts.Idle = -1 }, "timeouts.idle: must be positive"},
		{"timeout tunnel idle", func(c *Config) { c.Timeouts.TunnelIdle = -1 }, "timeouts.tunnel_idle: must be positive"},
		{"timeout shutdown", func(c *Config) { c.Timeouts.Shutdown = -1 }, "timeouts.shutdown: must be positive"},
		{"timeout write", func(c *Config) { c.Timeouts.Write = -1 }, "timeouts.write: must be positive"},
		{"max header bytes", func(c *Config) { c.Limits.MaxHeaderBytes = -1 }, "limits.max_header_bytes: must be positive"},
		{"max header fields", func(c *Config) { c.Limits.MaxHeaderFields = -1 }, "limits.max_header_fields: must be positive"},
		{"proxy named api", func(c *Config) { c.Proxies[0].Name = "api" }, `proxies[0].name: "api" names the account API's listener in metrics; choose another name`},
		{"connections per ip", func(c *Config) { c.Limits.ConnectionsPerIP = -1 }, "limits.connections_per_ip: must be from 1 to 1000000, got -1"},
		{"connections per ip cap", func(c *Config) { c.Limits.ConnectionsPerIP = 1_000_001 }, "limits.connections_per_ip: must be from 1 to 1000000, got 1000001"},
		{"connections per account", func(c *Config) { c.Limits.ConnectionsPerAccount = -5 }, "limits.connections_per_account: must be from 1 to 1000000, got -5"},
		{"sync interval", func(c *Config) { c.Sync.Interval = -1 }, "sync.interval: must be positive"},
		{"usage flush", func(c *Config) { c.Usage.FlushInterval = -1 }, "usage.flush_interval: must be positive"},
		{"log level", func(c *Config) { c.Log.Level = "loud" }, `log.level: "loud" is not one of debug, info, warn, error`},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, `log.format: "xml" is not one of text, json`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig(t)
			tt.mutate(c)
			msgs := errorLines(c.Validate())
			if len(msgs) != 1 || !strings.HasPrefix(msgs[0], tt.want) {
				t.Errorf("Validate() = %q, want one error starting %q", msgs, tt.want)
			}
			for _, m := range msgs {
				if strings.Contains(m, "secret") {
					t.Errorf("Validate() leaks a password: %q", m)
				}
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
	}{
		{"spec example", func(*Config) {}},
		{"postgresql", func(c *Config) { c.Store = "postgresql://u:p@db:5432/x?sslmode=disable" }},
		{"port 0 repeats", func(c *Config) {
			c.API.Listen, c.Metrics.Listen = "127.0.0.1:0", "127.0.0.1:0"
			c.Proxies = append(c.Proxies, proxyCopy(c, "b", "127.0.0.1:0"), proxyCopy(c, "c", "127.0.0.1:0"))
			c.Proxies[0].Listen = "127.0.0.1:0"
		}},
		{"no metrics, no API, no proxies", func(c *Config) { c.Metrics.Listen, c.Node.API, c.API.Listen, c.Proxies = "", false, "", nil }},
		{"ipv6 listen", func(c *Config) { c.Proxies[0].Listen = "[::1]:3128" }},
		{"upstream https with credentials", func(c *Config) { c.Proxies[0].Exits[2].URL = "https://u:p@up.example:443/" }},
		{"no denied ports", func(c *Config) { c.Egress.DenyPorts = []int{} }},
		{"zero plan limits", func(c *Config) { c.Plans[0] = Plan{Name: "free"} }},
		{"json logs", func(c *Config) { c.Log = Log{Level: "debug", Format: "json"} }},
		{"health by tcp", func(c *Config) { c.Health.Target = "www.example.net:443" }},
		{"health by url", func(c *Config) { c.Health.Target = "https://www.example.net/health" }},
		{"turnover", func(c *Config) { c.Proxies[0].Active, c.Proxies[0].Turnover = 2, Duration(time.Hour) }},
		{"plain-HTTP API", func(c *Config) { c.API.RequireHTTPS = false }},
		{"unconfirmed block 4h", func(c *Config) { c.API.UnconfirmedBlock = MinUnconfirmedBlock }},
		{"unconfirmed block 6h", func(c *Config) { c.API.UnconfirmedBlock = MaxUnconfirmedBlock }},
		{"hostnames every 5m", func(c *Config) { c.Hostnames.Interval = MaxHostnameInterval }},
		{"hostnames every second", func(c *Config) { c.Hostnames.Interval = Duration(time.Second) }},
		{"hostnames resolver", func(c *Config) { c.Hostnames.Resolver = "127.0.0.1:5353" }},
		{"hostnames resolver by name", func(c *Config) { c.Hostnames.Resolver = "dns.example.net:53" }},
		{"hostnames ipv6 resolver", func(c *Config) { c.Hostnames.Resolver = "[2001:db8::53]:53" }},
	}
	for _, tt := range tests {
		c := validConfig(t)
		tt.mutate(c)
		if err := c.Validate(); err != nil {
			t.Errorf("%s: Validate() = %v, want nil", tt.name, err)
		}
	}
}

func TestValidateReportsAll(t *testing.T) {
	c := validConfig(t)
	c.Store = ""
	c.Proxies[0].Exits[0].IP = netip.Addr{}
	c.Log.Format = ""
	got := errorLines(c.Validate())
	want := []string{"store: ", "proxies[0].exits[0].ip: required", "log.format: "}
	if len(got) != len(want) {
		t.Fatalf("Validate() = %q, want %d errors", got, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("error %d = %q, want prefix %q", i, got[i], want[i])
		}
	}
}

// errorLines returns the messages joined in err.
func errorLines(err error) []string {
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		if err == nil {
			return nil
		}
		return []string{err.Error()}
	}
	var msgs []string
	for _, e := range joined.Unwrap() {
		msgs = append(msgs, e.Error())
	}
	return msgs
}

// proxyCopy returns the first proxy of c under another name and listen address.
func proxyCopy(c *Config, name, listen string) Proxy {
	p := c.Proxies[0]
	p.Name, p.Listen, p.Address = name, listen, listen
	p.Exits = append([]Exit(nil), p.Exits...)
	return p
}
