package node_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/exitmesh/exitmesh/internal/certs"
	"github.com/exitmesh/exitmesh/internal/config"
)

// writePair writes a new self-signed certificate for 127.0.0.1 to dir and returns its fingerprint.
func writePair(t *testing.T, dir string) [32]byte {
	t.Helper()
	cert, certPEM, keyPEM, err := certs.SelfSigned("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "proxy.crt"), certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "proxy.key"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(cert.Certificate[0])
}

// presented is the fingerprint of the certificate the proxy at addr presents.
func presented(t *testing.T, addr string) [32]byte {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS to the proxy: %v", err)
	}
	defer c.Close()
	return sha256.Sum256(c.ConnectionState().PeerCertificates[0].Raw)
}

// TestProxyCertificateReloads: a proxy server with tls: presents its certificate, and a reload (what
// SIGHUP does) takes the renewed files.
func TestProxyCertificateReloads(t *testing.T) {
	dir := t.TempDir()
	first := writePair(t, dir)
	proxies := fmt.Sprintf(`
  - {name: us-ca, listen: "127.0.0.1:0", exits: [{ip: 127.0.0.2}], tls: {cert: %q, key: %q}}
`, filepath.Join(dir, "proxy.crt"), filepath.Join(dir, "proxy.key"))
	text := fmt.Sprintf(reloadConfig, "%s", 10, proxies)
	f := startWith(t, text, slog.New(slog.DiscardHandler))
	addr := f.node.ProxyAddr("us-ca")
	if got := presented(t, addr); got != first {
		t.Fatal("the proxy does not present its configured certificate")
	}
	second := writePair(t, dir)
	cfg, err := config.Parse(fmt.Appendf(nil, text, f.dbPath))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.node.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if got := presented(t, addr); got != second {
		t.Error("after the reload the proxy still presents the old certificate")
	}
	// A broken file fails the reload and changes nothing.
	os.WriteFile(filepath.Join(dir, "proxy.key"), []byte("not a key"), 0o600)
	if _, err := f.node.Reload(context.Background(), cfg); err == nil {
		t.Error("a reload with a broken key succeeded")
	}
	if got := presented(t, addr); got != second {
		t.Error("a failed reload changed the certificate")
	}
}
