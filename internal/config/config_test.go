package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const specFile = "testdata/spec.yaml"

func TestLoadSpecExample(t *testing.T) {
	got, err := Load(specFile)
	if err != nil {
		t.Fatalf("Load(%s): %v", specFile, err)
	}
	want := Default()
	want.API = API{Listen: "127.0.0.1:8443", TLSCert: "api.crt", TLSKey: "api.key", HTTPListen: "127.0.0.1:8080",
		RequireHTTPS: true, UnconfirmedAllowance: 20, UnconfirmedBlock: Duration(5 * time.Hour)}
	want.Node = Node{Name: "node-a", API: true}
	want.Proxies = []Proxy{{
		Name: "us-ca", Listen: "127.0.0.1:31280", Address: "us-ca.example.net:31280", Country: "US", Turnover: Duration(3 * time.Hour),
		Exits: []Exit{
			{IP: netip.MustParseAddr("127.0.0.2"), Country: "US"},
			{IP: netip.MustParseAddr("127.0.0.3"), Country: "US"},
			{IP: netip.MustParseAddr("203.0.113.7"), URL: "socks5://127.0.0.1:1080", Country: "DE"},
		},
	}}
	want.Egress = Egress{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, DenyPorts: []int{25, 465, 587}}
	want.Bans = Bans{AuthFailures: 10, NotFound: 20, Window: Duration(time.Minute), Duration: Duration(15 * time.Minute)}
	want.Plans = []Plan{{Name: "starter", Proxies: 3, Subs: 5, IPs: 10, Hostnames: 5, Bandwidth: 10 * GB}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load(%s):\n got %+v\nwant %+v", specFile, got, want)
	}
}

func TestDefaults(t *testing.T) {
	got, err := Parse(nil)
	if err != nil {
		t.Fatalf("Parse(empty): %v", err)
	}
	host, _ := os.Hostname()
	want := &Config{
		Store:     "sqlite:./exitmesh.db",
		API:       API{Listen: "127.0.0.1:8443", RequireHTTPS: true, UnconfirmedAllowance: 20, UnconfirmedBlock: Duration(5 * time.Hour)},
		Node:      Node{Name: host, API: true},
		Metrics:   Metrics{Listen: "127.0.0.1:9464"},
		Egress:    Egress{DenyPorts: []int{25, 465, 587}},
		Bans:      Bans{AuthFailures: 10, NotFound: 20, Window: Duration(60 * time.Second), Duration: Duration(15 * time.Minute)},
		Hostnames: Hostnames{Interval: Duration(5 * time.Minute)},
		Timeouts:  Timeouts{Origin: Duration(30 * time.Second), MaxOrigin: Duration(120 * time.Second), ReadHeader: Duration(10 * time.Second), Idle: Duration(90 * time.Second), TunnelIdle: Duration(10 * time.Minute), Write: Duration(60 * time.Second), Shutdown: Duration(15 * time.Second)},
		Limits:    Limits{MaxHeaderBytes: 64 * 1024, MaxHeaderFields: 100, ConnectionsPerIP: 1024, ConnectionsPerAccount: 1024},
		Sync:      Sync{Interval: Duration(500 * time.Millisecond), FeedRetention: Duration(24 * time.Hour)},
		Usage:     Usage{FlushInterval: Duration(10 * time.Second), MeterInterval: Duration(time.Second), ExitRetention: Duration(90 * 24 * time.Hour)},
		Log:       Log{Level: "info", Format: "text"},
		Health:    Health{Interval: Duration(30 * time.Second), Timeout: Duration(5 * time.Second), Fall: 3, Rise: 2},
		Sessions:  Sessions{TTL: Duration(10 * time.Minute), Max: 100_000},
		Retries:   2,
		Dashboard: Dashboard{SessionTTL: Duration(12 * time.Hour)},
	}
	want.Dashboard.Signup = Signup{LinkTTL: Duration(48 * time.Hour), RateLimit: 5, RateWindow: Duration(time.Hour)}
	want.SMTP = SMTP{Port: 587, StartTLS: true, Timeout: Duration(10 * time.Second)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse(empty):\n got %+v\nwant %+v", got, want)
	}
	if d := Default(); !reflect.DeepEqual(d, want) {
		t.Errorf("Default():\n got %+v\nwant %+v", d, want)
	}
}

