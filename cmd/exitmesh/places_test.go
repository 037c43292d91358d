package main_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// placesConfig is a proxy server with exits in two countries, each exit in its own city.
const placesConfig = nodeConfig + `proxies:
  - name: world
    listen: "127.0.0.1:0"
    exits:
      - {ip: 127.0.0.2, country: DE, region: DE-BE, city: berlin, asn: 64500}
      - {ip: 127.0.0.3, country: DE, region: DE-HH, city: hamburg, asn: AS64501}
      - {ip: 127.0.0.4, country: JP, region: JP-13, city: tokyo, asn: 64502}
      - {ip: 127.0.0.5, country: JP, region: JP-27, city: osaka, asn: 64500}
egress: {allow: [127.0.0.1/32]}
plans:
  - {name: starter, proxies: 3, subs: 5, ips: 10, hostnames: 5, bandwidth: 10GB}
`

// TestSteeringByPlaceAndSessionModes runs a node as an operator does and steers from outside it:
// Oxylabs-style sessions in a country, city and ASN filters, a filter nothing matches, and a strict
// session whose exit a config reload takes away while a loose one moves.
func TestSteeringByPlaceAndSessionModes(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "exitmesh.yaml")
	good := fmt.Sprintf(placesConfig, dir)
	if err := os.WriteFile(cfg, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "demo"), 0o700)
	origin := startProcess(t, "demo", "--port", "0", "--dir", filepath.Join(dir, "demo")) // only for its origin
	originURL := origin.waitFor(t, regexp.MustCompile(`curl -s -x \S+ (http://\S+)/ip; done`))[1]
	serve := startProcess(t, "serve", "--config", cfg)
	addr := serve.waitFor(t, regexp.MustCompile(`proxy server listening.*addr=(\S+)`))[1]
	if out, err := adminCmd(t, cfg, "correct-horse-battery\n", "account", "create", "alice", "--plan", "starter",
		"--password-stdin", "--proxies", "world").CombinedOutput(); err != nil {
		t.Fatalf("account create: %v\n%s", err, out)
	}
	// through sends one request as login; it returns what the origin saw (or the proxy's sentence),
	// and the proxy's answer.
	through := func(login string, header http.Header) (string, *http.Response) {
		t.Helper()
		return get(t, proxyClient("http://"+login+":correct-horse-battery@"+addr, nil), originURL+"/ip", header)
	}
	eventually(t, func() error {
		if _, resp := through("alice", nil); resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})

	t.Run("a session in a country keeps one exit", func(t *testing.T) {
		first := ""
		for i := range 20 {
			ip, resp := through("alice-cc-de-sessid-x1", nil)
			if resp.StatusCode != 200 || resp.Header.Get("X-ProxyMesh-IP") != ip || (ip != "127.0.0.2" && ip != "127.0.0.3") {
				t.Fatalf("request %d of alice-cc-de-sessid-x1: %d from %q (X-ProxyMesh-IP %q), want a German exit", i, resp.StatusCode, ip, resp.Header.Get("X-ProxyMesh-IP"))
			}
			if first == "" {
				first = ip
			} else if ip != first {
				t.Fatalf("request %d of session x1 left from %s, the earlier ones from %s", i, ip, first)
			}
		}
	})
	t.Run("city and ASN filters", func(t *testing.T) {
		for _, tt := range []struct {
			login  string
			header http.Header
			want   []string
		}{
			{"alice-city-tokyo", nil, []string{"127.0.0.4"}},
			{"alice", http.Header{"X-Proxymesh-City": {"Osaka"}}, []string{"127.0.0.5"}},
			{"alice-asn-AS64500", nil, []string{"127.0.0.2", "127.0.0.5"}},
			{"alice-cc-jp-asn-64500", nil, []string{"127.0.0.5"}},
			{"alice-region-de_hh", nil, []string{"127.0.0.3"}},
		} {
			for range 10 {
				if ip, resp := through(tt.login, tt.header); resp.StatusCode != 200 || !slices.Contains(tt.want, ip) {
					t.Fatalf("%s %v: %d from %q, want one of %v", tt.login, tt.header, resp.StatusCode, ip, tt.want)
				}
			}
		}
	})
	t.Run("no exit for the filter", func(t *testing.T) {
		for _, tt := range []struct{ login, want string }{
			{"alice-city-paris", "No exit is available for city paris on this proxy server."},
			{"alice-cc-de-city-tokyo", "No exit is available for country DE and city tokyo on this proxy server."},
		} {
			body, resp := through(tt.login, nil)
			if resp.StatusCode != 503 || resp.Header.Get("X-ProxyMesh-Error") != "no-exit-for-target" || body != tt.want {
				t.Errorf("%s: %d %s %q, want 503 no-exit-for-target %q", tt.login, resp.StatusCode, resp.Header.Get("X-ProxyMesh-Error"), body, tt.want)
			}
		}
	})
	t.Run("bad steering names the key", func(t *testing.T) {
		body, resp := through("alice-sessid-s-sesstime-1441", nil)
		if resp.StatusCode != 400 || resp.Header.Get("X-ProxyMesh-Error") != "bad-steering" || !strings.Contains(body, "-sesstime-") {
			t.Errorf("sesstime-1441: %d %q, want 400 bad-steering naming -sesstime-", resp.StatusCode, body)
		}
	})
	t.Run("a strict session fails when its exit goes; a loose one moves", func(t *testing.T) {
		strict, resp := through("alice-sessid-s1-sessmode-strict", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("first request of a strict session: %d %q", resp.StatusCode, strict)
		}
		loose := ""
		for i := 0; i < 200 && loose == ""; i++ {
			if login := fmt.Sprintf("alice-sessid-l%d", i); must200(t, through, login) == strict {
				loose = login
			}
		}
		if loose == "" {
			t.Fatalf("no session landed on %s in 200 tries", strict)
		}
		// The operator takes the exit out of the config.
		lines := strings.Split(good, "\n")
		lines = slices.DeleteFunc(lines, func(l string) bool { return strings.Contains(l, "ip: "+strict+",") })
		if err := os.WriteFile(cfg, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
			t.Fatal(err)
		}
		serve.cmd.Process.Signal(syscall.SIGHUP)
		serve.waitFor(t, regexp.MustCompile(`msg="config reloaded".*changed=\[world\]`))
		for range 3 {
			body, resp := through("alice-sessid-s1-sessmode-strict", nil)
			if resp.StatusCode != 503 || resp.Header.Get("X-ProxyMesh-Error") != "session-exit-unavailable" {
				t.Fatalf("strict session after its exit %s was removed: %d %s %q, want 503 session-exit-unavailable",
					strict, resp.StatusCode, resp.Header.Get("X-ProxyMesh-Error"), body)
			}
		}
		if ip := must200(t, through, loose); ip == strict {
			t.Fatalf("loose session %s still leaves from the removed exit %s", loose, strict)
		}
	})
	serve.stop(t, syscall.SIGTERM)
	origin.stop(t, os.Interrupt)
}

// must200 sends one request as login and returns the address the origin saw.
func must200(t *testing.T, through func(string, http.Header) (string, *http.Response), login string) string {
	t.Helper()
	ip, resp := through(login, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %q", login, resp.StatusCode, ip)
	}
	return ip
}
