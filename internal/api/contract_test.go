package api_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestStatusCodes walks API.md §4 row by row. Every failing request must leave the store as it was.
func TestStatusCodes(t *testing.T) {
	e := newEnv(t)
	type want struct {
		status int
		error  string            // a fragment of the JSON "error"; "" for no body
		header map[string]string // exact values; "*" for present
		fields []string          // form error fields
	}
	tests := []struct {
		row  string
		req  request
		want want
	}{
		{"3 unknown path", request{method: "GET", path: "/api/nope/", login: "alice", pw: alicePW},
			want{404, "Not found.", nil, nil}},
		{"4 method not GET or POST", request{method: "PUT", path: "/api/ips/", login: "alice", pw: alicePW},
			want{405, "", map[string]string{"Allow": "GET"}, nil}},
		{"4 method on a change endpoint", request{method: "DELETE", path: "/api/ip/add/", login: "alice", pw: alicePW},
			want{405, "", map[string]string{"Allow": "POST"}, nil}},
		{"5 no credentials", request{method: "GET", path: "/api/ips/"},
			want{401, "Authentication required", map[string]string{"WWW-Authenticate": `Basic realm="exitmesh"`}, nil}},
		{"5 wrong password", request{method: "GET", path: "/api/ips/", login: "alice", pw: "wrong"},
			want{401, "Authentication required", map[string]string{"WWW-Authenticate": `Basic realm="exitmesh"`}, nil}},
		{"5 unknown user", request{method: "GET", path: "/api/ips/", login: "mallory", pw: alicePW},
			want{401, "Authentication required", nil, nil}},
		{"6 sub-account credentials", request{method: "GET", path: "/api/ips/", login: "bob-sub", pw: subPW},
			want{403, "Sub-accounts cannot use the API", nil, nil}},
		{"7 POST to a list", request{method: "POST", path: "/api/ips/", login: "alice", pw: alicePW},
			want{403, "use GET", nil, nil}},
		{"7b GET to a change", request{method: "GET", path: "/api/ip/add/", login: "alice", pw: alicePW},
			want{405, "", map[string]string{"Allow": "POST"}, nil}},
		{"10 sub/edit of nobody", request{method: "POST", path: "/api/sub/edit/", login: "bob", pw: bobPW, form: url.Values{"username": {"ghost"}, "active": {"false"}}},
			want{404, "Sub-account not found.", nil, nil}},
		{"10 sub/delete of nobody", request{method: "POST", path: "/api/sub/delete/", login: "bob", pw: bobPW, form: url.Values{"username": {"ghost"}}},
			want{404, "Sub-account not found.", nil, nil}},
		{"11 another account's sub", request{method: "POST", path: "/api/sub/delete/", login: "alice", pw: alicePW, form: url.Values{"username": {"bob-sub"}}},
			want{403, "not one of your sub-accounts", nil, nil}},
		{"11 the account itself", request{method: "POST", path: "/api/sub/edit/", login: "bob", pw: bobPW, form: url.Values{"username": {"bob"}, "active": {"false"}}},
			want{403, "is your account", nil, nil}},
		{"11 another account", request{method: "POST", path: "/api/sub/edit/", login: "bob", pw: bobPW, form: url.Values{"username": {"alice"}}},
			want{403, "not one of your sub-accounts", nil, nil}},
		{"12 sub/create without username and password", request{method: "POST", path: "/api/sub/create/", login: "bob", pw: bobPW, form: url.Values{}},
			want{400, "Invalid form data", nil, []string{"username", "password"}}},
		{"12 sub/create bad username, short password", request{method: "POST", path: "/api/sub/create/", login: "bob", pw: bobPW, form: url.Values{"username": {"-x"}, "password": {"short"}}},
			want{400, "Invalid form data", nil, []string{"username", "password"}}},
		{"12 sub/create unknown proxy", request{method: "POST", path: "/api/sub/create/", login: "bob", pw: bobPW, form: url.Values{"username": {"bob-two"}, "password": {subPW}, "proxies": {"mars"}}},
			want{400, "Invalid form data", nil, []string{"proxies"}}},
		{"12 sub/create proxy not on the account", request{method: "POST", path: "/api/sub/create/", login: "bob", pw: bobPW, form: url.Values{"username": {"bob-two"}, "password": {subPW}, "proxies": {"eu"}}},
			want{400, "Invalid form data", nil, []string{"proxies"}}},
		{"12 sub/create malformed IP", request{method: "POST", path: "/api/sub/create/", login: "bob", pw: bobPW, form: url.Values{"username": {"bob-two"}, "password": {subPW}, "ips": {"1.2.3"}}},
			want{400, "Invalid form data", nil, []string{"ips"}}},
		{"12 sub/create taken username", request{method: "POST", path: "/api/sub/create/", login: "bob", pw: bobPW, form: url.Values{"username": {"alice"}, "password": {subPW}}},
			want{400, "Invalid form data", nil, []string{"username"}}},
		{"12 sub/edit bad active", request{method: "POST", path: "/api/sub/edit/", login: "bob", pw: bobPW, form: url.Values{"username": {"bob-sub"}, "active": {"maybe"}}},
			want{400, "Invalid form data", nil, []string{"active"}}},
		{"12 ip/add malformed", request{method: "POST", path: "/api/ip/add/", login: "alice", pw: alicePW, form: url.Values{"ip": {"300.1.1.1"}}},
			want{400, "Invalid form data", nil, []string{"ip"}}},
		{"14 ip/delete of one not authorized", request{method: "POST", path: "/api/ip/delete/", login: "alice", pw: alicePW, form: url.Values{"ip": {"192.0.2.9"}}},
			want{400, "not authorized", nil, nil}},
		{"14 hostname/delete of one not authorized", request{method: "POST", path: "/api/hostname/delete/", login: "alice", pw: alicePW, form: url.Values{"hostname": {"nope.example.org"}}},
			want{400, "not authorized", nil, nil}},
		{"15 proxy/add unknown", request{method: "POST", path: "/api/proxy/add/", login: "alice", pw: alicePW, form: url.Values{"proxy": {"mars"}}},
			want{400, `"mars" is not recognized`, nil, nil}},
		{"15 proxy/delete not on the account", request{method: "POST", path: "/api/proxy/delete/", login: "alice", pw: alicePW, form: url.Values{"proxy": {"eu"}}},
			want{400, "not on your account", nil, nil}},
		{"hostname that does not resolve", request{method: "POST", path: "/api/hostname/add/", login: "alice", pw: alicePW, form: url.Values{"hostname": {"nowhere.example.org"}}},
			want{400, "Invalid form data", nil, []string{"hostname"}}},
		{"hostname that is not a hostname", request{method: "POST", path: "/api/hostname/add/", login: "alice", pw: alicePW, form: url.Values{"hostname": {"bad_name!"}}},
			want{400, "Invalid form data", nil, []string{"hostname"}}},
		{"bad JSON body", request{method: "POST", path: "/api/ip/add/", login: "alice", pw: alicePW, rawBody: "{", contentType: "application/json"},
			want{400, "not a JSON object", nil, nil}},
	}
	for _, tt := range tests {
		t.Run(tt.row, func(t *testing.T) {
			before := e.version()
			r := e.do(tt.req)
			if r.status != tt.want.status {
				t.Fatalf("status %d, want %d; body %s", r.status, tt.want.status, r.body)
			}
			if tt.want.error == "" && r.body != "" {
				t.Errorf("body %q, want none", r.body)
			}
			if !strings.Contains(r.errorText(), tt.want.error) {
				t.Errorf("error %q, want it to contain %q", r.errorText(), tt.want.error)
			}
			for k, v := range tt.want.header {
				if got := r.header.Get(k); (v == "*" && got == "") || (v != "*" && got != v) {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			fields, _ := r.json["fields"].(map[string]any)
			for _, f := range tt.want.fields {
				if msgs, _ := fields[f].([]any); len(msgs) == 0 {
					t.Errorf("fields[%s] missing in %s", f, r.body)
				}
			}
			if len(fields) != len(tt.want.fields) {
				t.Errorf("fields %v, want exactly %v", fields, tt.want.fields)
			}
			if after := e.version(); after != before {
				t.Errorf("the store changed (version %d → %d) on a failed request", before, after)
			}
			for _, secret := range []string{"SELECT", "sqlite", "/tmp/", "goroutine"} {
				if strings.Contains(r.body, secret) {
					t.Errorf("body reveals %q: %s", secret, r.body)
				}
			}
		})
	}
}

func TestRow1PlainHTTPRedirects(t *testing.T) {
	e := newEnv(t)
	req, _ := http.NewRequest(http.MethodGet, "http://"+e.node.APIHTTPAddr()+"/api/ips/?a=1&b=2", nil)
	req.SetBasicAuth("alice", alicePW)
	resp, err := e.client("").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, port, _ := strings.Cut(e.node.APIAddr(), ":")
	want := "https://127.0.0.1:" + port + "/api/ips/?a=1&b=2"
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != want {
		t.Errorf("plain HTTP: %d Location %q, want 302 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
}

func TestRow2BansFrom401And404AlsoBlockTheProxy(t *testing.T) {
	e := newEnv(t)
	const attacker, scanner, bystander = "127.0.0.21", "127.0.0.22", "127.0.0.23"
	for i := range 11 { // more than auth_failures (10)
		if r := e.do(request{method: "GET", path: "/api/ips/", login: "alice", pw: "guess", source: attacker}); r.status != 401 {
			t.Fatalf("attempt %d: %d, want 401", i+1, r.status)
		}
	}
	r := e.do(request{method: "GET", path: "/api/ips/", login: "alice", pw: alicePW, source: attacker})
	if r.status != 403 || r.header.Get("Retry-After") == "" || !strings.Contains(r.errorText(), "temporarily banned") {
		t.Fatalf("banned IP with good credentials: %d %v %q, want 403 with Retry-After", r.status, r.header, r.errorText())
	}
	if got := e.proxyStatus("us-ca", "alice", alicePW, attacker); got != 403 {
		t.Errorf("the API ban does not block the proxy: status %d", got)
	}
	if r := e.do(request{method: "GET", path: "/api/ips/", login: "alice", pw: alicePW, source: bystander}); r.status != 200 {
		t.Errorf("another IP is affected: %d", r.status)
	}
	for range 21 { // more than not_found (20)
		e.do(request{method: "GET", path: "/api/scan/", login: "alice", pw: alicePW, source: scanner})
	}
	if r := e.do(request{method: "GET", path: "/api/ips/", login: "alice", pw: alicePW, source: scanner}); r.status != 403 {
		t.Errorf("after 21 unknown paths: %d, want 403", r.status)
	}
	// Successful requests never count.
	for range 30 {
		e.do(request{method: "GET", path: "/api/ips/", login: "alice", pw: alicePW, source: bystander})
	}
	if r := e.do(request{method: "GET", path: "/api/ips/", login: "alice", pw: alicePW, source: bystander}); r.status != 200 {
		t.Errorf("successful requests banned the IP: %d", r.status)
	}
	// The ban expires (bans.duration is 2s in this node's config).
	eventually(t, "ban expiry", func() bool {
		return e.do(request{method: "GET", path: "/api/ips/", login: "alice", pw: alicePW, source: attacker}).status == 200
	})
	if got := e.proxyStatus("us-ca", "alice", alicePW, attacker); got != 200 {
		t.Errorf("proxy after the ban expired: %d", got)
	}
}

func TestRow8UnconfirmedAllowance(t *testing.T) {
	e := newEnv(t)
	for i := range 3 { // api.unconfirmed_allowance: 3
		if r := e.get("/api/ips/", "carol", "carol-password"); r.status != 200 {
			t.Fatalf("request %d of an unconfirmed account: %d", i+1, r.status)
		}
	}
	r := e.get("/api/ips/", "carol", "carol-password")
	if r.status != 402 || !strings.Contains(r.errorText(), "confirm your email") {
		t.Fatalf("over the allowance: %d %q, want 402 asking to confirm", r.status, r.errorText())
	}
	if ra := r.header.Get("Retry-After"); ra != "18000" { // the default block, 5 h
		t.Errorf("Retry-After %q, want 18000", ra)
	}
	if r := e.get("/api/ips/", "bob", bobPW); r.status != 200 {
		t.Errorf("a confirmed account is affected: %d", r.status)
	}
}

func TestTrailingSlashOptional(t *testing.T) {
	e := newEnv(t)
	r := e.get("/api/proxies", "alice", alicePW)
	if r.status != 200 || r.json["proxies"] == nil {
		t.Errorf("/api/proxies without slash: %d %s", r.status, r.body)
	}
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for !ok() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not reached", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
