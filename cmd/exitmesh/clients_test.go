package main_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestSOCKS5AndHTTPSProxyClients drives real clients, unchanged, through the demo's us-ca port with
// SOCKS5 and with TLS to the proxy, each checked against the origin's report of the address it saw:
// curl, Python requests, Node's proxy agents and headless Chromium.
func TestSOCKS5AndHTTPSProxyClients(t *testing.T) {
	dir := t.TempDir()
	p := startProcess(t, "demo", "--port", "0", "--dir", dir)
	rot := p.waitFor(t, regexp.MustCompile(`curl -s -x http://demo:(\S+)@(\S+) (http://\S+)/ip; done`))
	password, usca, originURL := rot[1], rot[2], rot[3]
	tlsOrigin := p.waitFor(t, regexp.MustCompile(`--proxy-header 'X-ProxyMesh-IP: \S+' (https://\S+)/ip`))[1]
	addIP := p.waitFor(t, regexp.MustCompile(`(curl -s --cacert \S+ -u demo:\S+ https://\S+/api/ip/add/ -X POST)`))[1]
	caFile := filepath.Join(dir, "proxy.crt")
	usExits := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}

	// exitsSeen checks a client's output: one exit address per line, each a us-ca exit; with sticky,
	// all the same one.
	exitsSeen := func(t *testing.T, client string, out []byte, err error, want int, sticky bool) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v\n%s", client, err, out)
		}
		lines := strings.Fields(strings.TrimSpace(string(out)))
		if len(lines) != want {
			t.Fatalf("%s printed %q, want %d addresses", client, out, want)
		}
		for _, ip := range lines {
			if !slices.Contains(usExits, ip) || sticky && ip != lines[0] {
				t.Fatalf("%s: the origin saw %v; want us-ca exits%s", client, lines, map[bool]string{true: ", one for the session"}[sticky])
			}
		}
	}
	sh := func(script string) ([]byte, error) { return exec.Command("sh", "-c", script).CombinedOutput() }

	t.Run("curl --socks5-hostname", func(t *testing.T) {
		needTool(t, "curl")
		out, err := sh(fmt.Sprintf(`for i in 1 2 3; do curl -s --fail --socks5-hostname demo-session-c1:%s@%s %s/ip; done`, password, usca, originURL))
		exitsSeen(t, "curl --socks5-hostname", out, err, 3, true)
	})
	t.Run("curl --proxy https://", func(t *testing.T) {
		needTool(t, "curl")
		out, err := sh(fmt.Sprintf(`curl -s --fail --proxy https://demo:%[1]s@%[2]s --proxy-cacert %[3]s %[4]s/ip;
			curl -sk --fail --proxy https://demo-session-c2:%[1]s@%[2]s --proxy-cacert %[3]s %[5]s/ip`, password, usca, caFile, originURL, tlsOrigin))
		exitsSeen(t, "curl --proxy https://", out, err, 2, false)
	})
	t.Run("python requests", func(t *testing.T) {
		python := pythonWithRequests(t, "socks")
		script := fmt.Sprintf(`
import requests
socks = "socks5h://demo-session-py2:%[1]s@%[2]s"
for _ in range(3):
    r = requests.get("%[3]s/ip", proxies={"http": socks, "https": socks}, timeout=30)
    r.raise_for_status()
    print(r.text.strip())
https_proxy = "https://demo:%[1]s@%[2]s"
r = requests.get("%[3]s/ip", proxies={"http": https_proxy}, timeout=30, verify=%[4]q)
r.raise_for_status()
print(r.text.strip())
`, password, usca, originURL, caFile)
		out, err := exec.Command(python, "-c", script).Output() // urllib3 may warn on stderr
		if ee, ok := err.(*exec.ExitError); ok {
			out = append(out, ee.Stderr...)
		}
		exitsSeen(t, "python requests (socks5h://, https://)", out, err, 4, false)
		lines := strings.Fields(string(out))
		if lines[0] != lines[1] || lines[1] != lines[2] {
			t.Errorf("python's SOCKS5 session moved: %v", lines[:3])
		}
	})
	t.Run("node agents", func(t *testing.T) {
		modules := nodeModules(t)
		script := fmt.Sprintf(`
const http = require("node:http"), https = require("node:https"), fs = require("node:fs");
const { SocksProxyAgent } = require("socks-proxy-agent");
const { HttpsProxyAgent } = require("https-proxy-agent");
const get = (mod, url, agent, extra) => new Promise((resolve, reject) => {
  mod.get(url, { agent, ...extra }, (res) => {
    let body = ""; res.on("data", (c) => (body += c));
    res.on("end", () => res.statusCode === 200 ? resolve(body.trim()) : reject(new Error(res.statusCode + " " + body)));
  }).on("error", reject);
});
(async () => {
  const socks = new SocksProxyAgent("socks5h://demo:%[1]s@%[2]s");
  console.log(await get(http, "%[3]s/ip", socks));
  const tlsProxy = new HttpsProxyAgent("https://demo:%[1]s@%[2]s", { ca: fs.readFileSync(%[4]q) });
  console.log(await get(https, "%[5]s/ip", tlsProxy, { rejectUnauthorized: false }));
})().catch((e) => { console.error(e); process.exit(1); });
`, password, usca, originURL, caFile, tlsOrigin)
		cmd := exec.Command("node", "-e", script)
		cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
		out, err := cmd.CombinedOutput()
		exitsSeen(t, "node socks-proxy-agent and https-proxy-agent", out, err, 2, false)
	})
	t.Run("credential-less from an authorized IP", func(t *testing.T) {
		needTool(t, "curl")
		if out, err := sh(addIP); err != nil || !strings.Contains(string(out), "127.0.0.1") {
			t.Fatalf("authorizing 127.0.0.1: %v %s", err, out)
		}
		out, err := sh(fmt.Sprintf(`curl -s --fail --socks5 %s %s/ip`, usca, originURL))
		exitsSeen(t, "curl --socks5 without credentials", out, err, 1, false)

		chromium := "/usr/bin/chromium"
		if _, err := os.Stat(chromium); err != nil {
			missing(t, chromium+" is not installed")
		}
		// Chromium's SOCKS5 has no authentication: the authorized IP lets it in. <-loopback> makes it
		// proxy the loopback origin, which it would otherwise reach directly.
		home := t.TempDir()
		cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
			"--user-data-dir="+filepath.Join(home, "profile"), "--proxy-server=socks5://"+usca,
			"--proxy-bypass-list=<-loopback>", "--dump-dom", originURL+"/ip")
		cmd.Env = append(os.Environ(), "HOME="+home)
		out, err = cmd.Output()
		if err != nil {
			t.Fatalf("chromium: %v", err)
		}
		ip := regexp.MustCompile(`127\.0\.0\.\d+`).FindString(string(out))
		if !slices.Contains(usExits, ip) {
			t.Errorf("chromium through socks5:// loaded %q; want a page showing a us-ca exit", out)
		}
	})
	p.stop(t, os.Interrupt)
}

var nodeModulesOnce = sync.OnceValues(func() (string, error) {
	dir := os.Getenv("EXITMESH_NODE_MODULES")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(cache, "exitmesh-test-node")
	}
	modules := filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "https-proxy-agent")); err == nil {
		if _, err := os.Stat(filepath.Join(modules, "socks-proxy-agent")); err == nil {
			return modules, nil
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out, err := exec.Command("npm", "install", "--no-audit", "--no-fund", "--silent", "--prefix", dir,
		"socks-proxy-agent@8", "https-proxy-agent@7").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("npm install: %v\n%s", err, out)
	}
	return modules, nil
})

// nodeModules returns a node_modules directory with socks-proxy-agent and https-proxy-agent, installed
// from the npm registry once per machine (EXITMESH_NODE_MODULES, or the user's cache directory).
func nodeModules(t *testing.T) string {
	t.Helper()
	needTool(t, "node")
	needTool(t, "npm")
	dir, err := nodeModulesOnce()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}
