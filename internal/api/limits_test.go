package api_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// proxyGet sends GET target through the us-ca proxy server as login and returns the status and body.
func (e *env) proxyGet(login, pw, target string) (int, string) {
	e.t.Helper()
	u := &url.URL{Scheme: "http", Host: e.node.ProxyAddr("us-ca"), User: url.UserPassword(login, pw)}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(u), DisableKeepAlives: true}}
	resp, err := c.Get(target)
	if err != nil {
		e.t.Fatalf("through the proxy: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAccountAndSubAccountLimits(t *testing.T) {
	e := newEnv(t)
	r := e.get("/api/account/", "bob", bobPW)
	limits, _ := r.json["limits"].(map[string]any)
	bw, _ := r.json["bandwidth"].(map[string]any)
	if r.status != 200 || r.json["plan"] != "big" || r.json["billing_day"] != float64(1) || limits["subs"] != float64(10) ||
		limits["tokens"] != float64(3) || r.json["monthly_bandwidth_limit"] != float64(0) || bw["period_used"] != float64(0) ||
		!strings.HasSuffix(bw["period_start"].(string), "-01T00:00:00Z") {
		t.Fatalf("GET /api/account/: %d %s", r.status, r.body)
	}
	r = e.post("/api/account/edit/", "bob", bobPW, url.Values{"monthly_bandwidth_limit": {"0.5"}, "total_bandwidth_limit": {"12"}})
	if r.status != 200 || r.json["monthly_bandwidth_limit"] != 0.5 || r.json["total_bandwidth_limit"] != float64(12) {
		t.Fatalf("account/edit: %d %s", r.status, r.body)
	}
	for _, bad := range []string{"-1", "lots", "1e12"} {
		r := e.post("/api/account/edit/", "bob", bobPW, url.Values{"monthly_bandwidth_limit": {bad}})
		fields, _ := r.json["fields"].(map[string]any)
		if r.status != 400 || fields["monthly_bandwidth_limit"] == nil {
			t.Errorf("monthly_bandwidth_limit=%s: %d %s, want a form error", bad, r.status, r.body)
		}
	}
	if r := e.get("/api/account/", "bob", bobPW); r.json["monthly_bandwidth_limit"] != 0.5 {
		t.Errorf("a refused edit changed the limit: %s", r.body)
	}

	// A sub-account with its own monthly limit of 2000 bytes, profile fields, and a sibling.
	r = e.do(request{method: "POST", path: "/api/sub/create/", login: "bob", pw: bobPW, json: map[string]any{
		"username": "bob-small", "password": subPW, "proxies": []string{"us-ca"}, "email": "small@example.com",
		"first_name": "Small", "last_name": "Bot", "monthly_bandwidth_limit": "0.000002"}})
	if r.status != 200 || r.json["email"] != "small@example.com" || r.json["first_name"] != "Small" || r.json["monthly_bandwidth_limit"] != 0.000002 {
		t.Fatalf("sub/create with profile and limit: %d %s", r.status, r.body)
	}
	if r := e.post("/api/sub/create/", "bob", bobPW, url.Values{"username": {"bob-x"}, "password": {subPW}, "email": {"nope"}}); r.status != 400 {
		t.Errorf("a sub-account with a malformed email: %d %s", r.status, r.body)
	}
	target := e.origin.URL + "/bytes/1000"
	for i := range 2 {
		if status, body := e.proxyGet("bob-small", subPW, target); status != 200 {
			t.Fatalf("bob-small's request %d: %d %s", i+1, status, body)
		}
	}
	status, body := e.proxyGet("bob-small", subPW, target)
	if status != 509 || !strings.Contains(body, "sub-account's monthly bandwidth limit") {
		t.Errorf("bob-small past its 2000 bytes: %d %q, want 509", status, body)
	}
	for _, login := range []struct{ name, pw string }{{"bob", bobPW}, {"bob-sub", subPW}} {
		if status, body := e.proxyGet(login.name, login.pw, target); status != 200 {
			t.Errorf("%s while bob-small's limit is spent: %d %s", login.name, status, body)
		}
	}
	// The list shows what each sub-account used, once the node has flushed it.
	eventually(t, "bob-small's bandwidth listed", func() bool {
		r := e.get("/api/subs/", "bob", bobPW)
		for _, s := range r.json["subs"].([]any) {
			sub := s.(map[string]any)
			if sub["username"] == "bob-small" {
				bw, _ := sub["bandwidth"].(map[string]any)
				return bw["period_used"] != nil && bw["period_used"].(float64) >= 0.000002 && sub["last_name"] == "Bot"
			}
		}
		return false
	})
	r = e.post("/api/sub/edit/", "bob", bobPW, url.Values{"username": {"bob-small"}, "monthly_bandwidth_limit": {"0"}})
	if r.status != 200 || r.json["monthly_bandwidth_limit"] != float64(0) {
		t.Fatalf("sub/edit removing the limit: %d %s", r.status, r.body)
	}
	if status, body := e.proxyGet("bob-small", subPW, target); status != 200 {
		t.Errorf("bob-small once its limit is lifted: %d %s", status, body)
	}
}
