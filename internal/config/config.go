// Package config is the typed form of exitmesh's YAML config file (SPEC §3.1): Parse decodes it
// strictly (an unknown key is an error), ApplyDefaults fills what the file leaves out, and Validate
// reports every problem at once, each prefixed by its key path, e.g.
// `proxies[1].exits[0].ip: required`.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Defaults for settings the config file may leave out.
const (
	DefaultStore         = "sqlite:./exitmesh.db"
	DefaultAPIListen     = "127.0.0.1:8443"
	DefaultMetricsListen = "127.0.0.1:9464"
	DefaultRetries       = 2
	MaxRetries           = 8
)

// DefaultDenyPorts are the destination ports refused when egress.deny_ports is absent: SMTP
// submission and relay, against spam.
var DefaultDenyPorts = []int{25, 465, 587}

// Config is the whole config file of one node.
type Config struct {
	Store     string    `yaml:"store"` // sqlite:PATH or a postgres:// URL
	API       API       `yaml:"api"`
	Node      Node      `yaml:"node"`
	Metrics   Metrics   `yaml:"metrics"`
	Proxies   []Proxy   `yaml:"proxies"`
	Egress    Egress    `yaml:"egress"`
	Bans      Bans      `yaml:"bans"`
	Hostnames Hostnames `yaml:"hostnames"`
	Plans     []Plan    `yaml:"plans"`
	Timeouts  Timeouts  `yaml:"timeouts"`
	Limits    Limits    `yaml:"limits"`
	Sync      Sync      `yaml:"sync"`
	Usage     Usage     `yaml:"usage"`
	Log       Log       `yaml:"log"`
	Health    Health    `yaml:"health"`
	Sessions  Sessions  `yaml:"sessions"`
	// Retries is how many other exits a request or tunnel tries when its exit fails to connect
	// (refused, unreachable, connect timeout) before any byte was sent; 0 turns retrying off.
	// Parse and Default make an absent key DefaultRetries.
	Retries   int       `yaml:"retries"`
	Dashboard Dashboard `yaml:"dashboard"`
	SMTP      SMTP      `yaml:"smtp"`
	AccessLog AccessLog `yaml:"access_log"`
	Webhooks  []Webhook `yaml:"webhooks"`
}

// Webhook is one of the operator's webhooks: events of the listed types (domain.EventTypes) are
// POSTed to URL, signed with Secret. The operator's URLs are trusted: the egress policy, which
// customers' webhook URLs pass, does not apply to them. Every node should list the same webhooks:
// whichever node routes an event uses its own list.
type Webhook struct {
	URL    string   `yaml:"url"`
	Secret string   `yaml:"secret"`
	Events []string `yaml:"events"`
}

// LogValue keeps the secret out of logs.
func (w Webhook) LogValue() slog.Value {
	return slog.GroupValue(slog.String("url", w.URL), slog.Any("events", w.Events))
}

// WebhookInterval is how often a node routes recorded events and sends the deliveries that are due:
// how long an event waits before it leaves.
const WebhookInterval = time.Second

// MinWebhookSecret is the shortest operator webhook secret: shorter ones can be guessed.
const MinWebhookSecret = 16

// AccessLog is the proxies' access log, one JSON line per request and per tunnel; off while Path is
// empty. Path "-" is standard output; SIGUSR1 reopens the file (for logrotate). Paths adds request
// paths and query strings, which may carry customers' secrets, so they are left out by default.
type AccessLog struct {
	Path  string `yaml:"path"`
	Paths bool   `yaml:"paths"`
}

// Dashboard is the web dashboard served by the API listener. Operators are accounts that also see
// the operator pages; SessionTTL is how long a sign-in lasts.
type Dashboard struct {
	Operators  []string `yaml:"operators"`
	SessionTTL Duration `yaml:"session_ttl"`
	// PublicURL is the dashboard's address as customers reach it, the base of the links it emails;
	// empty means https://<the API listener's address>.
	PublicURL string `yaml:"public_url"`
	Signup    Signup `yaml:"signup"`
}

