package main_test

import (
	"errors"
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
)

// TestAdminBanListAndLift: a node bans a client after failed proxy sign-ins; the operator finds the
// ban with "admin ban list" from another process and lifts it with "admin ban lift", after which
// the node serves the client again (it follows the store within a sync interval).
func TestAdminBanListAndLift(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "exitmesh.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, serveConfig+"bans: {auth_failures: 2}\n", dir), 0o600)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello") }))
	defer origin.Close()

	// admin runs an admin command and returns its exit status and output.
	admin := func(args ...string) (int, string) {
		t.Helper()
		out, err := adminCmd(t, cfg, "", args...).CombinedOutput()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode(), string(out)
		} else if err != nil {
			t.Fatalf("admin %v: %v", args, err)
		}
		return 0, string(out)
	}
	serve := startProcess(t, "serve", "--config", cfg)
	addr := serve.waitFor(t, regexp.MustCompile(`proxy server listening.*addr=(\S+)`))[1]
	if code, out := admin("ban", "list"); code != 0 || strings.Count(out, "\n") != 1 {
		t.Fatalf("ban list before any ban: status %d\n%s", code, out)
	}
	if out, err := adminCmd(t, cfg, "correct-horse-battery\n", "account", "create", "alice", "--plan", "starter",
		"--password-stdin", "--proxies", "us-ca").CombinedOutput(); err != nil {
		t.Fatalf("admin account create: %v\n%s", err, out)
	}
	alice := proxyClient("http://alice:correct-horse-battery@"+addr, nil)
	status := func(c *http.Client) (int, string) {
		_, resp := get(t, c, origin.URL, nil)
		return resp.StatusCode, resp.Header.Get("X-ProxyMesh-Error")
	}
	eventually(t, func() error {
		if code, _ := status(alice); code != 200 {
			return fmt.Errorf("alice: status %d, want 200", code)
		}
		return nil
	})

	wrong := proxyClient("http://alice:wrong-password@"+addr, nil)
	for range 3 { // more than auth_failures
		status(wrong)
	}
	if code, reason := status(alice); code != 403 || reason != "banned" {
		t.Fatalf("alice after 3 failed sign-ins from her IP: status %d %q, want 403 banned", code, reason)
	}
	eventually(t, func() error { // the node shares its bans through the store
		_, out := admin("ban", "list")
		if !regexp.MustCompile(`(?m)^127\.0\.0\.1\s+auth-failure\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+1[45] more minutes$`).MatchString(out) {
			return fmt.Errorf("ban list:\n%s\nwant 127.0.0.1 banned for auth-failure for 15 minutes", out)
		}
		return nil
	})

	if code, out := admin("ban", "lift", "127.0.0.1"); code != 0 || !strings.HasPrefix(out, "ban of 127.0.0.1 lifted") {
		t.Fatalf("ban lift: status %d\n%s", code, out)
	}
	eventually(t, func() error {
		if code, reason := status(alice); code != 200 {
			return fmt.Errorf("alice after the lift: status %d %q, want 200", code, reason)
		}
		return nil
	})
	if code, out := admin("ban", "list"); code != 0 || strings.Contains(out, "127.0.0.1") {
		t.Errorf("ban list after the lift: status %d\n%s", code, out)
	}
	if code, out := admin("ban", "lift", "127.0.0.1"); code != 3 || out != "exitmesh: lift ban of 127.0.0.1: IP address 127.0.0.1 is not banned.\n" {
		t.Errorf("lifting a ban that is not in force: status %d, output %q; want 3 and the reason", code, out)
	}
	serve.stop(t, syscall.SIGTERM)
}
