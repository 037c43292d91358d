package main_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary builds exitmesh once for the tests of this package.
var binary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "exitmesh-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "exitmesh")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func build(t *testing.T) string {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// process is a running exitmesh whose output lines are collected.
type process struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan error
}

func startProcess(t *testing.T, args ...string) *process {
	t.Helper()
	return startProcessIn(t, "", args...)
}

// startProcessIn runs exitmesh in the working directory dir ("" for the test's).
func startProcessIn(t *testing.T, dir string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(build(t), args...)
	cmd.Dir = dir
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, lines: make(chan string, 1000), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default: // nobody reads any more; drop
			}
		}
	}()
	go func() {
		err := cmd.Wait()
		pw.Close()
		p.done <- err
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	return p
}

// waitFor returns the first output line matching re, with its submatches.
func (p *process) waitFor(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case line := <-p.lines:
			if m := re.FindStringSubmatch(line); m != nil {
				return m
			}
		case err := <-p.done:
			p.done <- err // for the cleanup
			t.Fatalf("exitmesh exited (%v) before printing %s", err, re)
		case <-timeout:
			t.Fatalf("no output line matched %s", re)
		}
	}
}

// stop sends sig and requires a clean exit.
func (p *process) stop(t *testing.T, sig os.Signal) {
	t.Helper()
	p.cmd.Process.Signal(sig)
	p.requireExit(t, sig)
}

// requireExit waits for the process to end after sig and requires status 0.
func (p *process) requireExit(t *testing.T, sig os.Signal) {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		if err != nil {
			t.Errorf("exitmesh exited with %v after %v, want status 0", err, sig)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("exitmesh did not stop after %v", sig)
	}
}

// kill ends the process with SIGKILL, as a crash or the OOM killer would, and waits until it is gone.
func (p *process) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	err := <-p.done
	p.done <- err // for the cleanup
}

// listening waits until p has announced n listeners and returns their addresses by proxy server name,
// and "api" for the HTTPS account API.
func (p *process) listening(t *testing.T, n int) map[string]string {
	t.Helper()
	re := regexp.MustCompile(`(?:proxy server|api) listening.*?(?:proxy=(\S+) )?addr=(\S+)(?: scheme=(\S+))?`)
	addrs := map[string]string{}
	for len(addrs) < n {
		m := p.waitFor(t, re)
		switch {
		case m[1] != "":
			addrs[m[1]] = m[2]
		case m[3] == "https":
			addrs["api"] = m[2]
		}
	}
	return addrs
}

// apiClient is an HTTPS client that trusts only the node's self-signed certificate in certFile.
func apiClient(t *testing.T, certFile string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func proxyClient(proxyURL string, header http.Header) *http.Client {
	u, _ := url.Parse(proxyURL)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Proxy:              http.ProxyURL(u),
		ProxyConnectHeader: header,
		DisableKeepAlives:  true,
		TLSClientConfig:    &tls.Config{InsecureSkipVerify: true}, // the demo origin's self-signed certificate
	}}
}

func get(t *testing.T, c *http.Client, u string, header http.Header) (string, *http.Response) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), resp
}

// TestDemo runs the README's first command as a newcomer would and follows the printed instructions.
func TestDemo(t *testing.T) {
	p := startProcess(t, "demo", "--port", "0")
	p.waitFor(t, regexp.MustCompile(`^exitmesh demo is running`))
	rot := p.waitFor(t, regexp.MustCompile(`curl -s -x (http://demo:\S+@\S+) (http://\S+)/ip; done`))
	proxyURL, originURL := rot[1], rot[2]
	tlsLine := p.waitFor(t, regexp.MustCompile(`curl -sk -x (\S+) --proxy-header 'X-ProxyMesh-IP: (\S+)' (https://\S+)/ip`))

	c := proxyClient(proxyURL, nil)
	seen := map[string]bool{}
	for range 20 {
		ip, resp := get(t, c, originURL+"/ip", nil)
		if resp.StatusCode != 200 || resp.Header.Get("X-ProxyMesh-IP") != ip {
			t.Fatalf("status %d, X-ProxyMesh-IP %q, origin saw %q", resp.StatusCode, resp.Header.Get("X-ProxyMesh-IP"), ip)
		}
		seen[ip] = true
	}
	if len(seen) < 3 {
		t.Errorf("20 requests left through %d exits (%v), want rotation over the 4", len(seen), seen)
	}

	pin := http.Header{}
	pin.Set("X-ProxyMesh-IP", tlsLine[2])
	if ip, _ := get(t, proxyClient(tlsLine[1], pin), tlsLine[3]+"/ip", nil); ip != tlsLine[2] {
		t.Errorf("HTTPS through CONNECT pinned to %s: origin saw %s", tlsLine[2], ip)
	}
	p.stop(t, os.Interrupt)
}

