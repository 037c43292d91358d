package main_test

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestSteeringExamples runs the examples of docs/STEERING.md — curl, Python requests and Node's
// standard library — against the demo network, with steering in the username, and checks what the
// origin saw: one exit per session, in the country asked for.
func TestSteeringExamples(t *testing.T) {
	p := startProcess(t, "demo", "--port", "0", "--dir", t.TempDir())
	rot := p.waitFor(t, regexp.MustCompile(`curl -s -x http://demo:(\S+)@(\S+) (http://\S+)/ip; done`))
	password, usca, originURL := rot[1], rot[2], rot[3]
	tlsOrigin := p.waitFor(t, regexp.MustCompile(`--proxy-header 'X-ProxyMesh-IP: \S+' (https://\S+)/ip`))[1]
	usExits := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}

	sameExit := func(t *testing.T, client string, out []byte, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v\n%s", client, err, out)
		}
		lines := strings.Fields(strings.TrimSpace(string(out)))
		if len(lines) != 3 {
			t.Fatalf("%s printed %q, want three addresses", client, out)
		}
		for _, ip := range lines {
			if ip != lines[0] || !slices.Contains(usExits, ip) {
				t.Fatalf("%s: one session left through %v; want one us-ca exit for all three", client, lines)
			}
		}
	}

	t.Run("curl", func(t *testing.T) {
		needTool(t, "curl")
		script := fmt.Sprintf(`for i in 1 2 3; do curl -sk --fail -x http://demo-session-abc123:%s@%s %s/ip; done`, password, usca, tlsOrigin)
		out, err := exec.Command("sh", "-c", script).CombinedOutput()
		sameExit(t, "curl", out, err)
	})
	t.Run("python requests", func(t *testing.T) {
		python := pythonWithRequests(t)
		script := fmt.Sprintf(`
import requests, urllib3
urllib3.disable_warnings()
proxy = "http://demo-session-py1-country-us:%s@%s"
for _ in range(3):
    r = requests.get("%s/ip", proxies={"http": proxy, "https": proxy}, timeout=30, verify=False)
    r.raise_for_status()
    print(r.text.strip())
`, password, usca, tlsOrigin)
		out, err := exec.Command(python, "-c", script).CombinedOutput()
		sameExit(t, "python requests", out, err)
	})
	t.Run("node", func(t *testing.T) {
		needTool(t, "node")
		host, port, _ := strings.Cut(usca, ":")
		script := fmt.Sprintf(`
const http = require("node:http");
const auth = Buffer.from("demo-session-node1:%s").toString("base64");
const get = () => new Promise((resolve, reject) => {
  http.get({ host: %q, port: %s, path: %q, headers: { "Proxy-Authorization": "Basic " + auth } }, (res) => {
    let body = ""; res.on("data", (c) => (body += c));
    res.on("end", () => res.headers["x-proxymesh-ip"] === body.trim() ? resolve(body.trim()) : reject(new Error("X-ProxyMesh-IP " + res.headers["x-proxymesh-ip"] + " but the origin saw " + body)));
  }).on("error", reject);
});
(async () => { for (let i = 0; i < 3; i++) console.log(await get()); })().catch((e) => { console.error(e); process.exit(1); });
`, password, host, port, originURL+"/ip")
		out, err := exec.Command("node", "-e", script).CombinedOutput()
		sameExit(t, "node", out, err)
	})
	p.stop(t, os.Interrupt)
}

// needTool fails the test in CI (where .ci/run installs the tool) and skips it elsewhere when the
// program name is not installed.
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		missing(t, name+" is not installed")
	}
}

func missing(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s: CI must run this test (.ci/run installs it)", what)
	}
	t.Skipf("%s; install it to run this test", what)
}

// pythonWithRequests returns a Python interpreter that has the requests library and the other
// modules named.
func pythonWithRequests(t *testing.T, modules ...string) string {
	t.Helper()
	imports := "import " + strings.Join(append([]string{"requests"}, modules...), ", ")
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(py, "-c", imports).Run() == nil {
			return py
		}
	}
	missing(t, "no python3 with "+strings.TrimPrefix(imports, "import "))
	return ""
}
