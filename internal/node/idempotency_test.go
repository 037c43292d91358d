package node_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/node"
	"github.com/exitmesh/exitmesh/internal/store/pgtest"
)

const apiNodeConfig = `
store: %q
node: {name: %s}
api: {listen: "127.0.0.1:0"}
metrics: {listen: "off"}
plans:
  - {name: starter, proxies: 3, subs: 5, ips: 10, hostnames: 5, bandwidth: 0}
proxies: []
`

// TestConcurrentRetriesOnTwoNodesApplyOnce sends one POST with one Idempotency-Key to two API nodes
// of one PostgreSQL store at once, many times over: each change is applied once, both answers are its
// answer, and one of them says it was replayed.
func TestConcurrentRetriesOnTwoNodesApplyOnce(t *testing.T) {
	db := pgtest.URL(t)
	var nodes []*node.Node
	for _, name := range []string{"api-a", "api-b"} {
		n, _ := startNodeFrom(t, name, fmt.Sprintf(apiNodeConfig, db, name))
		nodes = append(nodes, n)
	}
	ctx := t.Context()
	admin := nodes[0].Store()
	hash, err := auth.HashPassword("alice-password")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateAccount(ctx, domain.NewAccount{Username: "alice", PasswordHash: hash, Plan: "starter", Confirmed: true}); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	post := func(n *node.Node, key, sub string) (int, string, string) {
		form := url.Values{"username": {sub}, "password": {"sub-password-1"}}
		req, _ := http.NewRequest(http.MethodPost, "https://"+n.APIAddr()+"/api/sub/create/", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Idempotency-Key", key)
		req.SetBasicAuth("alice", "alice-password")
		resp, err := client.Do(req)
		if err != nil {
			t.Error(err)
			return 0, "", ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header.Get("Idempotent-Replayed")
	}
	for i := range 5 {
		key, sub := fmt.Sprintf("retry-%d", i), fmt.Sprintf("alice-bot%d", i)
		type answer struct {
			status         int
			body, replayed string
		}
		var answers [2]answer
		var wg sync.WaitGroup
		for j, n := range nodes {
			wg.Go(func() {
				s, b, r := post(n, key, sub)
				answers[j] = answer{s, b, r}
			})
		}
		wg.Wait()
		a, b := answers[0], answers[1]
		if a.status != 200 || b.status != 200 || a.body != b.body || (a.replayed == "true") == (b.replayed == "true") {
			t.Errorf("round %d: node A %d %q replayed=%q, node B %d %q replayed=%q; want one answer twice, one replayed",
				i, a.status, a.body, a.replayed, b.status, b.body, b.replayed)
		}
	}
	subs, err := admin.ListSubAccounts(ctx, "alice")
	if err != nil || len(subs) != 5 {
		t.Errorf("alice has %d sub-accounts (%v), want the 5 created once each", len(subs), err)
	}
	// The same key with other parameters is refused, on either node.
	if s, body, _ := post(nodes[1], "retry-0", "someone-else"); s != http.StatusUnprocessableEntity || !strings.Contains(body, "another request") {
		t.Errorf("a reused key: %d %s, want 422", s, body)
	}
}
