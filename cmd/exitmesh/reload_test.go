package main_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tunnelClient opens one CONNECT tunnel to the HTTPS originURL and keeps it between requests: ip asks
// the origin through it for the address it sees, requiring that the tunnel is reused after the first
// request, and closeTunnel closes it.
func tunnelClient(t *testing.T, proxyURL, originURL string) (ip func() string, closeTunnel func()) {
	u, err := url.Parse(proxyURL)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{Proxy: http.ProxyURL(u), MaxConnsPerHost: 1,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} // the demo origin's self-signed certificate
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	requests := 0
	return func() string {
		t.Helper()
		reused := false
		trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, originURL+"/ip", nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("request %d through the tunnel: %v", requests+1, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || (requests > 0 && !reused) {
			t.Fatalf("request %d through the tunnel: status %d, tunnel reused %v", requests+1, resp.StatusCode, reused)
		}
		requests++
		return strings.TrimSpace(string(body))
	}, tr.CloseIdleConnections
}

// requireProcessExits requires that requests through c leave only from the exits in want.
func requireProcessExits(t *testing.T, what string, c *http.Client, originURL string, want ...string) {
	t.Helper()
	for range 10 {
		ip, resp := get(t, c, originURL+"/ip", nil)
		if resp.StatusCode != 200 || !slices.Contains(want, ip) {
			t.Errorf("%s: status %d from %q, want 200 from one of %v", what, resp.StatusCode, ip, want)
		}
	}
}

// TestServeReloadsOnSIGHUP changes a serving node's exits by editing its config file and sending
// SIGHUP, as an operator does, and checks that an open tunnel survives it and a broken file does not
// disturb the node.
func TestServeReloadsOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "exitmesh.yaml")
	writeConfig := func(text string) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig(fmt.Sprintf(serveConfig, dir))
	os.MkdirAll(filepath.Join(dir, "demo"), 0o700)
	origin := startProcess(t, "demo", "--port", "0", "--dir", filepath.Join(dir, "demo")) // only for its origin
	originURL := origin.waitFor(t, regexp.MustCompile(`curl -s -x \S+ (http://\S+)/ip; done`))[1]
	tlsOriginURL := origin.waitFor(t, regexp.MustCompile(`curl -sk -x \S+ --proxy-header '\S+ \S+' (https://\S+)/ip`))[1]
	serve := startProcess(t, "serve", "--config", cfg)
	addr := serve.waitFor(t, regexp.MustCompile(`proxy server listening.*addr=(\S+)`))[1]
	if out, err := adminCmd(t, cfg, "correct-horse-battery\n", "account", "create", "alice", "--plan", "starter",
		"--password-stdin", "--proxies", "us-ca").CombinedOutput(); err != nil {
		t.Fatalf("account create: %v\n%s", err, out)
	}
	c := proxyClient("http://alice:correct-horse-battery@"+addr, nil)
	eventually(t, func() error {
		if _, resp := get(t, c, originURL+"/ip", nil); resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	tunnelIP, tunnelsClosed := tunnelClient(t, "http://alice:correct-horse-battery@"+addr, tlsOriginURL) // HTTPS: a CONNECT tunnel
	tunnelExit := tunnelIP()
	if tunnelExit != "127.0.0.2" && tunnelExit != "127.0.0.3" {
		t.Fatalf("the tunnel leaves from %s, want 127.0.0.2 or .3", tunnelExit)
	}

	writeConfig(strings.Replace(fmt.Sprintf(serveConfig, dir), "[{ip: 127.0.0.2}, {ip: 127.0.0.3}]", "[{ip: 127.0.0.4}, {ip: 127.0.0.5}]", 1))
	serve.cmd.Process.Signal(syscall.SIGHUP)
	serve.waitFor(t, regexp.MustCompile(`msg="config reloaded".*changed=\[us-ca\]`))
	requireProcessExits(t, "after the reload", c, originURL, "127.0.0.4", "127.0.0.5")
	if ip := tunnelIP(); ip != tunnelExit {
		t.Errorf("the tunnel opened before the reload now leaves from %s, want %s", ip, tunnelExit)
	}

	good := fmt.Sprintf(serveConfig, dir)
	for _, bad := range []struct{ what, text, names string }{
		{"an invalid exit", strings.Replace(good, "{ip: 127.0.0.2}", "{ip: 127.0.0.300}", 1), "proxies[0].exits[0].ip"},
		{"a file cut off while being written", good[:strings.Index(good, "127.0.0.2")], "yaml: line "},
	} {
		writeConfig(bad.text)
		serve.cmd.Process.Signal(syscall.SIGHUP)
		failed := serve.waitFor(t, regexp.MustCompile(`msg="config reload failed; keeping the running config".*err="(.*)"`))
		if !strings.Contains(failed[1], bad.names) {
			t.Errorf("reloading %s: the failure %q does not name %s", bad.what, failed[1], bad.names)
		}
		requireProcessExits(t, "after reloading "+bad.what, c, originURL, "127.0.0.4", "127.0.0.5")
		if ip := tunnelIP(); ip != tunnelExit {
			t.Errorf("after reloading %s the tunnel leaves from %s, want %s", bad.what, ip, tunnelExit)
		}
	}
	tunnelsClosed() // else the node waits timeouts.shutdown for it
	serve.stop(t, syscall.SIGTERM)
	origin.stop(t, os.Interrupt)
}
