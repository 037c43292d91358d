package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"

	"github.com/exitmesh/exitmesh/bench/benchstore"
	"github.com/exitmesh/exitmesh/internal/domain"
)

// server is a proxy under test: how to start it, and where it listens. A server can be started
// again (the idle-tunnel figure wants a fresh process).
type server struct {
	name  string
	addr  string
	start func() (*proc, error)
	proc  *proc
}

func (s *server) run(ctx context.Context) error {
	p, err := s.start()
	if err != nil {
		return err
	}
	s.proc = p
	return waitListening(ctx, p, s.addr)
}

func (s *server) restart(ctx context.Context) error {
	s.proc.stop()
	return s.run(ctx)
}

// The exitmesh account the load authenticates as, by its source IP or by Basic credentials.
const (
	benchUser     = "bench"
	benchPassword = "bench-password"
)

func basicAuth(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// manyLogins is how many of the store's accounts the many-logins column sends requests as: origin
// connections are kept per login, so this measures the pool with as many customers as connections.
const manyLogins = 64

// benchLogins returns the Basic credentials of the first n accounts populate creates.
func benchLogins(n int) []string {
	logins := make([]string, n)
	for i := range n {
		user := benchUser
		if i > 0 {
			user = "account" + strconv.Itoa(i)
		}
		logins[i] = basicAuth(user, benchPassword)
	}
	return logins
}

// tinyproxyServer runs Debian's tinyproxy with its defaults, except: no log per connection, room
// for the idle-tunnel figure's clients, CONNECT to any port, and a long idle timeout.
func tinyproxyServer(dir string, port, cpu int) *server {
	conf := filepath.Join(dir, "tinyproxy.conf")
	return &server{name: "tinyproxy", addr: loopback(port), start: func() (*proc, error) {
		text := fmt.Sprintf(`User nobody
Group nogroup
Port %d
Listen 127.0.0.1
Timeout 600
MaxClients 20000
LogLevel Critical
Allow 127.0.0.1
`, port)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			return nil, err
		}
		return start(dir, "tinyproxy", cpu, "tinyproxy", "-d", "-c", conf)
	}}
}

// squidServer runs Debian's squid as one process with its defaults, except: no cache (every
// request reaches the origin, as through the other proxies), no access log, loopback DNS only (no
// lookup may leave the machine; the targets are IP literals), and room for the idle tunnels.
func squidServer(dir string, port, cpu int) *server {
	sdir := filepath.Join(dir, "squid")
	conf := filepath.Join(sdir, "squid.conf")
	return &server{name: "squid", addr: loopback(port), start: func() (*proc, error) {
		if err := os.MkdirAll(sdir, 0o777); err != nil {
			return nil, err
		}
		os.Chmod(sdir, 0o777) // squid drops to the proxy user
		text := fmt.Sprintf(`http_port 127.0.0.1:%d
http_access allow all
cache deny all
cache_mem 8 MB
access_log none
cache_store_log none
cache_log %s/cache.log
pid_filename %s/squid.pid
coredump_dir %s
visible_hostname exitmesh-bench
dns_nameservers 127.0.0.1
max_filedescriptors 65536
shutdown_lifetime 0 seconds
`, port, sdir, sdir, sdir)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			return nil, err
		}
		return start(dir, "squid", cpu, "squid", "-N", "-f", conf)
	}}
}

// microsocksServer is Debian's microsocks, a small SOCKS5 server, without authentication.
func microsocksServer(dir string, port, cpu int) *server {
	return &server{name: "microsocks", addr: loopback(port), start: func() (*proc, error) {
		return start(dir, "microsocks", cpu, "microsocks", "-i", "127.0.0.1", "-p", strconv.Itoa(port))
	}}
}

func goproxyServer(dir, bin string, port, cpu int) *server {
	return &server{name: "goproxy", addr: loopback(port), start: func() (*proc, error) {
		return start(dir, "goproxy", cpu, filepath.Join(bin, "goproxy"), "-listen", loopback(port))
	}}
}

// exitmeshServer runs exitmesh with one proxy server whose exit is 127.0.0.2 (127.0.0.1, the origin's
// address, cannot be an exit: the node never connects to its own exits' addresses), egress allowed to
// 127.0.0.1 only, and no API or metrics listener. Its per-client limits are lifted: the harness is
// one client at one address holding up to -tunnels tunnels, and the peers have no such limits. Its store holds accounts accounts with ipsEach
// authorized IPs each; the first is benchUser, whose first IP is 127.0.0.1.
func exitmeshServer(ctx context.Context, dir, bin, name string, port, cpu, accounts, ipsEach int) (*server, error) {
	sdir := filepath.Join(dir, name)
	if err := os.MkdirAll(sdir, 0o755); err != nil {
		return nil, err
	}
	conf := filepath.Join(sdir, "exitmesh.yaml")
	text := fmt.Sprintf(`store: sqlite:%s/exitmesh.db
node: {name: bench, api: false}
metrics: {listen: "off"}
proxies:
  - name: bench
    listen: 127.0.0.1:%d
    exits:
      - ip: 127.0.0.2
egress: {allow: [127.0.0.1/32]}
plans:
  - {name: bench, proxies: 1, subs: 0, ips: %d, hostnames: 0, bandwidth: 0}
timeouts: {shutdown: 1s}
limits: {connections_per_ip: 1000000, connections_per_account: 1000000}
log: {level: warn}
`, sdir, port, max(ipsEach, 1))
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return nil, err
	}
	if err := populate(ctx, conf, accounts, ipsEach); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &server{name: name, addr: loopback(port), start: func() (*proc, error) {
		return start(dir, name, cpu, filepath.Join(bin, "exitmesh"), "serve", "--config", conf)
	}}, nil
}

// populate creates the accounts in the store of the config at path through the store's bulk path,
// all with one password: the first is benchUser, whose first IP is 127.0.0.1; every other IP is an
// RFC 2544 benchmarking address, stored and never reached.
func populate(ctx context.Context, path string, accounts, ipsEach int) error {
	first := netip.MustParseAddr("198.18.0.1").As4()
	base := uint32(first[0])<<24 | uint32(first[1])<<16 | uint32(first[2])<<8 | uint32(first[3])
	return benchstore.Seed(ctx, path, benchPassword, accounts, func(i int, hash string) domain.BulkAccount {
		a := domain.NewAccount{Username: benchUser, PasswordHash: hash, Plan: "bench", Confirmed: true, Proxies: []string{"bench"}}
		if i > 0 {
			a.Username = "account" + strconv.Itoa(i)
		} else {
			a.IPs = append(a.IPs, netip.MustParseAddr("127.0.0.1"))
		}
		for k := len(a.IPs); k < ipsEach; k++ {
			v := base + uint32(i*ipsEach+k)
			a.IPs = append(a.IPs, netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}))
		}
		return domain.BulkAccount{Account: a}
	})
}

func loopback(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
