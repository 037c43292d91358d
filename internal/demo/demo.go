// Package demo runs a complete exitmesh network on loopback: two proxy servers with four loopback
// exits each, a fresh SQLite store, an origin (HTTP and HTTPS) that reports the client IP it sees, and
// a demo account; it prints the credentials and curl commands that show rotation and steering.
package demo

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/certs"
	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/node"
	"github.com/exitmesh/exitmesh/internal/origin"
)

// Options configure the demo.
type Options struct {
	// Port is the first of the ports the demo listens on (proxies Port and Port+1, the account API
	// Port+2, metrics Port+10, origins Port+18 and Port+19). 0 picks free ports.
	Port int
	// Dir holds the config and the SQLite file; empty means a new temporary directory removed at exit.
	Dir    string
	Stdout io.Writer
	Log    *slog.Logger
}

// Ready is printed once the network serves; tests wait for it.
const Ready = "exitmesh demo is running"

const configTemplate = `# Written by "exitmesh demo". Try: exitmesh admin --config {{.Dir}}/exitmesh.yaml account list
store: sqlite:{{.Dir}}/exitmesh.db
api: {listen: "127.0.0.1:{{call .Port 2}}"}
metrics: {listen: "127.0.0.1:{{call .Port 10}}"}
proxies:
  - name: us-ca
    listen: "127.0.0.1:{{call .Port 0}}"
    country: US
    exits: [{ip: 127.0.0.2}, {ip: 127.0.0.3}, {ip: 127.0.0.4}, {ip: 127.0.0.5}]
    tls: {cert: "{{.Dir}}/proxy.crt", key: "{{.Dir}}/proxy.key"}   # https:// proxy URLs on the same port
  - name: world
    listen: "127.0.0.1:{{call .Port 1}}"
    exits:
      - {ip: 127.0.0.6, country: US}
      - {ip: 127.0.0.7, country: DE}
      - {ip: 127.0.0.8, country: DE}
      - {ip: 127.0.0.9, country: JP}
egress:
  allow: [127.0.0.1/32]   # the demo origin; every other internal address stays refused
health: {target: "{{.Origin}}", interval: 10s, timeout: 2s}   # each exit must reach the demo origin
dashboard: {operators: [demo]}   # the demo account also sees the operator pages
plans:
  - {name: demo, proxies: 5, subs: 5, ips: 10, hostnames: 5, bandwidth: 0, tokens: 5}
`

// Run starts the network and serves until ctx ends.
func Run(ctx context.Context, o Options) (err error) {
	dir := o.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "exitmesh-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("demo directory: %w", err)
	}
	plain, secure, err := startOrigins(o.Port)
	if err != nil {
		return err
	}
	defer plain.Close()
	defer secure.Close()

	cfgPath := filepath.Join(dir, "exitmesh.yaml")
	if err := writeProxyCertificate(dir); err != nil {
		return err
	}
	if err := writeConfig(cfgPath, dir, o.Port, plain.Addr); err != nil {
		return err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return fmt.Errorf("demo config: %w", err)
	}
	n, err := node.Start(ctx, cfg, o.Log)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = errors.Join(err, n.Close(sctx))
	}()
	password, err := createAccount(ctx, n.Store())
	if err != nil {
		return err
	}
	if err := n.Refresh(ctx); err != nil { // the banner's curl lines must work at once
		return err
	}
	printBanner(o.Stdout, banner{
		Dir: dir, Config: cfgPath, Password: password,
		USCA: n.ProxyAddr("us-ca"), World: n.ProxyAddr("world"), Metrics: n.MetricsAddr(), API: n.APIAddr(),
		Origin: "http://" + plain.Addr, TLSOrigin: "https://" + secure.Addr,
	})
	select {
	case <-ctx.Done():
		fmt.Fprintln(o.Stdout, "\nstopping the demo network")
		return nil
	case err := <-n.Err():
		return err
	}
}

// writeProxyCertificate makes the self-signed certificate us-ca takes TLS with, for 127.0.0.1.
func writeProxyCertificate(dir string) error {
	_, certPEM, keyPEM, err := certs.SelfSigned("127.0.0.1", "localhost")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "proxy.key"), keyPEM, 0o600); err != nil {
		return fmt.Errorf("demo proxy key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "proxy.crt"), certPEM, 0o644); err != nil {
		return fmt.Errorf("demo proxy certificate: %w", err)
	}
	return nil
}

