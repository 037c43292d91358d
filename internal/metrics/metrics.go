// Package metrics defines exitmesh's Prometheus metrics on a registry of its own (one per node, so
// several nodes can run in one test process) and serves them in the Prometheus text format.
package metrics

import (
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is one node's set of metrics.
type Metrics struct {
	reg           *prometheus.Registry
	requests      *prometheus.CounterVec
	tunnels       *prometheus.CounterVec
	activeTunnels *prometheus.GaugeVec
	bytes         *prometheus.CounterVec
	errors        *prometheus.CounterVec
	exitUses      *prometheus.CounterVec
	exitHealthy   *prometheus.GaugeVec
	exitActive    *prometheus.GaugeVec
	exitLatency   *prometheus.GaugeVec
	exitChecks    *prometheus.CounterVec
	limitHits     *prometheus.CounterVec
	clientConns   *prometheus.GaugeVec
	unsolicited   *prometheus.CounterVec
	exitRetries   *prometheus.CounterVec
	accessDropped prometheus.Counter
	webhooks      *prometheus.CounterVec
}

// New returns a node's metrics, with the Go runtime and process collectors registered too.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exitmesh_proxy_requests_total", Help: "Forwarded HTTP requests, by proxy server and response status class.",
		}, []string{"proxy", "code"}),
		tunnels: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exitmesh_proxy_tunnels_total", Help: "CONNECT tunnels established, by proxy server.",
		}, []string{"proxy"}),
		activeTunnels: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "exitmesh_proxy_tunnels_active", Help: "CONNECT tunnels open now, by proxy server.",
		}, []string{"proxy"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exitmesh_proxy_bytes_total", Help: "Payload bytes relayed, by proxy server and direction (in: client to origin, out: origin to client).",
		}, []string{"proxy", "direction"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exitmesh_proxy_errors_total", Help: "Requests the proxy refused or failed, by proxy server and reason (the X-ProxyMesh-Error value).",
		}, []string{"proxy", "reason"}),
		exitUses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exitmesh_exit_requests_total", Help: "Requests and tunnels sent through each exit.",
		}, []string{"proxy", "exit"}),
		exitHealthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "exitmesh_exit_healthy", Help: "1 while the exit is in rotation as far as health checks go, else 0.",
		}, []string{"proxy", "exit"}),
		exitActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "exitmesh_exit_active", Help: "1 while pool turnover has the exit in its active set, else 0.",
		}, []string{"proxy", "exit"}),
		exitLatency: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "exitmesh_exit_check_latency_seconds", Help: "Duration of the exit's last successful health check.",
		}, []string{"proxy", "exit"}),
		exitChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exitmesh_exit_checks_total", Help: "Health checks of each exit, by result (ok or error).",
		}, []string{"proxy", "exit", "result"}),
		limitHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exitmesh_limit_hits_total",
			Help: "Connections and requests a resource limit refused or cut, by listener (a proxy server's name, or api) and limit (the config key's last part).",
		}, []string{"listener", "limit"}),
		clientConns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "exitmesh_proxy_client_connections", Help: "Client connections open now, tunnels included, by proxy server.",
		}, []string{"proxy"}),
		unsolicited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exitmesh_origin_unsolicited_total",
			Help: "Origin connections closed because the origin sent bytes no request asked for (behind an answer, or while idle), by proxy server.",
		}, []string{"proxy"}),
		exitRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exitmesh_exit_retries_total",
			Help: "Requests and tunnels sent through another exit after the chosen one failed to connect, by proxy server.",
		}, []string{"proxy"}),
		accessDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "exitmesh_access_log_dropped_total",
			Help: "Access log lines dropped because the log's writer could not keep up (a stuck disk, a slow pipe).",
		}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exitmesh_webhook_attempts_total",
			Help: "Webhook delivery attempts, by result (delivered; retry: failed, will be tried again; failed: given up).",
		}, []string{"result"}),
	}
	m.reg.MustRegister(m.webhooks, m.requests, m.tunnels, m.activeTunnels, m.bytes, m.errors, m.exitUses,
		m.exitHealthy, m.exitActive, m.exitLatency, m.exitChecks, m.limitHits, m.clientConns, m.unsolicited, m.exitRetries, m.accessDropped,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// AccessLogDropped counts an access log line dropped.
func (m *Metrics) AccessLogDropped() { m.accessDropped.Inc() }

// WebhookAttempt counts a webhook delivery attempt by result.
func (m *Metrics) WebhookAttempt(result string) { m.webhooks.WithLabelValues(result).Inc() }

// Handler serves the metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Proxy holds one proxy server's metrics with their labels resolved once, off the hot path.
type Proxy struct {
	m                 *Metrics
	name              string
	Tunnels           prometheus.Counter
	ActiveTunnels     prometheus.Gauge
	BytesIn, BytesOut prometheus.Counter
	ClientConns       prometheus.Gauge
	Unsolicited       prometheus.Counter // origin connections closed for bytes nobody asked for
	ExitRetries       prometheus.Counter // connects tried again on another exit
	Limits            *Limits
	status            [6]prometheus.Counter // by status class 1xx…5xx; index 0 for anything else

	exitsMu sync.RWMutex // guards exits
	exits   map[netip.Addr]prometheus.Counter
}

// Proxy returns the metrics of the proxy server called name.
func (m *Metrics) Proxy(name string) *Proxy {
	p := &Proxy{
		m:             m,
		name:          name,
		Tunnels:       m.tunnels.WithLabelValues(name),
		ActiveTunnels: m.activeTunnels.WithLabelValues(name),
		BytesIn:       m.bytes.WithLabelValues(name, "in"),
		BytesOut:      m.bytes.WithLabelValues(name, "out"),
		ClientConns:   m.clientConns.WithLabelValues(name),
		Unsolicited:   m.unsolicited.WithLabelValues(name),
		ExitRetries:   m.exitRetries.WithLabelValues(name),
		Limits:        m.Limits(name, allLimits...),
		exits:         make(map[netip.Addr]prometheus.Counter),
	}
	for i, code := range []string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"} {
		p.status[i] = m.requests.WithLabelValues(name, code)
	}
	return p
}

