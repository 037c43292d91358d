package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/internal/account"
	"github.com/exitmesh/exitmesh/internal/api"
	"github.com/exitmesh/exitmesh/internal/certs"
	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/connlimit"
	"github.com/exitmesh/exitmesh/internal/hostnames"
	"github.com/exitmesh/exitmesh/internal/httphead"
	"github.com/exitmesh/exitmesh/internal/metrics"
	"github.com/exitmesh/exitmesh/internal/operator"
	"github.com/exitmesh/exitmesh/internal/web"
	"github.com/exitmesh/exitmesh/internal/webhooks"
)

// startAPI binds the API's HTTPS listener and, if configured, its plain-HTTP listener, and returns
// the servers to run. It runs before serving starts so a bad certificate or a taken port fails Start.
func (n *Node) startAPI(ctx context.Context, lookup hostnames.LookupFunc) error {
	cfg := n.cfg
	cert, err := n.apiCertificate()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return fmt.Errorf("api listener: %w", err)
	}
	n.apiAddr = ln.Addr().String()
	changed := func(ctx context.Context) { n.view.Refresh(ctx, n.store) }
	accounts := account.New(account.Config{
		Store:     n.store,
		Lookup:    lookup,
		Changed:   changed,
		TokenUses: n.tokens,
		CheckWebhookURL: func(ctx context.Context, raw string) (string, error) {
			return webhooks.CheckURL(ctx, n.egress.Load(), raw)
		},
		UnconfirmedAllowance: cfg.API.UnconfirmedAllowance,
		UnconfirmedBlock:     cfg.API.UnconfirmedBlock.D(),
	})
	apiHandler := api.New(api.Config{Store: n.store, Accounts: accounts, Verifier: n.verifier, Bans: n.bans, Log: n.log})
	signup, err := n.dashboardSignup()
	if err != nil {
		ln.Close()
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", apiHandler)
	ops := operator.New(operator.Config{Store: n.store, Changed: changed, Bans: n.bans})
	mux.Handle("/", web.New(web.Config{Store: n.store, Accounts: accounts, Verifier: n.verifier, Bans: n.bans,
		Operators: cfg.Dashboard.Operators, Operator: ops, SessionTTL: cfg.Dashboard.SessionTTL.D(), Log: n.log, Signup: signup}))
	handler := http.Handler(mux)
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.Timeouts.ReadHeader.D(),
		ReadTimeout:       30 * time.Second, // API bodies are small (64 KiB at most)
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       cfg.Timeouts.Idle.D(),
		MaxHeaderBytes:    int(cfg.Limits.MaxHeaderBytes),
		ConnState:         apiConnState,
		ErrorLog:          httpErrorLog(n.log),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	}
	n.serveHTTP("api", srv, httphead.Listen(tls.NewListener(n.limitAPI(ln), srv.TLSConfig), headConfig(cfg)))
	n.log.Info("api listening", "addr", n.apiAddr, "scheme", "https")

	if cfg.API.HTTPListen == "" {
		return nil
	}
	hln, err := net.Listen("tcp", cfg.API.HTTPListen)
	if err != nil {
		return fmt.Errorf("api http listener: %w", err)
	}
	n.apiHTTPAddr = hln.Addr().String()
	plain := http.Handler(handler)
	if cfg.API.RequireHTTPS {
		_, port, _ := net.SplitHostPort(n.apiAddr)
		plain = api.Redirect(port)
	}
	plainSrv := &http.Server{Handler: plain, ReadHeaderTimeout: cfg.Timeouts.ReadHeader.D(),
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, MaxHeaderBytes: int(cfg.Limits.MaxHeaderBytes),
		ConnState: apiConnState, ErrorLog: httpErrorLog(n.log)}
	n.serveHTTP("api-http", plainSrv, httphead.Listen(n.limitAPI(hln), headConfig(cfg)))
	n.log.Info("api listening", "addr", n.apiHTTPAddr, "scheme", "http", "redirects", cfg.API.RequireHTTPS)
	return nil
}

// limitAPI applies limits.connections_per_ip to an API listener: both API listeners share one count
// per client IP, apart from the proxy servers', so that proxy traffic cannot lock a customer out of
// the dashboard, nor the reverse. It also counts the clients that timeouts.read_header cuts.
func (n *Node) limitAPI(ln net.Listener) net.Listener {
	hits := n.metrics.Limits(config.APIListener, metrics.LimitConnectionsPerIP, metrics.LimitReadHeader)
	return &connlimit.Listener{Listener: ln, Limit: n.apiConnsPerIP,
		Refused:      func() { hits.Hit(metrics.LimitConnectionsPerIP) },
		HeadTimedOut: func() { hits.Hit(metrics.LimitReadHeader) }}
}

// apiCertificate loads the configured pair, or the self-signed pair kept beside the store (made on
// first use, so clients can pin it across restarts).
func (n *Node) apiCertificate() (tls.Certificate, error) {
	c := n.cfg.API
	if c.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return cert, fmt.Errorf("api.tls_cert/api.tls_key: %w", err)
		}
		return cert, nil
	}
	dir := selfSignedDir(n.cfg)
	certPath, keyPath := filepath.Join(dir, "exitmesh-api.crt"), filepath.Join(dir, "exitmesh-api.key")
	if cert, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
		n.log.Info("api uses a self-signed certificate", "cert", certPath)
		return cert, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return cert, fmt.Errorf("self-signed api certificate %s: %w", certPath, err)
	}
	cert, certPEM, keyPEM, err := certs.SelfSigned(apiHostnames(c.Listen)...)
	if err != nil {
		return cert, err
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return cert, fmt.Errorf("write %s: %w", keyPath, err)
	}
	if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
		return cert, fmt.Errorf("write %s: %w", certPath, err)
	}
	n.log.Warn("api.tls_cert not set: generated a self-signed certificate", "cert", certPath, "key", keyPath)
	return cert, nil
}

// selfSignedDir is the SQLite file's directory, or the working directory for other stores.
func selfSignedDir(cfg *config.Config) string {
	if path, ok := strings.CutPrefix(cfg.Store, "sqlite:"); ok {
		return filepath.Dir(path)
	}
	return "."
}

func apiHostnames(listen string) []string {
	names := []string{"localhost", "127.0.0.1", "::1"}
	if host, _, err := net.SplitHostPort(listen); err == nil && host != "" && host != "0.0.0.0" && host != "::" {
		names = append(names, host)
	}
	if h, err := os.Hostname(); err == nil {
		names = append(names, h)
	}
	return names
}

// headConfig bounds the request heads of the API and dashboard as those of the proxies.
func headConfig(cfg *config.Config) httphead.Config {
	return httphead.Config{MaxBytes: int(cfg.Limits.MaxHeaderBytes), MaxFields: cfg.Limits.MaxHeaderFields}
}

// apiConnState tells both guards of an API connection where net/http stands with it.
func apiConnState(c net.Conn, st http.ConnState) {
	httphead.ConnState(c, st)
	connlimit.ConnState(c, st)
}