// nodeConfig starts the config of a test node: SQLite in a directory (%s), ports chosen by the
// system, changes and usage seen within a fifth of a second.
const nodeConfig = `
store: sqlite:%s/exitmesh.db
api: {listen: "127.0.0.1:0"}
metrics: {listen: "off"}
sync: {interval: 200ms}
usage: {flush_interval: 200ms}
`

const serveConfig = nodeConfig + `proxies:
  - name: us-ca
    listen: "127.0.0.1:0"
    exits: [{ip: 127.0.0.2}, {ip: 127.0.0.3}]
egress: {allow: [127.0.0.1/32]}
plans:
  - {name: starter, proxies: 3, subs: 5, ips: 10, hostnames: 5, bandwidth: 10GB}
`

// TestServeAndAdminProcesses runs a node with "serve" and changes accounts with "admin" from other
// processes, as an operator does.
func TestServeAndAdminProcesses(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "exitmesh.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, serveConfig, dir), 0o600)
	os.MkdirAll(filepath.Join(dir, "demo"), 0o700)
	origin := startProcess(t, "demo", "--port", "0", "--dir", filepath.Join(dir, "demo")) // only for its origin
	originURL := origin.waitFor(t, regexp.MustCompile(`curl -s -x \S+ (http://\S+)/ip; done`))[1]

	admin := func(stdin string, args ...string) string {
		t.Helper()
		out, err := adminCmd(t, cfg, stdin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("admin %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	serve := startProcess(t, "serve", "--config", cfg)
	addr := serve.waitFor(t, regexp.MustCompile(`proxy server listening.*addr=(\S+)`))[1]

	admin("correct-horse-battery\n", "account", "create", "alice", "--plan", "starter", "--password-stdin", "--proxies", "us-ca")
	c := proxyClient("http://alice:correct-horse-battery@"+addr, nil)
	eventually(t, func() error {
		if _, resp := get(t, c, originURL+"/ip", nil); resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	admin("", "account", "disable", "alice")
	eventually(t, func() error {
		if _, resp := get(t, c, originURL+"/ip", nil); resp.StatusCode != 403 {
			return fmt.Errorf("status %d after disable, want 403", resp.StatusCode)
		}
		return nil
	})
	serve.stop(t, syscall.SIGTERM)
	// Requests made before the disable reached the node are counted; each answer is "127.0.0.N\n".
	m := regexp.MustCompile(`alice\s+-\s+us-ca\s+0\s+(\d+)\s+([1-9]\d*)\s+0`).FindStringSubmatch(admin("", "usage", "alice"))
	if m == nil || m[1] != fmt.Sprint(10*atoi(m[2])) {
		t.Errorf("usage after shutdown: %v, want alice's requests on us-ca with 10 bytes out each", m)
	}
	if out := admin("", "account", "list"); !strings.Contains(out, "disabled") {
		t.Errorf("account list:\n%s", out)
	}
	origin.stop(t, os.Interrupt)
}

// adminCmd prepares "exitmesh admin --config cfg ARGS" with stdin.
func adminCmd(t *testing.T, cfg, stdin string, args ...string) *exec.Cmd {
	cmd := exec.Command(build(t), append([]string{"admin", "--config", cfg}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	return cmd
}

func atoi(s string) int {
	n := 0
	fmt.Sscan(s, &n)
	return n
}

func eventually(t *testing.T, check func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		err := check()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal(err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
