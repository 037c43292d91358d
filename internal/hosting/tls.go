package hosting

import (
	"crypto/tls"
	"fmt"
	"sync/atomic"

	"github.com/exitmesh/exitmesh/internal/config"
)

// certificate is a proxy server's TLS certificate, which a reload replaces while connections go on:
// the server reads it at each handshake. nil: the proxy server takes no TLS.
type certificate struct {
	cert atomic.Pointer[tls.Certificate]
}

// Get is the proxy server's source of its certificate.
func (c *certificate) Get() *tls.Certificate { return c.cert.Load() }

// loadCertificate reads proxies[i]'s certificate and key files, if it has tls: nil without.
func loadCertificate(i int, pc config.Proxy) (*tls.Certificate, error) {
	if pc.TLS == nil {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(pc.TLS.Cert, pc.TLS.Key)
	if err != nil {
		return nil, fmt.Errorf("proxies[%d].tls (%s): %w", i, pc.Name, err)
	}
	return &cert, nil
}