// TestAbsentVersusExplicit covers the keys whose absence differs from their zero value.
func TestAbsentVersusExplicit(t *testing.T) {
	tests := []struct {
		yaml string
		get  func(*Config) any
		want any
	}{
		{"log: {level: debug}", func(c *Config) any { return c.Egress.DenyPorts }, []int{25, 465, 587}},
		{"egress: {allow: [10.0.0.0/8]}", func(c *Config) any { return c.Egress.DenyPorts }, []int{25, 465, 587}},
		{"egress: {deny_ports: []}", func(c *Config) any { return c.Egress.DenyPorts }, []int{}},
		{"egress: {deny_ports: [25]}", func(c *Config) any { return c.Egress.DenyPorts }, []int{25}},
		{"egress: {allow: [10.1.2.3/8, 192.0.2.1, '::1']}", func(c *Config) any { return c.Egress.Allow },
			[]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("::1/128")}},
		{"node: {name: a}", func(c *Config) any { return c.Node.API }, true},
		{"node:\n  # api: false\n", func(c *Config) any { return c.Node.API }, true},
		{"node: {api: false}", func(c *Config) any { return c.Node.API }, false},
		{"metrics: {listen: 'off'}", func(c *Config) any { return c.Metrics.Listen }, ""},
		{"api: {listen: '127.0.0.1:1'}", func(c *Config) any { return c.API.RequireHTTPS }, true},
		{"api: {require_https: false}", func(c *Config) any { return c.API.RequireHTTPS }, false},
		{"api: {unconfirmed_allowance: 5, unconfirmed_block: 4h}", func(c *Config) any { return []any{c.API.UnconfirmedAllowance, c.API.UnconfirmedBlock} },
			[]any{5, Duration(4 * time.Hour)}},
		{"hostnames: {interval: 30s, resolver: '127.0.0.1:5353'}", func(c *Config) any { return c.Hostnames },
			Hostnames{Interval: Duration(30 * time.Second), Resolver: "127.0.0.1:5353"}},
		{"hostnames: {resolver: '[::1]:53'}", func(c *Config) any { return c.Hostnames.Interval }, Duration(5 * time.Minute)},
		{"health: {target: 'origin.test:80', interval: 10s}", func(c *Config) any { return c.Health },
			Health{Target: "origin.test:80", Interval: Duration(10 * time.Second), Timeout: Duration(5 * time.Second), Fall: 3, Rise: 2}},
		{"sessions: {ttl: 1m}", func(c *Config) any { return c.Sessions }, Sessions{TTL: Duration(time.Minute), Max: 100_000}},
		{"proxies: [{name: p, listen: ':0', active: 2, turnover: 1h, exits: [{ip: 127.0.0.2}]}]", func(c *Config) any { return []any{c.Proxies[0].Active, c.Proxies[0].Turnover} },
			[]any{2, Duration(time.Hour)}},
		{"metrics: {listen: off}", func(c *Config) any { return c.Metrics.Listen }, ""},
		{"metrics:", func(c *Config) any { return c.Metrics.Listen }, "127.0.0.1:9464"},
		{"metrics: {listen: ':9000'}", func(c *Config) any { return c.Metrics.Listen }, ":9000"},
		{"store: postgres://u@db:5432/x", func(c *Config) any { return c.Store }, "postgres://u@db:5432/x"},
		{"timeouts: {origin: 5}", func(c *Config) any { return c.Timeouts.Origin }, Duration(5 * time.Second)},
		{"limits: {max_header_bytes: 1 MiB}", func(c *Config) any { return c.Limits.MaxHeaderBytes }, MiB},
		{"limits: {max_header_fields: 200}", func(c *Config) any { return c.Limits.MaxHeaderFields }, 200},
		{"limits: {connections_per_ip: 3}", func(c *Config) any { return c.Limits.ConnectionsPerIP }, 3},
		{"limits: {connections_per_account: 2}", func(c *Config) any { return c.Limits.ConnectionsPerAccount }, 2},
		{"limits: {connections_per_ip: 3}", func(c *Config) any { return c.Limits.ConnectionsPerAccount }, 1024},
		{"timeouts: {write: 250ms}", func(c *Config) any { return c.Timeouts.Write }, Duration(250 * time.Millisecond)},
		{"timeouts: {idle: 5s}", func(c *Config) any { return c.Timeouts.Write }, Duration(time.Minute)},
		{"proxies: [{name: p, listen: ':0', country: us, exits: [{ip: 127.0.0.2}, {ip: '::1', country: de}]}]",
			func(c *Config) any { return c.Proxies[0] },
			Proxy{Name: "p", Listen: ":0", Address: ":0", Country: "US", Turnover: Duration(3 * time.Hour), Exits: []Exit{
				{IP: netip.MustParseAddr("127.0.0.2"), Country: "US"}, {IP: netip.MustParseAddr("::1"), Country: "DE"}}}},
		{"proxies: [{name: p, listen: ':0', country: us, exits: [{ip: 127.0.0.2, region: us-ca, city: Los_Angeles, asn: AS64500}, {ip: 127.0.0.3, asn: 64501}]}]",
			func(c *Config) any { return c.Proxies[0].Exits },
			[]Exit{{IP: netip.MustParseAddr("127.0.0.2"), Country: "US", Region: "US-CA", City: "los_angeles", ASN: 64500},
				{IP: netip.MustParseAddr("127.0.0.3"), Country: "US", ASN: 64501}}},
	}
	for _, tt := range tests {
		c, err := Parse([]byte(tt.yaml))
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.yaml, err)
			continue
		}
		if got := tt.get(c); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Parse(%q): got %#v, want %#v", tt.yaml, got, tt.want)
		}
	}
}