// Signup is self sign-up on the dashboard: a visitor creates an unconfirmed account on Plan with
// Proxies authorized, and confirms it by a link sent by email (through SMTP) that works for LinkTTL.
// At most RateLimit sign-ups per source IP, and link resends per IP and per account, are accepted
// per RateWindow.
type Signup struct {
	Enabled    bool     `yaml:"enabled"`
	Plan       string   `yaml:"plan"`
	Proxies    []string `yaml:"proxies"`
	LinkTTL    Duration `yaml:"link_ttl"`
	RateLimit  int      `yaml:"rate_limit"`
	RateWindow Duration `yaml:"rate_window"`
}

// SMTP is the mail server that sends confirmation links. With Host empty nothing is sent and each
// link is logged instead. StartTLS (Parse and Default make an absent key true) refuses to send
// unless the server upgrades the connection to TLS; Username and Password, if set, authenticate
// with AUTH PLAIN, which is only sent over TLS or to a loopback server. Timeout bounds the whole
// exchange with the server.
type SMTP struct {
	Host     string   `yaml:"host"`
	Port     int      `yaml:"port"`
	Username string   `yaml:"username"`
	Password string   `yaml:"password"`
	From     string   `yaml:"from"` // the sender, such as "exitmesh <noreply@example.net>"
	StartTLS bool     `yaml:"starttls"`
	Timeout  Duration `yaml:"timeout"`
}

// LogValue keeps the password out of logs.
func (s SMTP) LogValue() slog.Value {
	return slog.GroupValue(slog.String("host", s.Host), slog.Int("port", s.Port), slog.String("username", s.Username),
		slog.String("from", s.From), slog.Bool("starttls", s.StartTLS), slog.Duration("timeout", s.Timeout.D()))
}

// MaxSMTPTimeout is the longest smtp.timeout: a sign-up waits for the mail server, and the API
// listener's write timeout is 30 s.
const MaxSMTPTimeout = Duration(20 * time.Second)

// Health is how every proxy server checks its exits: each Interval, a TCP connection to Target
// (host:port) or a GET of Target (an http:// or https:// URL, answered below 500) through each exit,
// within Timeout. Fall failures in a row take an exit out of rotation, Rise successes bring it back.
// An empty Target turns checking off; the target must be reachable under the egress policy.
type Health struct {
	Target   string   `yaml:"target"`
	Interval Duration `yaml:"interval"`
	Timeout  Duration `yaml:"timeout"`
	Fall     int      `yaml:"fall"`
	Rise     int      `yaml:"rise"`
}

// Sessions bound sticky sessions (the username's -session- or X-ProxyMesh-Session): a session keeps
// its exit for TTL after its last request; each proxy server remembers at most Max sessions.
type Sessions struct {
	TTL Duration `yaml:"ttl"`
	Max int      `yaml:"max"`
}

// API is the account API and dashboard listener. With both TLSCert and TLSKey empty, the server
// generates a self-signed pair.
type API struct {
	Listen     string `yaml:"listen"`      // HTTPS address
	TLSCert    string `yaml:"tls_cert"`    // PEM file
	TLSKey     string `yaml:"tls_key"`     // PEM file
	HTTPListen string `yaml:"http_listen"` // optional plain-HTTP listener that redirects to Listen
	// RequireHTTPS answers a plain-HTTP API request with a redirect to HTTPS (API §1); Parse and
	// Default make an absent key true.
	RequireHTTPS bool `yaml:"require_https"`
	// UnconfirmedAllowance is how many API requests an unconfirmed account may make before its API
	// access is blocked for UnconfirmedBlock (API §4, row 8), which must be 4h to 6h.
	UnconfirmedAllowance int      `yaml:"unconfirmed_allowance"`
	UnconfirmedBlock     Duration `yaml:"unconfirmed_block"`
}

// Limits on API.UnconfirmedBlock (API §4: "a configurable 4–6 h").
const (
	MinUnconfirmedBlock = Duration(4 * time.Hour)
	MaxUnconfirmedBlock = Duration(6 * time.Hour)
)