func writeConfig(path, dir string, base int, origin string) error {
	t := template.Must(template.New("config").Parse(configTemplate))
	var b strings.Builder
	err := t.Execute(&b, struct {
		Dir    string
		Origin string
		Port   func(offset int) int
	}{dir, origin, func(offset int) int {
		if base == 0 {
			return 0
		}
		return base + offset
	}})
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// origins are the demo's web servers: what a proxied request reaches.
type originServer struct {
	Addr string
	srv  *http.Server
}

func (s *originServer) Close() { s.srv.Close() }

func startOrigins(base int) (plain, secure *originServer, err error) {
	port := func(offset int) string {
		if base == 0 {
			return "127.0.0.1:0"
		}
		return fmt.Sprintf("127.0.0.1:%d", base+offset)
	}
	if plain, err = startOrigin(port(19), nil); err != nil {
		return nil, nil, err
	}
	cert, _, _, err := certs.SelfSigned("127.0.0.1", "localhost")
	if err != nil {
		plain.Close()
		return nil, nil, err
	}
	if secure, err = startOrigin(port(18), &tls.Config{Certificates: []tls.Certificate{cert}}); err != nil {
		plain.Close()
		return nil, nil, err
	}
	return plain, secure, nil
}

func startOrigin(addr string, tlsCfg *tls.Config) (*originServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("demo origin: %w", err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	srv := &http.Server{Handler: origin.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) // ends when Close closes the listener
	return &originServer{Addr: ln.Addr().String(), srv: srv}, nil
}

func createAccount(ctx context.Context, st domain.Store) (string, error) {
	password := rand.Text()[:16]
	hash, err := auth.HashPassword(password)
	if err != nil {
		return "", err
	}
	_, err = st.CreateAccount(ctx, domain.NewAccount{Username: "demo", PasswordHash: hash, Plan: "demo",
		Confirmed: true, Proxies: []string{"us-ca", "world"}})
	if err != nil {
		return "", fmt.Errorf("create demo account: %w", err)
	}
	return password, nil
}

type banner struct {
	Dir, Config, Password                        string
	USCA, World, Metrics, Origin, TLSOrigin, API string
}

const bannerTemplate = `{{.Ready}}  (Ctrl-C stops it)

  proxy servers  us-ca  {{.USCA}}   exits 127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.5 (US); HTTP, HTTPS, SOCKS5
                 world  {{.World}}   exits 127.0.0.6 (US) 127.0.0.7 (DE) 127.0.0.8 (DE) 127.0.0.9 (JP)
  origin         {{.Origin}}  and  {{.TLSOrigin}}  (they report the client IP they see)
  account        demo / {{.Password}}
  account API    https://{{.API}}/api/  (certificate {{.Dir}}/exitmesh-api.crt)
  dashboard      https://{{.API}}/  (sign in as demo; self-signed certificate: accept it once)
  metrics        http://{{.Metrics}}/metrics
  store          {{.Dir}}/exitmesh.db

Try:
  # rotation: each request leaves through a random exit; the origin prints the IP it saw
  for i in 1 2 3 4 5 6; do curl -s -x http://demo:{{.Password}}@{{.USCA}} {{.Origin}}/ip; done

  # the exit used comes back in X-ProxyMesh-IP
  curl -s -o /dev/null -D - -x http://demo:{{.Password}}@{{.USCA}} {{.Origin}}/ip

  # pin an exit, or exclude some
  curl -s -x http://demo:{{.Password}}@{{.USCA}} -H 'X-ProxyMesh-IP: 127.0.0.3' {{.Origin}}/ip
  curl -s -x http://demo:{{.Password}}@{{.USCA}} -H 'X-ProxyMesh-Not-IP: 127.0.0.2,127.0.0.3' {{.Origin}}/ip

  # only German exits of the world proxy server
  curl -s -x http://demo:{{.Password}}@{{.World}} -H 'X-ProxyMesh-Country: DE' {{.Origin}}/ip

  # HTTPS through a CONNECT tunnel (self-signed origin, hence -k); the exit is on the CONNECT answer
  curl -sk -x http://demo:{{.Password}}@{{.USCA}} --proxy-header 'X-ProxyMesh-IP: 127.0.0.5' {{.TLSOrigin}}/ip

  # steering in the username, for clients that cannot send headers on CONNECT: a sticky session
  # keeps its exit; -country-XX and -ip-A.B.C.D work the same way (docs/STEERING.md)
  for i in 1 2 3; do curl -sk -x http://demo-session-abc123:{{.Password}}@{{.USCA}} {{.TLSOrigin}}/ip; done
  curl -sk -x http://demo-country-jp:{{.Password}}@{{.World}} {{.TLSOrigin}}/ip

  # SOCKS5 on the same port (the proxy resolves the name: socks5h); username steering works as above
  curl -s --socks5-hostname demo-session-s5:{{.Password}}@{{.USCA}} {{.Origin}}/ip

  # TLS to the proxy: an https:// proxy URL on the same port (its certificate is {{.Dir}}/proxy.crt)
  curl -s --proxy https://demo:{{.Password}}@{{.USCA}} --proxy-cacert {{.Dir}}/proxy.crt {{.Origin}}/ip

  # the account API: authorize this machine's IP, then the proxy needs no password from here
  curl -s --cacert {{.Dir}}/exitmesh-api.crt -u demo:{{.Password}} https://{{.API}}/api/ip/add/ -X POST
  curl -s -x http://{{.USCA}} {{.Origin}}/ip
  curl -s --cacert {{.Dir}}/exitmesh-api.crt -u demo:{{.Password}} https://{{.API}}/api/proxies/available/

  # the operator's view, from another terminal while the demo runs
  # (build the binary first: go build -o exitmesh ./cmd/exitmesh)
  ./exitmesh admin --config {{.Config}} account list
  ./exitmesh admin --config {{.Config}} usage
`

func printBanner(w io.Writer, b banner) {
	t := template.Must(template.New("banner").Parse(bannerTemplate))
	t.Execute(w, struct {
		banner
		Ready string
	}{b, Ready})
}
