package main_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/origin"
)

// TestKilledNodeLosesNoAcknowledgedChange: the API node of a three-node network on PostgreSQL is
// killed with SIGKILL in the middle of a burst of changes made through its API. Every change it
// acknowledged reaches both proxy nodes, and the API node, started again on the same store, shows
// exactly the acknowledged state.
func TestKilledNodeLosesNoAcknowledgedChange(t *testing.T) {
	c := startCluster(t)
	originSrv := httptest.NewServer(origin.Handler())
	defer originSrv.Close()
	cmd := adminCmd(t, c.apiConfig, "alice-password\n", "account", "create", "alice", "--plan", "starter", "--password-stdin", "--proxies", "us-ca,world")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("admin account create: %v\n%s", err, out)
	}

	// One writer toggles eight addresses in turn (the plan allows ten): add, later delete, and so on.
	// acked holds each address's state after its last answered change; an address whose last change
	// went unanswered (the kill came during it) may be either way, and is left out.
	ips := make([]string, 8)
	for i := range ips {
		ips[i] = fmt.Sprintf("127.0.0.%d", 40+i)
	}
	var mu sync.Mutex
	acked := map[string]bool{}
	unsure := map[string]bool{}
	answered := make(chan struct{}, 1000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		present := map[string]bool{}
		for i := 0; ; i++ {
			ip := ips[i%len(ips)]
			path := "/api/ip/add/"
			if present[ip] {
				path = "/api/ip/delete/"
			}
			status, err := c.tryAPI("POST", path, url.Values{"ip": {ip}})
			mu.Lock()
			if err != nil || (status != 200 && status != 204) {
				unsure[ip] = true
				mu.Unlock()
				return // the node is gone
			}
			present[ip] = !present[ip]
			acked[ip] = present[ip]
			mu.Unlock()
			answered <- struct{}{}
		}
	}()
	for range 40 {
		<-answered
	}
	c.procs["api"].kill(t)
	<-done
	mu.Lock()
	defer mu.Unlock()
	t.Logf("SIGKILL after %d acknowledged changes; unanswered: %v", len(answered)+40, unsure)

	target := originSrv.URL + "/ip"
	for ip, present := range acked {
		if unsure[ip] {
			continue
		}
		want := http.StatusProxyAuthRequired
		if present {
			want = http.StatusOK
		}
		for _, proxy := range []string{"us-ca", "world"} {
			eventually(t, func() error {
				if got := c.fetch(proxy, ip, target); got != want {
					return fmt.Errorf("%s from %s: %d, want %d (acknowledged present=%v)", proxy, ip, got, want, present)
				}
				return nil
			})
		}
	}

	// The API node again, on the same store: it shows the acknowledged state.
	dir := filepath.Dir(c.apiConfig)
	c.procs["api"] = startProcessIn(t, dir, "serve", "--config", c.apiConfig)
	c.apiAddr = c.procs["api"].waitFor(t, regexp.MustCompile(`api listening"? addr=(\S+) scheme=https`))[1]
	status, body := c.api("GET", "/api/ips/", nil)
	if status != 200 {
		t.Fatalf("ips after the restart: %d %s", status, body)
	}
	for ip, present := range acked {
		if !unsure[ip] && strings.Contains(body, `"`+ip+`"`) != present {
			t.Errorf("after the restart the API lists %s: %v, want %v (%s)", ip, !present, present, body)
		}
	}
}

// tryAPI calls the account API as alice and returns the status, or the error when the node did not
// answer (it was killed).
func (c *cluster) tryAPI(method, path string, form url.Values) (int, error) {
	req, _ := http.NewRequest(method, "https://"+c.apiAddr+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("alice", "alice-password")
	client := *c.apiClient
	client.Timeout = 5 * time.Second
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