// Node identifies this process among the nodes sharing a store.
type Node struct {
	Name string `yaml:"name"` // default: the host name
	API  bool   `yaml:"api"`  // serve the account API; Parse and Default make an absent key true
}

// Metrics is the Prometheus listener. An empty Listen (the value "off" in the file) disables it.
type Metrics struct {
	Listen string `yaml:"listen"`
}

// Proxy is a proxy server hosted by this node.
type Proxy struct {
	Name    string `yaml:"name"`
	Listen  string `yaml:"listen"`
	Address string `yaml:"address"` // what customers are told; default Listen
	Country string `yaml:"country"` // optional ISO 3166-1 alpha-2, upper-case
	Exits   []Exit `yaml:"exits"`
	// Active, when positive and below the number of exits, keeps only that many exits in rotation
	// and draws a new active set every Turnover.
	Active   int      `yaml:"active"`
	Turnover Duration `yaml:"turnover"`
	// TLS, when set, makes the port also accept TLS (https:// proxy URLs) with this certificate,
	// read again on SIGHUP.
	TLS *ProxyTLS `yaml:"tls"`
}

// ProxyTLS is a proxy server's certificate and key, PEM files.
type ProxyTLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Exit is one way out to the internet: a local source address, or an upstream proxy with the
// address it exits from.
type Exit struct {
	IP      netip.Addr `yaml:"ip"`      // required: a local exit's source address; an upstream's exit address
	URL     string     `yaml:"url"`     // optional upstream proxy: http://, https:// or socks5://, optional user:password
	Country string     `yaml:"country"` // upper-case; default: the proxy's country
	// Optional, for steering by place: clients ask for them with X-ProxyMesh-Region, -City, -ASN.
	Region string `yaml:"region"` // ISO 3166-2 subdivision, upper-case ("US-CA")
	City   string `yaml:"city"`   // lower-case slug ("los_angeles")
	ASN    uint32 `yaml:"asn"`    // written 64500 or AS64500; 0: not set
}

// Egress limits where proxied connections may go.
type Egress struct {
	Allow     []netip.Prefix `yaml:"allow"`      // allowed in spite of the internal-address guard
	DenyPorts []int          `yaml:"deny_ports"` // nil means DefaultDenyPorts; empty denies none
}

// Bans set when a client IP is banned: AuthFailures failed authentications, or NotFound requests
// for unknown proxy servers, within Window ban it for Duration.
type Bans struct {
	AuthFailures int      `yaml:"auth_failures"`
	NotFound     int      `yaml:"not_found"`
	Window       Duration `yaml:"window"`
	Duration     Duration `yaml:"duration"`
}

// Hostnames is how authorized hostnames are re-resolved: every Interval (at most MaxHostnameInterval,
// SPEC §2.4), through the DNS server Resolver (host:port), or the system resolver when it is empty.
type Hostnames struct {
	Interval Duration `yaml:"interval"`
	Resolver string   `yaml:"resolver"`
}

// MaxHostnameInterval is the longest hostnames.interval: hostnames are re-resolved at least every
// 5 minutes.
const MaxHostnameInterval = Duration(5 * time.Minute)

// Plan is a plan created or updated at start. Bandwidth is per calendar month; 0 is unlimited.
type Plan struct {
	Name      string `yaml:"name"`
	Proxies   int    `yaml:"proxies"`
	Subs      int    `yaml:"subs"`
	IPs       int    `yaml:"ips"`
	Hostnames int    `yaml:"hostnames"`
	Bandwidth Size   `yaml:"bandwidth"`
	Tokens    int    `yaml:"tokens"` // active API tokens of an account and its sub-accounts; 0 = none
	// Rate, Speed and Connections hold per account (sub-accounts included) on each node; 0 = none:
	// requests and tunnel opens per second, bytes per second each way, requests and tunnels in flight.
	Rate        int  `yaml:"rate"`
	Speed       Size `yaml:"speed"`
	Connections int  `yaml:"connections"`
}

