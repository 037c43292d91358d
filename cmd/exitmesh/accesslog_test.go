package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/origin"
)

// logLines reads the JSON lines of an access log file ("" for none yet).
func logLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: line %q is not JSON: %v", path, sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
}

// The access log of a running node, rotated as logrotate does (rename, then SIGUSR1): every request
// before the signal is in the renamed file, every one after in a new file, none lost, and each line
// of a CONNECT and of a plain request holds every field.
func TestAccessLogRotatesOnSIGUSR1(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "exitmesh.yaml")
	logPath := filepath.Join(dir, "access.log")
	os.WriteFile(cfg, fmt.Appendf(nil, serveConfig+"access_log: {path: %q}\n", dir, logPath), 0o600)
	originSrv := httptest.NewServer(origin.Handler())
	defer originSrv.Close()
	serve := startProcess(t, "serve", "--config", cfg)
	addr := serve.waitFor(t, regexp.MustCompile(`proxy server listening.*addr=(\S+)`))[1]
	if out, err := adminCmd(t, cfg, "alice-password\n", "account", "create", "alice", "--plan", "starter", "--password-stdin", "--proxies", "us-ca").CombinedOutput(); err != nil {
		t.Fatalf("admin account create: %v\n%s", err, out)
	}
	c := proxyClient("http://alice:alice-password@"+addr, nil)
	sent := 0
	request := func() {
		t.Helper()
		_, resp := get(t, c, originSrv.URL+"/ip", nil)
		if resp.StatusCode == http.StatusOK {
			sent++
		}
	}
	eventually(t, func() error { // the node sees alice
		request()
		if sent == 0 {
			return fmt.Errorf("alice not served yet")
		}
		return nil
	})
	for range 9 {
		request()
	}
	tlsOrigin := httptest.NewTLSServer(origin.Handler())
	defer tlsOrigin.Close()
	tc := proxyClient("http://alice:alice-password@"+addr, nil)
	tc.Transport.(*http.Transport).TLSClientConfig = tlsOrigin.Client().Transport.(*http.Transport).TLSClientConfig
	tc.Transport.(*http.Transport).DisableKeepAlives = true
	if _, resp := get(t, tc, tlsOrigin.URL+"/ip", nil); resp.StatusCode != 200 {
		t.Fatalf("through a tunnel: %d", resp.StatusCode)
	}
	served := func(lines []map[string]any) int {
		n := 0
		for _, m := range lines {
			if m["status"] == 200.0 && m["account"] == "alice" {
				n++
			}
		}
		return n
	}
	eventually(t, func() error { // the tunnel's line is written once the tunnel closed
		if n := served(logLines(t, logPath)); n != sent+1 {
			return fmt.Errorf("%d lines of alice's, want %d", n, sent+1)
		}
		return nil
	})
	before := sent + 1
	for _, m := range logLines(t, logPath) {
		if m["status"] != 200.0 {
			continue
		}
		for _, k := range []string{"time", "node", "proxy", "account", "sub_account", "client_ip", "exit_ip", "method", "host", "port", "status", "bytes_in", "bytes_out", "duration_ms", "error"} {
			if _, ok := m[k]; !ok {
				t.Errorf("line %v lacks %s", m, k)
			}
		}
		if !strings.HasPrefix(m["exit_ip"].(string), "127.0.0.") || m["proxy"] != "us-ca" {
			t.Errorf("line %v", m)
		}
	}
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	serve.cmd.Process.Signal(syscall.SIGUSR1)
	serve.waitFor(t, regexp.MustCompile(`access log reopened`))
	for range 10 {
		request()
	}
	eventually(t, func() error {
		if n := served(logLines(t, logPath)); n != sent+1-before {
			return fmt.Errorf("%d lines in the new file, want %d", n, sent+1-before)
		}
		return nil
	})
	if n := served(logLines(t, logPath+".1")); n != before {
		t.Errorf("%d lines in the renamed file, want %d", n, before)
	}
	// admin who points at the lines of the exit's hours in the access log, with a command that finds them.
	exit := logLines(t, logPath)[0]["exit_ip"].(string)
	var grep string
	eventually(t, func() error {
		out, err := adminCmd(t, cfg, "", "who", "--exit", exit, "--at", time.Now().UTC().Format(time.RFC3339)).CombinedOutput()
		m := regexp.MustCompile(`(?m)^  (grep -h .*)$`).FindSubmatch(out)
		if err != nil || m == nil {
			return fmt.Errorf("admin who: %v\n%s", err, out)
		}
		grep = string(m[1])
		return nil
	})
	found, err := exec.Command("bash", "-c", grep).Output()
	if err != nil || !strings.Contains(string(found), `"exit_ip":"`+exit+`"`) {
		t.Errorf("%s: %v\n%s", grep, err, found)
	}
	serve.stop(t, syscall.SIGTERM)
}
