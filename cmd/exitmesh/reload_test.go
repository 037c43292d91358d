package main_test

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
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

// processTunnel is a CONNECT tunnel to the origin on which the test sends HTTP requests.
type processTunnel struct {
	conn net.Conn
	r    *bufio.Reader
	host string
}

func openProcessTunnel(t *testing.T, proxyAddr, originURL, login, password string) *processTunnel {
	t.Helper()
	u, err := url.Parse(originURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", proxyAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	cred := base64.StdEncoding.EncodeToString([]byte(login + ":" + password))
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\n\r\n", u.Host, u.Host, cred)
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT %s: %v %v", u.Host, resp, err)
	}
	return &processTunnel{conn: conn, r: r, host: u.Host}
}

// ip asks the origin, through the tunnel's kept-alive connection, which address it sees.
func (tun *processTunnel) ip(t *testing.T) string {
	t.Helper()
	tun.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(tun.conn, "GET /ip HTTP/1.1\r\nHost: %s\r\n\r\n", tun.host); err != nil {
		t.Fatalf("request through the tunnel: %v", err)
	}
	resp, err := http.ReadResponse(tun.r, nil)
	if err != nil {
		t.Fatalf("answer through the tunnel: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return strings.TrimSpace(string(body))
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
	tun := openProcessTunnel(t, addr, originURL, "alice", "correct-horse-battery")
	tunnelExit := tun.ip(t)
	if tunnelExit != "127.0.0.2" && tunnelExit != "127.0.0.3" {
		t.Fatalf("the tunnel leaves from %s, want 127.0.0.2 or .3", tunnelExit)
	}

	writeConfig(strings.Replace(fmt.Sprintf(serveConfig, dir), "[{ip: 127.0.0.2}, {ip: 127.0.0.3}]", "[{ip: 127.0.0.4}, {ip: 127.0.0.5}]", 1))
	serve.cmd.Process.Signal(syscall.SIGHUP)
	serve.waitFor(t, regexp.MustCompile(`msg="config reloaded".*changed=\[us-ca\]`))
	requireProcessExits(t, "after the reload", c, originURL, "127.0.0.4", "127.0.0.5")
	if ip := tun.ip(t); ip != tunnelExit {
		t.Errorf("the tunnel opened before the reload now leaves from %s, want %s", ip, tunnelExit)
	}

	writeConfig(strings.Replace(fmt.Sprintf(serveConfig, dir), "{ip: 127.0.0.2}", "{ip: 127.0.0.300}", 1))
	serve.cmd.Process.Signal(syscall.SIGHUP)
	failed := serve.waitFor(t, regexp.MustCompile(`msg="config reload failed; keeping the running config".*err="(.*)"`))
	if !strings.Contains(failed[1], "proxies[0].exits[0].ip") {
		t.Errorf("the failure %q does not name the key proxies[0].exits[0].ip", failed[1])
	}
	requireProcessExits(t, "after a failed reload", c, originURL, "127.0.0.4", "127.0.0.5")
	if ip := tun.ip(t); ip != tunnelExit {
		t.Errorf("the tunnel now leaves from %s, want %s", ip, tunnelExit)
	}
	tun.conn.Close() // else the node waits timeouts.shutdown for it
	serve.stop(t, syscall.SIGTERM)
	origin.stop(t, os.Interrupt)
}
