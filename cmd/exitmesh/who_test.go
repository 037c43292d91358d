package main_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/origin"
)

// whoSays runs "admin who --exit IP --at now" until its answer holds want (the usage flush and the
// store write take a moment), then checks it names none of notWant.
func whoSays(t *testing.T, cfg, exit string, want []string, notWant ...string) {
	t.Helper()
	at := time.Now().UTC().Format(time.RFC3339)
	var out string
	eventually(t, func() error {
		b, err := adminCmd(t, cfg, "", "who", "--exit", exit, "--at", at).CombinedOutput()
		out = string(b)
		if err != nil {
			return fmt.Errorf("admin who: %v\n%s", err, out)
		}
		for _, w := range want {
			if !regexp.MustCompile(`(?m)^\S+ \S+\s+\S+\s+` + regexp.QuoteMeta(w) + `\s`).MatchString(out) {
				return fmt.Errorf("admin who --exit %s does not name %s:\n%s", exit, w, out)
			}
		}
		return nil
	})
	for _, w := range notWant {
		if strings.Contains(out, " "+w+" ") {
			t.Errorf("admin who --exit %s names %s, who never used it:\n%s", exit, w, out)
		}
	}
}

func basicAuth(user, password string) http.Header {
	req, _ := http.NewRequest("GET", "http://x/", nil)
	req.SetBasicAuth(user, password)
	return http.Header{"Proxy-Authorization": {req.Header.Get("Authorization")}}
}

// An abuse complaint names an exit and a time: "admin who" answers with the account that used that
// exit then, and only that one. Here on SQLite, one node: alice leaves by 127.0.0.2, bob by 127.0.0.3.
func TestWhoUsedAnExitOnSQLite(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "exitmesh.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, serveConfig, dir), 0o600)
	originSrv := httptest.NewServer(origin.Handler())
	defer originSrv.Close()
	serve := startProcess(t, "serve", "--config", cfg)
	addr := serve.waitFor(t, regexp.MustCompile(`proxy server listening.*addr=(\S+)`))[1]
	for _, u := range []string{"alice", "bob"} {
		if out, err := adminCmd(t, cfg, u+"-password\n", "account", "create", u, "--plan", "starter", "--password-stdin", "--proxies", "us-ca").CombinedOutput(); err != nil {
			t.Fatalf("admin account create %s: %v\n%s", u, err, out)
		}
	}
	through := func(user, exit string) {
		c := proxyClient("http://"+user+":"+user+"-password@"+addr, nil)
		eventually(t, func() error {
			if body, resp := get(t, c, originSrv.URL+"/ip", http.Header{"X-ProxyMesh-IP": {exit}}); resp.StatusCode != 200 || strings.TrimSpace(body) != exit {
				return fmt.Errorf("%s through %s: %d %q", user, exit, resp.StatusCode, body)
			}
			return nil
		})
	}
	through("alice", "127.0.0.2")
	through("bob", "127.0.0.3")
	whoSays(t, cfg, "127.0.0.2", []string{"alice"}, "bob")
	whoSays(t, cfg, "127.0.0.3", []string{"bob"}, "alice")
	b, err := adminCmd(t, cfg, "", "who", "--exit", "127.0.0.2", "--at", "2020-01-01 12:00").CombinedOutput()
	if err != nil || !strings.Contains(string(b), "nobody used exit 127.0.0.2") {
		t.Errorf("admin who at a time nobody used it: %v\n%s", err, b)
	}
	b, err = adminCmd(t, cfg, "", "who", "--exit", "not-an-ip", "--at", "2020-01-01 12:00").CombinedOutput()
	if err == nil || !strings.Contains(string(b), "is not an IP address") {
		t.Errorf("admin who with a bad exit: %v\n%s", err, b)
	}
}

// Across nodes on PostgreSQL: each proxy node records its own exits in the shared store, and the API
// node's "admin who" sees them all.
func TestWhoUsedAnExitAcrossNodes(t *testing.T) {
	c := startCluster(t)
	originSrv := httptest.NewServer(origin.Handler())
	defer originSrv.Close()
	for _, u := range []string{"alice", "bob"} {
		cmd := adminCmd(t, c.apiConfig, u+"-password\n", "account", "create", u, "--plan", "starter", "--password-stdin", "--proxies", "us-ca,world")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("admin account create %s: %v\n%s", u, err, out)
		}
	}
	send := func(proxy, user, exit string) {
		h := basicAuth(user, user+"-password")
		h.Set("X-ProxyMesh-IP", exit)
		c.propagate(user+" through "+exit, 200, func(name string) int {
			if name != proxy {
				return 200 // propagate probes both proxy servers; this exit is on one
			}
			return c.sendWith(name, "127.0.0.40", "GET", originSrv.URL+"/ip", "", h)
		})
	}
	send("us-ca", "alice", "127.0.0.2") // proxy-a
	send("world", "bob", "127.0.0.4")   // proxy-b
	send("us-ca", "bob", "127.0.0.3")
	whoSays(t, c.apiConfig, "127.0.0.2", []string{"alice"}, "bob")
	whoSays(t, c.apiConfig, "127.0.0.4", []string{"bob"}, "alice")
	whoSays(t, c.apiConfig, "127.0.0.3", []string{"bob"}, "alice")
}