// Limit is a resource limit whose hits are counted.
type Limit uint8

// The limits, named in the metric as the last part of their config key.
const (
	LimitConnectionsPerIP Limit = iota
	LimitConnectionsPerAccount
	LimitReadHeader
	LimitMaxHeaderBytes
	LimitMaxHeaderFields
	LimitWrite
	LimitTunnelIdle
	LimitBandwidth // a transfer cut because its login spent a bandwidth limit
	LimitRate      // a request or tunnel over its plan's rate
	numLimits
)

var limitNames = [numLimits]string{"connections_per_ip", "connections_per_account", "read_header", "max_header_bytes", "max_header_fields",
	"write", "tunnel_idle", "bandwidth", "rate"}

var allLimits = []Limit{LimitConnectionsPerIP, LimitConnectionsPerAccount, LimitReadHeader, LimitMaxHeaderBytes,
	LimitMaxHeaderFields, LimitWrite, LimitTunnelIdle, LimitBandwidth, LimitRate}

func (l Limit) String() string { return limitNames[l] }

// Limits counts one listener's limit hits. The counters of the limits a listener enforces are
// resolved up front, so a hit costs an atomic add and each shows as 0 before its first hit.
type Limits struct {
	vec      *prometheus.CounterVec
	listener string
	hits     [numLimits]prometheus.Counter
}

// Limits returns the limit-hit counters of listener, with those of the limits named resolved now.
func (m *Metrics) Limits(listener string, enforced ...Limit) *Limits {
	l := &Limits{vec: m.limitHits, listener: listener}
	for _, which := range enforced {
		l.hits[which] = m.limitHits.WithLabelValues(listener, which.String())
	}
	return l
}

// Hit counts one refusal or cut by the limit which.
func (l *Limits) Hit(which Limit) {
	if c := l.hits[which]; c != nil {
		c.Inc()
		return
	}
	l.vec.WithLabelValues(l.listener, which.String()).Inc()
}

// Request counts one forwarded request answered with status.
func (p *Proxy) Request(status int) {
	class := status / 100
	if class < 1 || class > 5 {
		class = 0
	}
	p.status[class].Inc()
}

// Error counts one refusal or failure for reason.
func (p *Proxy) Error(reason string) { p.m.errors.WithLabelValues(p.name, reason).Inc() }

// ExitUsed counts one request or tunnel sent through the exit with IP ip. The counter is resolved
// once per exit: formatting the IP and hashing labels on every request would cost more than counting.
func (p *Proxy) ExitUsed(ip netip.Addr) {
	p.exitsMu.RLock()
	c, ok := p.exits[ip]
	p.exitsMu.RUnlock()
	if !ok {
		c = p.m.exitUses.WithLabelValues(p.name, ip.String())
		p.exitsMu.Lock()
		p.exits[ip] = c
		p.exitsMu.Unlock()
	}
	c.Inc()
}

// ExitChecked records one health check of the exit with IP ip.
func (p *Proxy) ExitChecked(ip netip.Addr, healthy, active bool, latency time.Duration, err error) {
	exit := ip.String()
	p.m.exitHealthy.WithLabelValues(p.name, exit).Set(boolValue(healthy))
	p.m.exitActive.WithLabelValues(p.name, exit).Set(boolValue(active))
	result := "ok"
	if err != nil {
		result = "error"
	} else {
		p.m.exitLatency.WithLabelValues(p.name, exit).Set(latency.Seconds())
	}
	p.m.exitChecks.WithLabelValues(p.name, exit, result).Inc()
}

// ExitActive records whether turnover has the exit with IP ip in its active set.
func (p *Proxy) ExitActive(ip netip.Addr, active bool) {
	p.m.exitActive.WithLabelValues(p.name, ip.String()).Set(boolValue(active))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