// Timeouts of the proxy listeners.
type Timeouts struct {
	Origin     Duration `yaml:"origin"`      // connect + first response byte, unless X-ProxyMesh-Timeout
	MaxOrigin  Duration `yaml:"max_origin"`  // cap on X-ProxyMesh-Timeout
	ReadHeader Duration `yaml:"read_header"` // a client's request head must arrive within this
	Idle       Duration `yaml:"idle"`        // keep-alive idle time of a client connection
	TunnelIdle Duration `yaml:"tunnel_idle"` // a CONNECT tunnel with no bytes either way is closed
	Write      Duration `yaml:"write"`       // a client that takes no byte of an answer for this long is dropped
	Shutdown   Duration `yaml:"shutdown"`    // how long a stopping node waits for requests and tunnels
}

// Limits bound what a client may send and hold open. The connection counts are per node: every
// proxy server of the node shares one count per client IP and per account; the API listeners
// (HTTPS and plain HTTP) share a count per client IP of their own.
type Limits struct {
	MaxHeaderBytes  Size `yaml:"max_header_bytes"`  // a request head, request line included
	MaxHeaderFields int  `yaml:"max_header_fields"` // header field lines in a request head
	// ConnectionsPerIP bounds the client connections open at once from one source IP (an IPv6 client
	// by its /64); one more is closed as soon as it is accepted.
	ConnectionsPerIP int `yaml:"connections_per_ip"`
	// ConnectionsPerAccount bounds an account's requests and tunnels in flight at once, its
	// sub-accounts' included; one more is answered 429.
	ConnectionsPerAccount int `yaml:"connections_per_account"`
}

// APIListener is the listener label of the account API's metrics, beside the proxy servers' names,
// which therefore cannot take it.
const APIListener = "api"

// MaxConnectionsLimit is the highest limits.connections_per_ip and limits.connections_per_account.
const MaxConnectionsLimit = 1_000_000

// Sync is how a node follows changes other nodes make to the store.
type Sync struct {
	Interval Duration `yaml:"interval"`
	// FeedRetention is how long the store keeps change feed entries: a node down for longer loads
	// every account at its next start instead of the changes it missed.
	FeedRetention Duration `yaml:"feed_retention"`
}

// Usage is how traffic counters reach the store.
type Usage struct {
	FlushInterval Duration `yaml:"flush_interval"`
	// MeterInterval is how often the bytes of open tunnels and long answers are counted while they
	// run, and checked against the bandwidth limits covering their login.
	MeterInterval Duration `yaml:"meter_interval"`
	// ExitRetention is how long the store keeps which login used which exit in each hour (abuse
	// attribution: exitmesh admin who); older hours are deleted.
	ExitRetention Duration `yaml:"exit_retention"`
}

// Log configures the slog handler.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn or error
	Format string `yaml:"format"` // text or json
}

// Default returns a config with every default applied and no proxies or plans.
func Default() *Config {
	c := &Config{
		API:     API{RequireHTTPS: true},
		Node:    Node{API: true},
		Metrics: Metrics{Listen: DefaultMetricsListen},
		SMTP:    SMTP{StartTLS: true},
		Retries: DefaultRetries,
	}
	c.ApplyDefaults()
	return c
}

