package api_test

import (
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
)

// bearer is a request with "Authorization: Bearer token".
func (e *env) bearer(method, path, token string, form url.Values) reply {
	e.t.Helper()
	return e.do(request{method: method, path: path, form: form, header: http.Header{"Authorization": {"Bearer " + token}}})
}

// proxyBearer sends one request through the us-ca proxy with curl, the token in Proxy-Authorization,
// and returns the status curl saw.
func (e *env) proxyBearer(token string) int {
	e.t.Helper()
	out, err := exec.Command("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
		"--proxy", "http://"+e.node.ProxyAddr("us-ca"), "--proxy-header", "Proxy-Authorization: Bearer "+token,
		e.origin.URL+"/ip").Output()
	if err != nil {
		e.t.Fatalf("curl through the proxy: %v", err)
	}
	var status int
	for _, c := range string(out) {
		status = status*10 + int(c-'0')
	}
	return status
}

// createToken creates a token with Basic credentials and returns it and its id.
func (e *env) createToken(login, pw string, form url.Values) (token, id string) {
	e.t.Helper()
	r := e.post("/api/token/create/", login, pw, form)
	if r.status != 200 {
		e.t.Fatalf("token/create %v: %d %s", form, r.status, r.body)
	}
	token, _ = r.json["token"].(string)
	return token, jsonID(r)
}

func TestTokensOnTheAPIAndTheProxies(t *testing.T) {
	e := newEnv(t)
	r := e.post("/api/token/create/", "bob", bobPW, url.Values{"label": {"scraper"}})
	if r.status != 200 {
		t.Fatalf("token/create: %d %s", r.status, r.body)
	}
	token, _ := r.json["token"].(string)
	id := jsonID(r)
	if !auth.WellFormedToken(token) || !strings.HasPrefix(token, "exm_") || r.json["prefix"] != token[:12] ||
		r.json["label"] != "scraper" || r.json["active"] != true || r.json["expires"] != nil || r.json["username"] != "bob" {
		t.Fatalf("token/create answered %s", r.body)
	}
	list := e.get("/api/tokens/", "bob", bobPW)
	if list.status != 200 || strings.Contains(list.body, token) || !strings.Contains(list.body, token[:12]) {
		t.Fatalf("tokens list: %d %s (the token must be shown once only; its prefix listed)", list.status, list.body)
	}

	// The token is a password for the API and the proxies, but never manages tokens.
	if r := e.bearer("GET", "/api/ips/", token, nil); r.status != 200 {
		t.Errorf("Bearer on /api/ips/: %d %s", r.status, r.body)
	}
	if got := e.proxyBearer(token); got != 200 {
		t.Errorf("Bearer on the proxy: %d, want 200", got)
	}
	for _, c := range []struct{ method, path string }{{"GET", "/api/tokens/"}, {"POST", "/api/token/create/"}, {"POST", "/api/token/delete/"}} {
		r := e.bearer(c.method, c.path, token, url.Values{"id": {id}})
		if r.status != 403 || !strings.Contains(r.errorText(), "username and password") {
			t.Errorf("Bearer on %s: %d %s, want the 403 of row 6b", c.path, r.status, r.body)
		}
	}

	// Deactivated: refused at once by this node's API (401) and proxies (407); active again: accepted.
	if r := e.post("/api/token/deactivate/", "bob", bobPW, url.Values{"id": {id}}); r.status != 200 || r.json["active"] != false {
		t.Fatalf("token/deactivate: %d %s", r.status, r.body)
	}
	if r := e.bearer("GET", "/api/ips/", token, nil); r.status != 401 {
		t.Errorf("a deactivated token on the API: %d, want 401", r.status)
	}
	if got := e.proxyBearer(token); got != 407 {
		t.Errorf("a deactivated token on the proxy: %d, want 407", got)
	}
	if r := e.post("/api/token/activate/", "bob", bobPW, url.Values{"id": {id}}); r.status != 200 || r.json["active"] != true {
		t.Fatalf("token/activate: %d %s", r.status, r.body)
	}
	if got := e.proxyBearer(token); got != 200 {
		t.Errorf("a reactivated token on the proxy: %d, want 200", got)
	}

	// Its use is recorded without a write per request: the list shows it after a flush.
	eventually(t, "last_used recorded", func() bool {
		r := e.get("/api/tokens/", "bob", bobPW)
		toks, _ := r.json["tokens"].([]any)
		return len(toks) == 1 && toks[0].(map[string]any)["last_used"] != nil
	})

	// Another account's token id is as unknown as a missing one.
	for _, who := range []struct{ login, pw, id string }{{"alice", alicePW, id}, {"bob", bobPW, "999999"}, {"bob", bobPW, "x"}} {
		if r := e.post("/api/token/delete/", who.login, who.pw, url.Values{"id": {who.id}}); r.status != 404 || r.errorText() != "Token not found." {
			t.Errorf("%s deleting token %s: %d %s, want 404 Token not found.", who.login, who.id, r.status, r.body)
		}
	}
	if r := e.post("/api/token/delete/", "bob", bobPW, url.Values{"id": {id}}); r.status != 204 {
		t.Fatalf("token/delete: %d %s", r.status, r.body)
	}
	if got := e.proxyBearer(token); got != 407 {
		t.Errorf("a deleted token on the proxy: %d, want 407", got)
	}
}

