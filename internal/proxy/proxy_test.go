package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/bans"
	"github.com/exitmesh/exitmesh/internal/egress"
	"github.com/exitmesh/exitmesh/internal/origin"
	"github.com/exitmesh/exitmesh/internal/proxy"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestRotationAsSeenByOrigin(t *testing.T) {
	e := newEnv(t)
	c := e.client("alice", alicePW, nil, nil)
	seen := map[string]int{}
	for range 30 {
		resp, s := e.get(c, e.origin.URL+"/", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if got := resp.Header.Get("X-ProxyMesh-IP"); got != s.IP {
			t.Fatalf("X-ProxyMesh-IP = %q but the origin saw %q", got, s.IP)
		}
		if !slices.Contains(exitIPs, s.IP) {
			t.Fatalf("origin saw %s, not one of the exits %v", s.IP, exitIPs)
		}
		seen[s.IP]++
	}
	if len(seen) < 3 {
		t.Errorf("30 requests reached %d distinct exits (%v), want at least 3", len(seen), seen)
	}
}

func TestConnectTunnelReportsExitSeenByTLSOrigin(t *testing.T) {
	e := newEnv(t)
	var connects []*http.Response
	c := e.client("alice", alicePW, nil, &connects)
	c.Transport.(*http.Transport).DisableKeepAlives = true // a new CONNECT per request
	seen := map[string]bool{}
	for i := range 12 {
		resp, s := e.get(c, e.tlsOrigin.URL+"/", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if len(connects) != i+1 {
			t.Fatalf("%d CONNECT responses after %d requests", len(connects), i+1)
		}
		cr := connects[i]
		if cr.StatusCode != http.StatusOK || cr.Header.Get("X-ProxyMesh-IP") != s.IP {
			t.Fatalf("CONNECT answered %d with X-ProxyMesh-IP %q; TLS origin saw %q", cr.StatusCode, cr.Header.Get("X-ProxyMesh-IP"), s.IP)
		}
		seen[s.IP] = true
	}
	if len(seen) < 2 {
		t.Errorf("12 tunnels used %d exits, want rotation", len(seen))
	}
}

func TestSteeringHeaders(t *testing.T) {
	e := newEnv(t)
	c := e.client("alice", alicePW, nil, nil)
	h := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	t.Run("pin", func(t *testing.T) {
		for range 10 {
			resp, s := e.get(c, e.origin.URL+"/", h("X-ProxyMesh-IP", "127.0.0.4"))
			if s.IP != "127.0.0.4" || resp.Header.Get("X-ProxyMesh-IP") != "127.0.0.4" || resp.Header.Get("X-ProxyMesh-IP-Not-Found") != "" {
				t.Fatalf("pinned 127.0.0.4: origin saw %s, headers %v", s.IP, resp.Header)
			}
		}
	})
	t.Run("pin not in pool", func(t *testing.T) {
		resp, s := e.get(c, e.origin.URL+"/", h("X-ProxyMesh-IP", "127.0.0.99"))
		if resp.StatusCode != http.StatusOK || !slices.Contains(exitIPs, s.IP) {
			t.Fatalf("status %d, origin saw %s", resp.StatusCode, s.IP)
		}
		if got := resp.Header.Get("X-ProxyMesh-IP-Not-Found"); got != "127.0.0.99" {
			t.Errorf("X-ProxyMesh-IP-Not-Found = %q, want 127.0.0.99", got)
		}
	})
	t.Run("prefer", func(t *testing.T) {
		_, s := e.get(c, e.origin.URL+"/", h("X-ProxyMesh-Prefer-IP", "127.0.0.3"))
		if s.IP != "127.0.0.3" {
			t.Errorf("preferred 127.0.0.3, origin saw %s", s.IP)
		}
		resp, s := e.get(c, e.origin.URL+"/", h("X-ProxyMesh-Prefer-IP", "127.0.0.99"))
		if resp.StatusCode != http.StatusOK || !slices.Contains(exitIPs, s.IP) || resp.Header.Get("X-ProxyMesh-IP-Not-Found") != "" {
			t.Errorf("unavailable preference: status %d, origin saw %s, headers %v", resp.StatusCode, s.IP, resp.Header)
		}
	})
	t.Run("not-ip", func(t *testing.T) {
		for range 20 {
			_, s := e.get(c, e.origin.URL+"/", h("X-ProxyMesh-Not-IP", "127.0.0.2, 127.0.0.3,127.0.0.4"))
			if s.IP != "127.0.0.5" {
				t.Fatalf("excluded three exits, origin saw %s, want 127.0.0.5", s.IP)
			}
		}
		resp, _ := e.get(c, e.origin.URL+"/", h("X-ProxyMesh-Not-IP", strings.Join(exitIPs, ",")))
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("X-ProxyMesh-Error") != "no-exit" || resp.Header.Get("X-ProxyMesh-IP") != "" {
			t.Errorf("all exits excluded: %d %v, want 503 no-exit without X-ProxyMesh-IP", resp.StatusCode, resp.Header)
		}
	})
	t.Run("country", func(t *testing.T) {
		for range 20 {
			_, s := e.get(c, e.origin.URL+"/", h("X-ProxyMesh-Country", "de"))
			if exitCountry[s.IP] != "DE" {
				t.Fatalf("country DE: origin saw %s (%s)", s.IP, exitCountry[s.IP])
			}
		}
		resp, _ := e.get(c, e.origin.URL+"/", h("X-ProxyMesh-Country", "FR"))
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("X-ProxyMesh-Error") != "no-exit-in-country" {
			t.Errorf("country FR: %d %v, want 503 no-exit-in-country", resp.StatusCode, resp.Header)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		resp, _ := e.get(c, e.origin.URL+"/delay/3", h("X-ProxyMesh-Timeout", "0.2"))
		if resp.StatusCode != http.StatusGatewayTimeout || resp.Header.Get("X-ProxyMesh-Error") != "timeout" {
			t.Fatalf("slow origin with timeout 0.2: %d %v, want 504 timeout", resp.StatusCode, resp.Header)
		}
		if !slices.Contains(exitIPs, resp.Header.Get("X-ProxyMesh-IP")) {
			t.Errorf("504 after an exit was used should name it; X-ProxyMesh-IP = %q", resp.Header.Get("X-ProxyMesh-IP"))
		}
		resp, s := e.get(c, e.origin.URL+"/delay/0.3", h("X-ProxyMesh-Timeout", "10"))
		if resp.StatusCode != http.StatusOK || s.Path != "/delay/0.3" {
			t.Errorf("origin within timeout: %d", resp.StatusCode)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		for _, kv := range [][2]string{{"X-ProxyMesh-IP", "nope"}, {"X-ProxyMesh-Country", "USA"}, {"X-ProxyMesh-Timeout", "-1"}, {"X-ProxyMesh-Not-IP", "1.2.3.4,x"}} {
			resp, _ := e.get(c, e.origin.URL+"/", h(kv[0], kv[1]))
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("X-ProxyMesh-Error") != "bad-steering" {
				t.Errorf("%s: %s: %d %v, want 400 bad-steering", kv[0], kv[1], resp.StatusCode, resp.Header)
			}
		}
	})
}

func TestSteeringOnConnect(t *testing.T) {
	e := newEnv(t)
	var connects []*http.Response
	hdr := http.Header{}
	hdr.Set("X-ProxyMesh-IP", "127.0.0.5")
	c := e.client("alice", alicePW, hdr, &connects)
	c.Transport.(*http.Transport).DisableKeepAlives = true
	for range 5 {
		_, s := e.get(c, e.tlsOrigin.URL+"/", nil)
		if s.IP != "127.0.0.5" {
			t.Fatalf("CONNECT pinned to 127.0.0.5: TLS origin saw %s", s.IP)
		}
	}
	// The steering header was on the CONNECT, not inside the tunnel: the origin never sees it anyway.
	hdr.Set("X-ProxyMesh-IP", "127.0.0.99")
	_, s := e.get(c, e.tlsOrigin.URL+"/", nil)
	last := connects[len(connects)-1]
	if last.Header.Get("X-ProxyMesh-IP-Not-Found") != "127.0.0.99" || last.Header.Get("X-ProxyMesh-IP") != s.IP {
		t.Errorf("CONNECT pinned to a missing IP: headers %v, origin saw %s", last.Header, s.IP)
	}
}

func TestNothingProxyOnlyReachesOrigin(t *testing.T) {
	e := newEnv(t)
	host := strings.TrimPrefix(e.origin.URL, "http://")
	req := "GET " + e.origin.URL + "/headers HTTP/1.1\r\n" +
		"Host: " + host + "\r\n" +
		"Proxy-Authorization: " + basic("alice", alicePW) + "\r\n" +
		"Proxy-Connection: keep-alive\r\n" +
		"Proxy-Secret: s3cret\r\n" +
		"X-ProxyMesh-IP: 127.0.0.2\r\n" +
		"X-ProxyMesh-Prefer-IP: 127.0.0.2\r\n" +
		"X-ProxyMesh-Not-IP: 127.0.0.3\r\n" +
		"X-ProxyMesh-Country: US\r\n" +
		"X-ProxyMesh-Timeout: 30\r\n" +
		"X-Forwarded-For: 10.9.9.9\r\n" +
		"Connection: keep-alive, X-Hop-Secret\r\n" +
		"X-Hop-Secret: hop\r\n" +
		"Keep-Alive: timeout=5\r\n" +
		"Te: gzip\r\n" +
		"Upgrade-Insecure-Requests: 1\r\n" +
		"X-Kept: yes\r\n" +
		"\r\n"
	resp, body := e.raw(req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var seen origin.Seen
	if err := jsonUnmarshal(body, &seen); err != nil {
		t.Fatal(err)
	}
	for name := range seen.Headers {
		lower := strings.ToLower(name)
		if strings.HasPrefix(lower, "proxy-") || strings.HasPrefix(lower, "x-proxymesh-") ||
			slices.Contains([]string{"x-hop-secret", "keep-alive", "te", "connection", "via", "x-forwarded-for", "forwarded"}, lower) {
			t.Errorf("origin received %s: %v", name, seen.Headers[name])
		}
	}
	if seen.Headers["X-Kept"] == nil || seen.Headers["Upgrade-Insecure-Requests"] == nil {
		t.Errorf("end-to-end headers lost: %v", seen.Headers)
	}
	if seen.Headers["User-Agent"] != nil {
		t.Errorf("the proxy added User-Agent %v", seen.Headers["User-Agent"])
	}
	if seen.IP != "127.0.0.2" {
		t.Errorf("pinned exit ignored: origin saw %s", seen.IP)
	}
}

func TestExitHeaderSpelledAsProxyMesh(t *testing.T) {
	e := newEnv(t)
	c, err := net.Dial("tcp", e.proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s/ip HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\nX-ProxyMesh-IP: 127.0.0.99\r\nConnection: close\r\n\r\n", e.origin.URL, e.originHost(), basic("alice", alicePW))
	raw, _ := io.ReadAll(c)
	for _, want := range []string{"\r\nX-ProxyMesh-IP: 127.0.0.", "\r\nX-ProxyMesh-IP-Not-Found: 127.0.0.99\r\n"} {
		if !bytes.Contains(raw, []byte(want)) {
			t.Errorf("response head lacks %q:\n%s", want, raw)
		}
	}
}

func TestEgressGuardRefusesWithoutConnecting(t *testing.T) {
	e := newEnv(t)
	c := e.client("alice", alicePW, nil, nil)
	tests := []struct {
		name, url, reason string
	}{
		{"private IP", "http://10.0.0.1/", "egress-denied"},
		{"metadata", "http://169.254.169.254/latest/meta-data/", "egress-denied"},
		{"ULA", "http://[fd00::1]/", "egress-denied"},
		{"IPv6 metadata", "http://[fd00:ec2::254]/", "egress-denied"},
		{"IPv4-mapped private", "http://[::ffff:10.0.0.1]/", "egress-denied"},
		{"IPv4-mapped loopback outside the allow list", "http://[::ffff:127.0.0.9]:" + portOf(e.origin.URL) + "/", "egress-denied"},
		{"NAT64 metadata", "http://[64:ff9b::a9fe:a9fe]/", "egress-denied"},
		{"6to4 metadata", "http://[2002:a9fe:a9fe::1]/", "egress-denied"},
		{"IPv4-compatible", "http://[::a9fe:a9fe]/", "egress-denied"},
		{"unspecified", "http://0.0.0.0:" + portOf(e.origin.URL) + "/", "egress-denied"},
		{"IPv6 unspecified", "http://[::]:" + portOf(e.origin.URL) + "/", "egress-denied"},
		{"IPv6 loopback", "http://[::1]:" + portOf(e.origin.URL) + "/", "egress-denied"},
		{"name resolving to private", "http://intranet.test/", "egress-denied"},
		{"loopback outside the allow list", "http://127.0.0.9:" + portOf(e.origin.URL) + "/", "egress-denied"},
		{"denied port", "http://origin.test:25/", "port-denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.dials.list())
			resp, _ := e.get(c, tt.url, nil)
			if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-ProxyMesh-Error") != tt.reason {
				t.Errorf("%s: %d %s, want 403 %s", tt.url, resp.StatusCode, resp.Header.Get("X-ProxyMesh-Error"), tt.reason)
			}
			if ip := resp.Header.Get("X-ProxyMesh-IP"); ip != "" {
				t.Errorf("%s: refusal carries X-ProxyMesh-IP %s though no exit connected", tt.url, ip)
			}
			if d := e.dials.list()[before:]; len(d) != 0 {
				t.Errorf("%s: dialled %v, want no connection attempt", tt.url, d)
			}
		})
	}
	t.Run("CONNECT", func(t *testing.T) {
		for _, target := range []string{"10.1.1.1:443", "169.254.169.254:80", "[fc00::5]:443", "intranet.test:443", "origin.test:587",
			"0.0.0.0:" + portOf(e.origin.URL), "[::ffff:127.0.0.9]:" + portOf(e.origin.URL), "[64:ff9b::a00:1]:443"} {
			before := len(e.dials.list())
			resp, body := e.raw("CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\nProxy-Authorization: " + basic("alice", alicePW) + "\r\n\r\n")
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("CONNECT %s: %d %s, want 403", target, resp.StatusCode, body)
			}
			if d := e.dials.list()[before:]; len(d) != 0 {
				t.Errorf("CONNECT %s: dialled %v, want none", target, d)
			}
		}
	})
	// The guard must not refuse what it allows: the allowed origin by name works.
	resp, s := e.get(c, "http://origin.test:"+portOf(e.origin.URL)+"/", nil)
	if resp.StatusCode != http.StatusOK || s.Host != "origin.test:"+portOf(e.origin.URL) {
		t.Errorf("allowed origin by name: %d %+v", resp.StatusCode, s)
	}
}

// TestEgressGuardChecksTheAddressItDials: a name whose DNS answer flips between an allowed and an
// internal address is resolved once per request, and only the address checked is dialled.
func TestEgressGuardChecksTheAddressItDials(t *testing.T) {
	e := newEnv(t)
	c := e.client("alice", alicePW, nil, nil)
	for i := 1; i <= 4; i++ {
		before := len(e.dials.list())
		// Each request through another exit, so that no pooled origin connection spares the lookup.
		pin := http.Header{"X-Proxymesh-Ip": {"127.0.0." + strconv.Itoa(i+1)}}
		resp, _ := e.get(c, "http://rebind.test:"+portOf(e.origin.URL)+"/", pin)
		dials := e.dials.list()[before:]
		allowed := e.rebinds.Load()%2 == 1
		switch {
		case e.rebinds.Load() != int64(i):
			t.Fatalf("request %d: %d lookups in all, want one per request", i, e.rebinds.Load())
		case allowed && (resp.StatusCode != http.StatusOK || len(dials) != 1 || dials[0].Addr() != netip.MustParseAddr("127.0.0.1")):
			t.Errorf("request %d, answer 127.0.0.1: %d, dials %v; want 200 and one dial to 127.0.0.1", i, resp.StatusCode, dials)
		case !allowed && (resp.StatusCode != http.StatusForbidden || len(dials) != 0):
			t.Errorf("request %d, answer 10.20.30.41: %d, dials %v; want 403 and no dial", i, resp.StatusCode, dials)
		}
	}
}

func portOf(u string) string { return u[strings.LastIndex(u, ":")+1:] }

func TestAuthentication(t *testing.T) {
	e := newEnv(t)
	url := e.origin.URL + "/"
	tests := []struct {
		name, login, pw string
		status          int
		reason          string
	}{
		{"no credentials", "", "", 407, "auth-required"},
		{"wrong password", "alice", "wrong-password", 407, "auth-failed"},
		{"unknown login", "mallory", alicePW, 407, "auth-failed"},
		{"disabled account", "bob", alicePW, 403, "account-disabled"},
		{"proxy not authorized", "carol", alicePW, 403, "proxy-not-authorized"},
		{"sub-account outside its subset", "alice-eu", subPW, 403, "proxy-not-authorized"},
		{"sub-account", "alice-us", subPW, 200, ""},
		{"account", "alice", alicePW, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := e.get(e.client(tt.login, tt.pw, nil, nil), url, nil)
			if resp.StatusCode != tt.status || resp.Header.Get("X-ProxyMesh-Error") != tt.reason {
				t.Fatalf("%d %q, want %d %q", resp.StatusCode, resp.Header.Get("X-ProxyMesh-Error"), tt.status, tt.reason)
			}
			if tt.status == 407 && resp.Header.Get("Proxy-Authenticate") != `Basic realm="exitmesh"` {
				t.Errorf("Proxy-Authenticate = %q", resp.Header.Get("Proxy-Authenticate"))
			}
			if tt.status >= 400 && resp.Header.Get("X-ProxyMesh-IP") != "" {
				t.Errorf("refusal carries X-ProxyMesh-IP %q though no exit was used", resp.Header.Get("X-ProxyMesh-IP"))
			}
		})
	}
	t.Run("CONNECT without credentials", func(t *testing.T) {
		target := strings.TrimPrefix(e.tlsOrigin.URL, "https://")
		resp, _ := e.raw("CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n")
		if resp.StatusCode != 407 || resp.Header.Get("Proxy-Authenticate") == "" {
			t.Errorf("%d %v, want 407 with Proxy-Authenticate", resp.StatusCode, resp.Header)
		}
	})
	t.Run("authorized IP", func(t *testing.T) {
		// 127.0.0.7 is alice's authorized IP: no credentials needed from there.
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.7")}}
		c := e.client("", "", nil, nil)
		c.Transport.(*http.Transport).DialContext = d.DialContext
		resp, s := e.get(c, url, nil)
		if resp.StatusCode != http.StatusOK || !slices.Contains(exitIPs, s.IP) {
			t.Errorf("from authorized IP: %d, origin saw %s", resp.StatusCode, s.IP)
		}
	})
	t.Run("bad CONNECT target", func(t *testing.T) {
		for _, target := range []string{"origin.test", "origin.test:0", "origin.test:99999", ":443"} {
			resp, _ := e.raw("CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n")
			if resp.StatusCode != 400 || resp.Header.Get("X-ProxyMesh-Error") != "bad-request" {
				t.Errorf("CONNECT %s: %d %v, want 400 bad-request", target, resp.StatusCode, resp.Header)
			}
		}
	})
	t.Run("not a proxy request", func(t *testing.T) {
		resp, _ := e.raw("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
		if resp.StatusCode != 400 || resp.Header.Get("X-ProxyMesh-Error") != "bad-request" {
			t.Errorf("origin-form request: %d %v, want 400 bad-request", resp.StatusCode, resp.Header)
		}
	})
}

func TestKeepAliveReuse(t *testing.T) {
	e := newEnv(t)
	c := e.client("alice", alicePW, nil, nil)
	used := map[string]bool{}
	for range 20 {
		resp, s := e.get(c, e.origin.URL+"/", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		used[s.IP] = true
	}
	if n := e.proxyConns.Load(); n != 1 {
		t.Errorf("20 sequential requests opened %d client connections to the proxy, want 1", n)
	}
	// Each exit keeps its origin connection alive: at most one per exit used.
	if n := e.originConns.Load(); n > int64(len(used)) {
		t.Errorf("origin accepted %d connections for %d exits used, want reuse per exit", n, len(used))
	}
}

func TestLargeStreamedBodies(t *testing.T) {
	e := newEnv(t)
	c := e.client("alice", alicePW, nil, nil)
	const size = 48 << 20

	t.Run("upload chunked", func(t *testing.T) {
		h := sha256.New()
		body := io.TeeReader(io.LimitReader(origin.NewStream(), size), h)
		// An io.Reader of unknown length makes the client send chunked.
		req, _ := http.NewRequest(http.MethodPost, e.origin.URL+"/sha256", io.NopCloser(body))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		want := fmt.Sprintf("%s %d\n", hex.EncodeToString(h.Sum(nil)), size)
		if string(got) != want {
			t.Errorf("origin hashed %q, want %q", got, want)
		}
	})
	t.Run("download", func(t *testing.T) {
		resp, err := c.Get(fmt.Sprintf("%s/bytes/%d", e.origin.URL, size))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.ContentLength != -1 || resp.TransferEncoding == nil {
			t.Errorf("origin's chunked response arrived with length %d, TE %v", resp.ContentLength, resp.TransferEncoding)
		}
		want := sha256.New()
		io.Copy(want, io.LimitReader(origin.NewStream(), size))
		got := sha256.New()
		n, err := io.Copy(got, resp.Body)
		if err != nil || n != size || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
			t.Errorf("downloaded %d bytes (err %v), content equal: %v", n, err, bytes.Equal(got.Sum(nil), want.Sum(nil)))
		}
	})
	t.Run("tunnel both ways", func(t *testing.T) {
		resp, err := c.Get(fmt.Sprintf("%s/bytes/%d", e.tlsOrigin.URL, size))
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n != size {
			t.Errorf("downloaded %d bytes through a tunnel, want %d", n, size)
		}
	})
}

func TestResponseIsStreamedNotBuffered(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	e.mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		select { // the rest waits until the client has seen the first line
		case <-release:
		case <-time.After(20 * time.Second):
		}
		io.WriteString(w, "second\n")
	})
	c := e.client("alice", alicePW, nil, nil)
	resp, err := c.Get(e.origin.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	close(release)
	rest, _ := io.ReadAll(br)
	if string(rest) != "second\n" {
		t.Errorf("rest %q", rest)
	}
}

func TestPinnedIPAcrossRequestsIsSticky(t *testing.T) {
	e := newEnv(t)
	c := e.client("alice", alicePW, nil, nil)
	first, s := e.get(c, e.origin.URL+"/", nil)
	pin := first.Header.Get("X-ProxyMesh-IP")
	if pin != s.IP {
		t.Fatalf("X-ProxyMesh-IP %q vs origin %q", pin, s.IP)
	}
	hdr := http.Header{}
	hdr.Set("X-ProxyMesh-IP", pin)
	for range 10 {
		if _, s := e.get(c, e.origin.URL+"/", hdr); s.IP != pin {
			t.Fatalf("sticky %s: origin saw %s", pin, s.IP)
		}
	}
	if _, err := netip.ParseAddr(pin); err != nil {
		t.Fatal(err)
	}
}

func TestShutdownWaitsForTunnelsThenClosesThem(t *testing.T) {
	e := newEnv(t)
	target := strings.TrimPrefix(e.tlsOrigin.URL, "https://")
	c, err := net.Dial("tcp", e.proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n", target, target, basic("alice", alicePW))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.srv.Shutdown(ctx) }()
	select {
	case <-done:
		t.Fatal("Shutdown returned while a tunnel was open and its grace period not over")
	case <-time.After(100 * time.Millisecond):
	}
	// Past the grace period the tunnel is closed: the client reads EOF, and Shutdown returns.
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("tunnel read after grace period: %v, want EOF", err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	if _, err := net.Dial("tcp", e.proxyAddr); err == nil {
		t.Error("the proxy still accepts connections after Shutdown")
	}
}

// clock is a time source the test moves by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// withBans makes the proxy server ban through tr.
func withBans(tr *bans.Tracker) envOption {
	return func(c *proxy.Config, _ *egress.Dialer) { c.Bans = tr }
}

// from makes c connect to the proxy from the local address ip.
func from(c *http.Client, ip string) *http.Client {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c.Transport.(*http.Transport).DialContext = d.DialContext
	return c
}

// fetch GETs rawURL through c and returns the response with its body read.
func fetch(t *testing.T, c *http.Client, rawURL string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(rawURL)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", rawURL, err)
	}
	return resp, string(body)
}

func TestBanAfterFailedAuthentications(t *testing.T) {
	clk := &clock{now: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	e := newEnv(t, withBans(bans.New(bans.Config{AuthFailures: 10, Window: time.Minute, Duration: 15 * time.Minute, Now: clk.Now})))
	url := e.origin.URL + "/"
	var (
		anonymous = e.client("", "", nil, nil)
		wrong     = e.client("alice", "wrong-password", nil, nil)
		alice     = e.client("alice", alicePW, nil, nil)
		elsewhere = from(e.client("alice", alicePW, nil, nil), "127.0.0.6")
	)
	steps := []struct {
		name       string
		advance    time.Duration
		client     *http.Client
		times      int
		status     int
		reason     string
		retryAfter string // the Retry-After header, "" for none
		wantLeft   string // how long the ban answer says the ban still lasts
	}{
		{"missing credentials never ban", 0, anonymous, 30, 407, "auth-required", "", ""},
		{"10 wrong passwords do not ban", 0, wrong, 10, 407, "auth-failed", "", ""},
		{"the 11th is still refused as wrong", 0, wrong, 1, 407, "auth-failed", "", ""},
		{"then the IP is banned, even with the right password", 0, alice, 1, 403, "banned", "900", "15 more minutes"},
		{"and without credentials", 0, anonymous, 1, 403, "banned", "900", "15 more minutes"},
		{"another source IP is unaffected", 0, elsewhere, 1, 200, "", "", ""},
		{"a minute later the ban goes on", time.Minute, alice, 1, 403, "banned", "840", "14 more minutes"},
		{"the ban expires", 14 * time.Minute, alice, 1, 200, "", "", ""},
	}
	for _, st := range steps {
		clk.Advance(st.advance)
		for i := range st.times {
			resp, body := fetch(t, st.client, url)
			if got := resp.Header.Get("X-ProxyMesh-Error"); resp.StatusCode != st.status || got != st.reason {
				t.Fatalf("%s (request %d): %d %q, want %d %q", st.name, i+1, resp.StatusCode, got, st.status, st.reason)
			}
			if got := resp.Header.Get("Retry-After"); got != st.retryAfter {
				t.Errorf("%s: Retry-After = %q, want %q", st.name, got, st.retryAfter)
			}
			if st.reason != "banned" {
				continue
			}
			if want := "temporarily banned for " + st.wantLeft; !strings.Contains(body, want) {
				t.Errorf("%s: body %q, want it to say %q", st.name, body, want)
			}
			if !resp.Close {
				t.Errorf("%s: the ban answer does not close the connection (Connection: %q)", st.name, resp.Header.Get("Connection"))
			}
			if got := resp.Header.Get("X-ProxyMesh-IP"); got != "" {
				t.Errorf("%s: X-ProxyMesh-IP = %q, though no exit was used", st.name, got)
			}
		}
	}
}

func TestBannedConnectIsRefused(t *testing.T) {
	tr := bans.New(bans.Config{})
	e := newEnv(t, withBans(tr))
	for range 11 {
		tr.Fail(netip.MustParseAddr("127.0.0.1"), bans.AuthFailure)
	}
	target := strings.TrimPrefix(e.tlsOrigin.URL, "https://")
	resp, body := e.raw("CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\nProxy-Authorization: " + basic("alice", alicePW) + "\r\n\r\n")
	if got := resp.Header.Get("X-ProxyMesh-Error"); resp.StatusCode != 403 || got != "banned" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("CONNECT from a banned IP: %d %v, want 403 banned with Retry-After", resp.StatusCode, resp.Header)
	}
	if !strings.Contains(body, "temporarily banned") {
		t.Errorf("body %q, want it to say the IP is temporarily banned", body)
	}
	if n := len(e.dials.list()); n != 0 {
		t.Errorf("%d dials for a banned client, want none", n)
	}
}

// echoUpgrade is an origin route that switches to the protocol "echo" (101) and sends back what it
// reads.
func echoUpgrade(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Connection", "Upgrade")
	w.Header().Set("Upgrade", "echo")
	w.WriteHeader(http.StatusSwitchingProtocols)
	c, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer c.Close()
	io.Copy(c, rw)
}

// upgrade asks for originURL's /upgrade through the proxy at proxyAddr as login, and checks that
// the connection echoes.
func upgrade(t *testing.T, proxyAddr, originURL, login, password string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(c, "GET %s/upgrade HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: echo\r\nProxy-Authorization: %s\r\n\r\n",
		originURL, strings.TrimPrefix(originURL, "http://"), basic(login, password))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	fmt.Fprint(c, "ping")
	if got := make([]byte, 4); func() error { _, err := io.ReadFull(br, got); return err }() != nil || string(got) != "ping" {
		t.Fatalf("upgraded connection echoed %q", got)
	}
	return c, br
}

// TestShutdownCutsUpgradedConnections holds a connection the origin switched to another protocol
// (101) open past Shutdown's deadline: Shutdown closes it and returns.
func TestShutdownCutsUpgradedConnections(t *testing.T) {
	e := newEnv(t)
	e.mux.HandleFunc("/upgrade", echoUpgrade)
	_, br := upgrade(t, e.proxyAddr, e.origin.URL, "alice", alicePW)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.srv.Shutdown(ctx) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return past its deadline with an upgraded connection open")
	}
	if _, err := br.ReadByte(); err == nil {
		t.Error("the upgraded connection is still open after Shutdown")
	}
}