// ApplyDefaults fills every setting left at its zero value with its default, gives each proxy's
// exits the proxy's country unless they have their own, and upper-cases countries. It is
// idempotent. Node.API, API.RequireHTTPS, Metrics.Listen and SMTP.StartTLS are left alone, because
// their zero values mean "no API", "plain HTTP allowed", "no metrics" and "no TLS": Default and
// Parse supply their defaults.
func (c *Config) ApplyDefaults() {
	setString(&c.Store, DefaultStore)
	setString(&c.API.Listen, DefaultAPIListen)
	setInt(&c.API.UnconfirmedAllowance, 20)
	setDuration(&c.API.UnconfirmedBlock, Duration(5*time.Hour))
	if c.Node.Name == "" {
		c.Node.Name, _ = os.Hostname() // on failure Validate reports node.name
	}
	if c.Metrics.Listen == "off" {
		c.Metrics.Listen = ""
	}
	for i := range c.Proxies {
		c.Proxies[i].applyDefaults()
	}
	if c.Egress.DenyPorts == nil {
		c.Egress.DenyPorts = append([]int(nil), DefaultDenyPorts...)
	}
	setInt(&c.Bans.AuthFailures, 10)
	setInt(&c.Bans.NotFound, 20)
	setDuration(&c.Bans.Window, Duration(time.Minute))
	setDuration(&c.Bans.Duration, Duration(15*time.Minute))
	setDuration(&c.Hostnames.Interval, MaxHostnameInterval)
	c.Timeouts.applyDefaults()
	if c.Limits.MaxHeaderBytes == 0 {
		c.Limits.MaxHeaderBytes = 64 * KiB
	}
	if c.Limits.MaxHeaderFields == 0 {
		c.Limits.MaxHeaderFields = 100
	}
	setInt(&c.Limits.ConnectionsPerIP, 1024)
	setInt(&c.Limits.ConnectionsPerAccount, 1024)
	setDuration(&c.Sync.Interval, Duration(500*time.Millisecond))
	setDuration(&c.Sync.FeedRetention, Duration(24*time.Hour))
	setDuration(&c.Usage.FlushInterval, Duration(10*time.Second))
	setDuration(&c.Usage.MeterInterval, Duration(time.Second))
	setDuration(&c.Usage.ExitRetention, Duration(90*24*time.Hour))
	setString(&c.Log.Level, "info")
	setString(&c.Log.Format, "text")
	setDuration(&c.Health.Interval, Duration(30*time.Second))
	setDuration(&c.Health.Timeout, Duration(5*time.Second))
	setInt(&c.Health.Fall, 3)
	setInt(&c.Health.Rise, 2)
	setDuration(&c.Sessions.TTL, Duration(10*time.Minute))
	setInt(&c.Sessions.Max, 100_000)
	setDuration(&c.Dashboard.SessionTTL, Duration(12*time.Hour))
	setDuration(&c.Dashboard.Signup.LinkTTL, Duration(48*time.Hour))
	setInt(&c.Dashboard.Signup.RateLimit, 5)
	setDuration(&c.Dashboard.Signup.RateWindow, Duration(time.Hour))
	setInt(&c.SMTP.Port, 587)
	setDuration(&c.SMTP.Timeout, Duration(10*time.Second))
}

func (p *Proxy) applyDefaults() {
	setString(&p.Address, p.Listen)
	setDuration(&p.Turnover, Duration(3*time.Hour))
	p.Country = strings.ToUpper(p.Country)
	for j := range p.Exits {
		e := &p.Exits[j]
		setString(&e.Country, p.Country)
		e.Country = strings.ToUpper(e.Country)
		e.Region = strings.ToUpper(e.Region)
		e.City = strings.ToLower(e.City)
	}
}

func (t *Timeouts) applyDefaults() {
	setDuration(&t.Origin, Duration(30*time.Second))
	setDuration(&t.MaxOrigin, Duration(120*time.Second))
	setDuration(&t.ReadHeader, Duration(10*time.Second))
	setDuration(&t.Idle, Duration(90*time.Second))
	setDuration(&t.TunnelIdle, Duration(10*time.Minute))
	setDuration(&t.Write, Duration(60*time.Second))
	setDuration(&t.Shutdown, Duration(15*time.Second))
}

func setString(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

func setInt(n *int, def int) {
	if *n == 0 {
		*n = def
	}
}

func setDuration(d *Duration, def Duration) {
	if *d == 0 {
		*d = def
	}
}

// Load reads the config file at path and parses it.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a config file, applies defaults and validates the result. A key the config does
// not know is an error, so a typo is never silently ignored. Errors name the key path and line;
// when the file does not decode, those errors are returned and Validate does not run. An empty
// file is the default config.
func Parse(data []byte) (*Config, error) {
	c := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(c)
	if errors.Is(err, io.EOF) {
		err = nil
	} else if err == nil && !errors.Is(dec.Decode(new(yaml.Node)), io.EOF) {
		err = errors.New("the file holds more than one YAML document")
	}
	if err != nil {
		return nil, locateErrors(data, err)
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}