func TestApplyDefaultsIdempotent(t *testing.T) {
	c, err := Load(specFile)
	if err != nil {
		t.Fatal(err)
	}
	c.Metrics.Listen = "off"
	c.ApplyDefaults()
	once := *c
	c.ApplyDefaults()
	if !reflect.DeepEqual(*c, once) {
		t.Errorf("second ApplyDefaults changed the config:\n got %+v\nwant %+v", *c, once)
	}
	if c.Metrics.Listen != "" {
		t.Errorf("Metrics.Listen = %q, want \"\" for off", c.Metrics.Listen)
	}
}

// TestDecodeErrors checks that a bad key or value is reported with its key path and line.
func TestDecodeErrors(t *testing.T) {
	const proxy = "proxies:\n- name: p\n  listen: ':0'\n  exits:\n  - ip: 127.0.0.2\n"
	tests := []struct {
		yaml string
		want []string // substrings of the error
	}{
		{"stor: x", []string{"stor: unknown key (line 1)"}},
		{"api:\n  tls_crt: a.crt", []string{"api.tls_crt: unknown key (line 2)"}},
		{proxy + "    ipp: 1.2.3.4", []string{"proxies[0].exits[0].ipp: unknown key (line 6)"}},
		{"plans: [{name: a, bandwith: 1GB}]", []string{"plans[0].bandwith: unknown key (line 1)"}},
		{"egress: {alow: []}", []string{"egress.alow: unknown key"}},
		{proxy + "  - ip: 1.2.3", []string{`proxies[0].exits[1].ip: invalid IP address "1.2.3" (line 6)`}},
		{proxy + "    asn: ASN64500", []string{`proxies[0].exits[0].asn: invalid AS number "ASN64500": want a number from 1 to 4294967295, such as 64500 or AS64500 (line 6)`}},
		{proxy + "    asn: 0", []string{`proxies[0].exits[0].asn: invalid AS number "0"`}},
		{proxy + "    asn: [1]", []string{`proxies[0].exits[0].asn: invalid AS number`}},
		{proxy + "    region: US-ZZZZ", []string{`proxies[0].exits[0].region: "US-ZZZZ" is not an ISO 3166-2 subdivision code`}},
		{"egress: {allow: [10.0.0.0/8, 10.0.0.0/33]}", []string{`egress.allow[1]: invalid CIDR "10.0.0.0/33" (line 1)`}},
		{"bans: {window: 60x}", []string{`bans.window: invalid duration "60x"`}},
		{"plans:\n- {name: a, bandwidth: 10QB}", []string{`plans[0].bandwidth: invalid size "10QB"`, "(line 2)"}},
		{"plans: [{name: a, subs: many}]", []string{"plans[0].subs: cannot unmarshal !!str `many` into int"}},
		{"plans: [{name: a, subs: [1]}]", []string{"plans[0].subs: cannot unmarshal !!seq into int"}},
		{"bans: {window: [1]}", []string{"bans.window: want a duration"}},
		{"api: {require_https: sometimes}", []string{"api.require_https: cannot unmarshal"}},
		{"hostnames: {interval: soon}", []string{`hostnames.interval: invalid duration "soon"`}},
		{"hostnames: {resolvr: 1.1.1.1:53}", []string{"hostnames.resolvr: unknown key"}},
		{"log: {level: debug}\nlog: {level: info}", []string{"log: key repeated (line 2)"}},
		// every bad value is reported, not just the first
		{"bans: {window: x, duration: y}\nsync: {interval: z}", []string{"bans.window:", "bans.duration:", "sync.interval:"}},
		{"store: [", []string{"yaml:", "line"}},
		{"log: {level: debug}\n---\nlog: {level: info}", []string{"more than one YAML document"}},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.yaml))
		if err == nil {
			t.Errorf("Parse(%q): no error, want %q", tt.yaml, tt.want)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Parse(%q): error %q, want it to contain %q", tt.yaml, err, w)
			}
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.yaml")
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Load(%s): got %v, want an error naming the path", path, err)
	}
}

func TestLoadInvalidFileNamesPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte("log: {level: loud}"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "log.level") {
		t.Errorf("Load(%s): got %v, want an error naming the path and log.level", path, err)
	}
}

func FuzzParse(f *testing.F) {
	spec, err := os.ReadFile(specFile)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(spec)
	f.Add([]byte("egress: {allow: [::1, 10.0.0.0/8], deny_ports: []}\nbans: {window: 5}\n"))
	f.Add([]byte("plans: [{name: a, bandwidth: 1.5 GiB}, {name: b, subs: [x]}]\nx: &a {y: *a}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err == nil && c.Validate() != nil {
			t.Errorf("Parse accepted a config that Validate rejects: %v", c.Validate())
		}
	})
}