// jsonID is the "id" of a token in a reply, as a parameter.
func jsonID(r reply) string {
	id, _ := r.json["id"].(float64)
	return strconv.FormatInt(int64(id), 10)
}

func TestTokenLimitsExpiryAndSubAccounts(t *testing.T) {
	e := newEnv(t)
	// big allows 3 active tokens for bob and his sub-accounts together.
	subToken, _ := e.createToken("bob", bobPW, url.Values{"username": {"bob-sub"}})
	e.createToken("bob", bobPW, nil)
	soon := time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339)
	expiring, _ := e.createToken("bob", bobPW, url.Values{"expires": {soon}})
	r := e.post("/api/token/create/", "bob", bobPW, nil)
	if r.status != 402 || !strings.Contains(r.errorText(), "3 active API tokens") {
		t.Errorf("a fourth token on a plan of 3: %d %s, want the 402 of row 16", r.status, r.body)
	}

	// A sub-account's token works on the proxies (as the sub-account) but not on the API (row 6).
	if got := e.proxyBearer(subToken); got != 200 {
		t.Errorf("the sub-account's token on the proxy: %d", got)
	}
	if r := e.bearer("GET", "/api/ips/", subToken, nil); r.status != 403 || !strings.Contains(r.errorText(), "Sub-accounts") {
		t.Errorf("the sub-account's token on the API: %d %s, want 403", r.status, r.body)
	}
	list := e.do(request{method: "GET", path: "/api/tokens/?username=bob-sub", login: "bob", pw: bobPW})
	if toks, _ := list.json["tokens"].([]any); len(toks) != 1 || toks[0].(map[string]any)["username"] != "bob-sub" {
		t.Errorf("tokens of bob-sub: %s", list.body)
	}

	// An expired token stops working, on the API and the proxies.
	if got := e.proxyBearer(expiring); got != 200 {
		t.Errorf("a token before its expiry: %d", got)
	}
	eventually(t, "the expired token refused", func() bool {
		return e.bearer("GET", "/api/ips/", expiring, nil).status == 401 && e.proxyBearer(expiring) == 407
	})

	for _, c := range []struct{ expires, field string }{
		{"yesterday", "expires"}, {"2001-01-01", "expires"},
	} {
		r := e.post("/api/token/create/", "bob", bobPW, url.Values{"expires": {c.expires}})
		if r.status != 400 || r.json["fields"] == nil {
			t.Errorf("expires=%s: %d %s, want a form error", c.expires, r.status, r.body)
		}
	}

	// Wrong bearer tokens count toward the same ban as wrong passwords.
	const attacker = "127.0.0.50"
	for i := range 12 { // more than bans.auth_failures (10) failures, then one more request
		r := e.do(request{method: "GET", path: "/api/ips/", source: attacker,
			header: http.Header{"Authorization": {"Bearer exm_notatoken" + strconv.Itoa(i)}}})
		if i <= 10 && r.status != 401 {
			t.Fatalf("wrong bearer %d: %d, want 401", i, r.status)
		}
		if i == 11 && r.status != 403 {
			t.Errorf("after 11 wrong bearer tokens: %d, want the ban's 403", r.status)
		}
	}
}

func TestActingOnASubAccountsIPs(t *testing.T) {
	e := newEnv(t)
	if r := e.post("/api/ip/add/", "bob", bobPW, url.Values{"ip": {"192.0.2.10"}}); r.status != 200 {
		t.Fatalf("ip/add for bob: %d %s", r.status, r.body)
	}
	r := e.post("/api/ip/add/", "bob", bobPW, url.Values{"ip": {"192.0.2.10"}, "username": {"bob-sub"}})
	if r.status != 200 || r.json["ip"] != "192.0.2.10" {
		t.Fatalf("ip/add for bob-sub: %d %s", r.status, r.body)
	}
	if r := e.do(request{method: "GET", path: "/api/ips/?username=bob-sub", login: "bob", pw: bobPW}); r.body != "{\"ips\":[\"192.0.2.10\"]}\n" {
		t.Errorf("ips of bob-sub: %d %s", r.status, r.body)
	}
	r = e.do(request{method: "POST", path: "/api/ip/add/", login: "bob", pw: bobPW, json: map[string]any{"ip": "192.0.2.11", "username": "bob-sub"}})
	if r.status != 400 || !strings.Contains(r.errorText(), "authorize it for the account first") {
		t.Errorf("ip/add to bob-sub of an IP bob lacks: %d %s, want 400", r.status, r.body)
	}
	for _, c := range []struct {
		login, pw, username string
		status              int
	}{
		{"bob", bobPW, "nobody", 404}, {"alice", alicePW, "bob-sub", 403}, {"alice", alicePW, "bob", 403},
	} {
		r := e.post("/api/ip/delete/", c.login, c.pw, url.Values{"ip": {"192.0.2.10"}, "username": {c.username}})
		if r.status != c.status {
			t.Errorf("%s: ip/delete username=%s: %d %s, want %d", c.login, c.username, r.status, r.body, c.status)
		}
	}
	if r := e.post("/api/ip/delete/", "bob", bobPW, url.Values{"ip": {"192.0.2.10"}, "username": {"bob-sub"}}); r.status != 204 {
		t.Errorf("ip/delete for bob-sub: %d %s", r.status, r.body)
	}
	if r := e.get("/api/ips/", "bob", bobPW); !strings.Contains(r.body, "192.0.2.10") {
		t.Errorf("bob lost the IP his sub-account gave up: %s", r.body)
	}
}
