package proxy_test

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkForward measures the proxy hot path for small keep-alive requests — authentication from
// the credential cache, steering, exit choice, header hygiene, forwarding over a reused origin
// connection — beside the same requests sent straight to the origin. Compare the two sub-benchmarks'
// ns/op for the proxy's overhead (docs/PERFORMANCE.md once the load harness exists).
func BenchmarkForward(b *testing.B) {
	e := newEnv(b)
	direct := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	proxied := e.client("alice", alicePW, nil, nil)
	proxied.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	for _, bc := range []struct {
		name   string
		client *http.Client
	}{{"direct", direct}, {"proxy", proxied}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := bc.client.Get(e.origin.URL + "/ip")
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
		})
	}
}

// BenchmarkConnectSetup measures opening a CONNECT tunnel and doing one TLS request through it, beside
// a new TLS connection straight to the origin.
func BenchmarkConnectSetup(b *testing.B) {
	e := newEnv(b)
	direct := e.tlsOrigin.Client()
	direct.Transport.(*http.Transport).DisableKeepAlives = true
	proxied := e.client("alice", alicePW, nil, nil)
	proxied.Transport.(*http.Transport).DisableKeepAlives = true
	for _, bc := range []struct {
		name   string
		client *http.Client
	}{{"direct", direct}, {"proxy", proxied}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				resp, err := bc.client.Get(e.tlsOrigin.URL + "/ip")
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}

// BenchmarkForwardLarge measures relaying 4 MiB answers (chunked, as the origin streams them), the
// path where every 32 KiB goes through the client connection's write-progress deadline.
func BenchmarkForwardLarge(b *testing.B) {
	e := newEnv(b)
	const size = 4 << 20
	proxied := e.client("alice", alicePW, nil, nil)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := proxied.Get(e.origin.URL + "/bytes/4194304")
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n != size {
			b.Fatalf("%d bytes, want %d", n, size)
		}
	}
}
