package proxy_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/certs"
	"github.com/exitmesh/exitmesh/internal/egress"
	"github.com/exitmesh/exitmesh/internal/proxy"
)

// withCertificate makes the proxy take TLS with a self-signed certificate for 127.0.0.1, which the
// returned pool trusts; *cur is what the server uses, to replace in tests.
func withCertificate(t *testing.T, cur *atomic.Pointer[tls.Certificate]) (envOption, *x509.CertPool) {
	t.Helper()
	cert, certPEM, _, err := certs.SelfSigned("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cur.Store(&cert)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return func(c *proxy.Config, _ *egress.Dialer) { c.Certificate = cur.Load }, pool
}

// httpsProxyClient uses the proxy at https://127.0.0.1:port as login, trusting roots.
func (e *env) httpsProxyClient(login, password string, roots *x509.CertPool) *http.Client {
	u := &url.URL{Scheme: "https", Host: e.proxyAddr, User: url.UserPassword(login, password)}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Proxy:             http.ProxyURL(u),
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{RootCAs: roots}, // the proxy's certificate, and the TLS origin's
	}}
}

func TestTLSToTheProxy(t *testing.T) {
	var cur atomic.Pointer[tls.Certificate]
	opt, roots := withCertificate(t, &cur)
	e := newEnv(t, opt)
	roots.AddCert(e.tlsOrigin.Certificate())

	// The proxy presents the certificate, TLS 1.2 at least, and speaks HTTP/1.1 inside.
	conn, err := tls.Dial("tcp", e.proxyAddr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MaxVersion: tls.VersionTLS11})
	if err == nil {
		conn.Close()
		t.Error("the proxy accepted TLS 1.1")
	}
	conn, err = tls.Dial("tcp", e.proxyAddr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatalf("TLS to the proxy: %v", err)
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p == "h2" {
		t.Errorf("the proxy negotiated %q", p)
	}
	conn.Close()

	c := e.httpsProxyClient("alice", alicePW, roots)
	resp, seen := e.get(c, e.origin.URL+"/", nil) // forwarded inside TLS
	if resp.StatusCode != http.StatusOK || exitCountry[seen.IP] == "" || resp.Header.Get("X-ProxyMesh-IP") != seen.IP {
		t.Errorf("http:// through the https:// proxy: %d, origin saw %q, X-ProxyMesh-IP %q", resp.StatusCode, seen.IP, resp.Header.Get("X-ProxyMesh-IP"))
	}
	var connects []*http.Response
	c.Transport.(*http.Transport).OnProxyConnectResponse = func(_ context.Context, _ *url.URL, _ *http.Request, r *http.Response) error {
		connects = append(connects, r)
		return nil
	}
	resp, seen = e.get(c, e.tlsOrigin.URL+"/", nil) // CONNECT inside TLS, TLS to the origin inside that
	if resp.StatusCode != http.StatusOK || exitCountry[seen.IP] == "" || len(connects) != 1 || connects[0].Header.Get("X-ProxyMesh-IP") != seen.IP {
		t.Errorf("https:// through the https:// proxy: %d, origin saw %q", resp.StatusCode, seen.IP)
	}
	if resp, _ := e.get(e.httpsProxyClient("alice", "wrong-password", roots), e.origin.URL+"/", nil); resp.StatusCode != http.StatusProxyAuthRequired {
		t.Errorf("wrong password inside TLS: %d, want 407", resp.StatusCode)
	}
	// Plain HTTP and SOCKS5 go on on the same port.
	if resp, seen := e.get(e.client("alice", alicePW, nil, nil), e.origin.URL+"/", nil); resp.StatusCode != 200 || seen.IP == "" {
		t.Errorf("plain HTTP beside TLS: %d", resp.StatusCode)
	}
	if ip := e.seenThrough(t, e.socksClient(t, "alice", alicePW, "")); exitCountry[ip] == "" {
		t.Errorf("SOCKS5 beside TLS: origin saw %q", ip)
	}

	// A new certificate applies to the next handshake; without one, TLS is refused.
	next, nextPEM, _, err := certs.SelfSigned("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cur.Store(&next)
	nextRoots := x509.NewCertPool()
	nextRoots.AppendCertsFromPEM(nextPEM)
	if resp, _ := e.get(e.httpsProxyClient("alice", alicePW, nextRoots), e.origin.URL+"/", nil); resp.StatusCode != 200 {
		t.Errorf("after the certificate changed: %d", resp.StatusCode)
	}
	cur.Store(nil)
	if conn, err := tls.Dial("tcp", e.proxyAddr, &tls.Config{InsecureSkipVerify: true}); err == nil {
		conn.Close()
		t.Error("TLS accepted with no certificate")
	}
}
