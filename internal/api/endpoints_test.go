package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

func jsonOf(s string) any {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		panic(err)
	}
	return v
}

// check compares a reply with the wanted status and JSON body (nil: no body).
func check(t *testing.T, what string, r reply, status int, body string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d; body %s", what, r.status, status, r.body)
	}
	if body == "" {
		if r.body != "" {
			t.Errorf("%s: body %q, want none", what, r.body)
		}
		return
	}
	if got, want := jsonOf(r.body), jsonOf(body); !reflect.DeepEqual(got, want) {
		t.Errorf("%s: body %s, want %s", what, strings.TrimSpace(r.body), body)
	}
}

func TestIPEndpoints(t *testing.T) {
	e := newEnv(t)
	check(t, "ip", e.get("/api/ip/", "alice", alicePW), 200, `{"ip":"127.0.0.1"}`)
	check(t, "ips empty", e.get("/api/ips/", "alice", alicePW), 200, `{"ips":[]}`)
	check(t, "add caller's", e.post("/api/ip/add/", "alice", alicePW, nil), 200, `{"ip":"127.0.0.1"}`)
	check(t, "add JSON", e.do(request{method: "POST", path: "/api/ip/add/", login: "alice", pw: alicePW, json: map[string]any{"ip": "127.0.0.40"}}), 200, `{"ip":"127.0.0.40"}`)
	check(t, "ips", e.get("/api/ips/", "alice", alicePW), 200, `{"ips":["127.0.0.1","127.0.0.40"]}`)

	before := e.version()
	r := e.post("/api/ip/add/", "alice", alicePW, url.Values{"ip": {"127.0.0.40"}})
	check(t, "row 13 again", r, 400, `{"error":"IP address is already authorized."}`)
	r = e.post("/api/ip/add/", "alice", alicePW, url.Values{"ip": {"127.0.0.41"}})
	if r.status != 402 || !strings.Contains(r.errorText(), "upgrade") {
		t.Errorf("row 16 third IP on a plan of 2: %d %q", r.status, r.errorText())
	}
	if e.version() != before {
		t.Error("failed adds changed the store")
	}

	// The proxy follows at once: 127.0.0.40 is authorized now, and stops being so on delete.
	if got := e.proxyStatus("us-ca", "", "", "127.0.0.40"); got != 200 {
		t.Errorf("proxy from the IP just added: %d, want 200", got)
	}
	check(t, "delete", e.post("/api/ip/delete/", "alice", alicePW, url.Values{"ip": {"127.0.0.40"}}), 204, "")
	if got := e.proxyStatus("us-ca", "", "", "127.0.0.40"); got != 407 {
		t.Errorf("proxy from the IP just deleted: %d, want 407", got)
	}
	check(t, "ips after delete", e.get("/api/ips/", "alice", alicePW), 200, `{"ips":["127.0.0.1"]}`)
}

func TestHostnameEndpoints(t *testing.T) {
	e := newEnv(t)
	e.dns.Set("home.alice.example", mustIP("127.0.0.50"))
	e.dns.Set("office.alice.example", mustIP("127.0.0.51"))
	check(t, "add", e.post("/api/hostname/add/", "alice", alicePW, url.Values{"hostname": {"Home.Alice.Example"}}), 200,
		`{"hostname":"home.alice.example","ip":"127.0.0.50"}`)
	check(t, "list", e.get("/api/hostnames/", "alice", alicePW), 200, `{"hostnames":[{"hostname":"home.alice.example","ip":"127.0.0.50"}]}`)
	if got := e.proxyStatus("us-ca", "", "", "127.0.0.50"); got != 200 {
		t.Errorf("proxy from the hostname's address: %d, want 200", got)
	}
	// Re-resolution (every 200ms in this node): the hostname moves, the proxy follows.
	e.dns.Set("home.alice.example", mustIP("127.0.0.52"))
	eventually(t, "re-resolved address accepted", func() bool { return e.proxyStatus("us-ca", "", "", "127.0.0.52") == 200 })
	if got := e.proxyStatus("us-ca", "", "", "127.0.0.50"); got != 407 {
		t.Errorf("proxy from the hostname's old address: %d, want 407", got)
	}
	check(t, "list after the move", e.get("/api/hostnames/", "alice", alicePW), 200, `{"hostnames":[{"hostname":"home.alice.example","ip":"127.0.0.52"}]}`)

	before := e.version()
	check(t, "row 13", e.post("/api/hostname/add/", "alice", alicePW, url.Values{"hostname": {"home.alice.example"}}), 400,
		`{"error":"Hostname is already authorized."}`)
	r := e.post("/api/hostname/add/", "alice", alicePW, url.Values{"hostname": {"office.alice.example"}})
	if r.status != 402 || !strings.Contains(r.errorText(), "upgrade") {
		t.Errorf("row 16 second hostname on a plan of 1: %d %q", r.status, r.errorText())
	}
	if e.version() != before {
		t.Error("failed adds changed the store")
	}
	check(t, "delete", e.post("/api/hostname/delete/", "alice", alicePW, url.Values{"hostname": {"home.alice.example"}}), 204, "")
	check(t, "list empty", e.get("/api/hostnames/", "alice", alicePW), 200, `{"hostnames":[]}`)
	if got := e.proxyStatus("us-ca", "", "", "127.0.0.50"); got != 407 {
		t.Errorf("proxy after the hostname was deleted: %d, want 407", got)
	}
}

func TestProxyEndpoints(t *testing.T) {
	e := newEnv(t)
	check(t, "proxies", e.get("/api/proxies/", "alice", alicePW), 200, `{"proxies":["us-ca.example.net:31280"]}`)
	check(t, "available", e.get("/api/proxies/available/", "alice", alicePW), 200, `{"proxies":[
		{"name":"eu","address":"eu.example.net:31282","country":"DE","countries":["DE"],"regions":[],"cities":[],"asns":[]},
		{"name":"us-ca","address":"us-ca.example.net:31280","country":"US","countries":["US"],"regions":["US-CA"],"cities":["los_angeles","san_jose"],"asns":[64500,64501]},
		{"name":"world","address":"world.example.net:31281","country":"","countries":["DE"],"regions":[],"cities":[],"asns":[]}]}`)
	if got := e.proxyStatus("world", "alice", alicePW, ""); got != 403 {
		t.Errorf("world before it is added: %d, want 403", got)
	}
	check(t, "add by name", e.post("/api/proxy/add/", "alice", alicePW, url.Values{"proxy": {"world"}}), 200, `{"proxy":"world.example.net:31281"}`)
	if got := e.proxyStatus("world", "alice", alicePW, ""); got != 200 {
		t.Errorf("world right after it was added: %d, want 200", got)
	}
	before := e.version()
	r := e.post("/api/proxy/add/", "alice", alicePW, url.Values{"proxy": {"eu.example.net:31282"}})
	if r.status != 402 || !strings.Contains(r.errorText(), "upgrade") {
		t.Errorf("row 16 third proxy on a plan of 2: %d %q", r.status, r.errorText())
	}
	if e.version() != before {
		t.Error("a refused add changed the store")
	}
	check(t, "delete by address", e.post("/api/proxy/delete/", "alice", alicePW, url.Values{"proxy": {"world.example.net:31281"}}), 204, "")
	if got := e.proxyStatus("world", "alice", alicePW, ""); got != 403 {
		t.Errorf("world right after it was deleted: %d, want 403", got)
	}
	check(t, "proxies after", e.get("/api/proxies/", "alice", alicePW), 200, `{"proxies":["us-ca.example.net:31280"]}`)
}

func TestSubAccountEndpoints(t *testing.T) {
	e := newEnv(t)
	e.post("/api/ip/add/", "bob", bobPW, url.Values{"ip": {"127.0.0.60"}})
	e.post("/api/ip/add/", "bob", bobPW, url.Values{"ip": {"127.0.0.61"}})

	check(t, "create (form, comma list)", e.post("/api/sub/create/", "bob", bobPW, url.Values{
		"username": {"bob-eu"}, "password": {subPW}, "proxies": {"world,us-ca.example.net:31280"}, "ips": {"127.0.0.60"}}), 200,
		`{"username":"bob-eu","proxies":["us-ca.example.net:31280","world.example.net:31281"],"ips":["127.0.0.60"],"active":true,"email":"","first_name":"","last_name":"","monthly_bandwidth_limit":0,"total_bandwidth_limit":0}`)
	check(t, "create (JSON arrays)", e.do(request{method: "POST", path: "/api/sub/create/", login: "bob", pw: bobPW,
		json: map[string]any{"username": "bob-json", "password": subPW, "proxies": []string{"world"}}}), 200,
		`{"username":"bob-json","proxies":["world.example.net:31281"],"ips":[],"active":true,"email":"","first_name":"","last_name":"","monthly_bandwidth_limit":0,"total_bandwidth_limit":0}`)

	var mp bytes.Buffer
	w := multipart.NewWriter(&mp)
	w.WriteField("username", "bob-multi")
	w.WriteField("password", subPW)
	w.WriteField("proxies", "us-ca")
	w.WriteField("proxies", "world")
	w.Close()
	check(t, "create (multipart, repeated)", e.do(request{method: "POST", path: "/api/sub/create/", login: "bob", pw: bobPW,
		rawBody: mp.String(), contentType: w.FormDataContentType()}), 200,
		`{"username":"bob-multi","proxies":["us-ca.example.net:31280","world.example.net:31281"],"ips":[],"active":true,"email":"","first_name":"","last_name":"","monthly_bandwidth_limit":0,"total_bandwidth_limit":0}`)

	r := e.get("/api/subs/", "bob", bobPW)
	if r.status != 200 || len(r.json["subs"].([]any)) != 4 || strings.Contains(r.body, "password") || strings.Contains(r.body, subPW) {
		t.Errorf("subs: %d %s", r.status, r.body)
	}

	// The sub-account works on the proxy at once, only for its subset; edits apply at once.
	if got := e.proxyStatus("world", "bob-eu", subPW, ""); got != 200 {
		t.Errorf("new sub-account on world: %d", got)
	}
	if got := e.proxyStatus("eu", "bob-eu", subPW, ""); got != 403 {
		t.Errorf("sub-account on a proxy outside its subset: %d, want 403", got)
	}
	check(t, "edit", e.post("/api/sub/edit/", "bob", bobPW, url.Values{"username": {"bob-eu"}, "proxies": {"us-ca"},
		"ips": {"127.0.0.61"}, "active": {"false"}, "password": {"new-sub-password"}}), 200,
		`{"username":"bob-eu","proxies":["us-ca.example.net:31280"],"ips":["127.0.0.61"],"active":false,"email":"","first_name":"","last_name":"","monthly_bandwidth_limit":0,"total_bandwidth_limit":0}`)
	if got := e.proxyStatus("us-ca", "bob-eu", "new-sub-password", ""); got != 403 {
		t.Errorf("deactivated sub-account: %d, want 403", got)
	}
	e.post("/api/sub/edit/", "bob", bobPW, url.Values{"username": {"bob-eu"}, "active": {"true"}})
	if got := e.proxyStatus("us-ca", "bob-eu", subPW, ""); got != 407 {
		t.Errorf("old sub-account password after a change: %d, want 407", got)
	}
	if got := e.proxyStatus("us-ca", "bob-eu", "new-sub-password", ""); got != 200 {
		t.Errorf("new sub-account password: %d, want 200", got)
	}
	check(t, "delete", e.post("/api/sub/delete/", "bob", bobPW, url.Values{"username": {"bob-eu"}}), 204, "")
	if got := e.proxyStatus("us-ca", "bob-eu", "new-sub-password", ""); got != 407 {
		t.Errorf("deleted sub-account: %d, want 407", got)
	}

	// Row 16 for sub-accounts: alice's plan allows one.
	check(t, "alice's first sub", e.post("/api/sub/create/", "alice", alicePW, url.Values{"username": {"alice-1"}, "password": {subPW}}), 200,
		`{"username":"alice-1","proxies":[],"ips":[],"active":true,"email":"","first_name":"","last_name":"","monthly_bandwidth_limit":0,"total_bandwidth_limit":0}`)
	before := e.version()
	r = e.post("/api/sub/create/", "alice", alicePW, url.Values{"username": {"alice-2"}, "password": {subPW}})
	if r.status != 402 || !strings.Contains(r.errorText(), "upgrade") {
		t.Errorf("second sub on a plan of 1: %d %q", r.status, r.errorText())
	}
	if e.version() != before {
		t.Error("a refused create changed the store")
	}
}

func TestUsageEndpoint(t *testing.T) {
	e := newEnv(t)
	for range 3 {
		if got := e.proxyStatus("us-ca", "bob", bobPW, ""); got != 200 {
			t.Fatalf("proxy: %d", got)
		}
	}
	if got := e.proxyStatus("us-ca", "bob-sub", subPW, ""); got != 200 {
		t.Fatalf("proxy as sub-account: %d", got)
	}
	var usage []any
	eventually(t, "usage flushed", func() bool {
		r := e.get("/api/usage/", "bob", bobPW)
		usage, _ = r.json["usage"].([]any)
		return r.status == 200 && len(usage) == 2
	})
	today := time.Now().UTC().Format(time.DateOnly)
	want := jsonOf(fmt.Sprintf(`[
		{"day":%[1]q,"proxy":"us-ca","sub_account":"","bytes_in":0,"bytes_out":30,"requests":3,"tunnels":0},
		{"day":%[1]q,"proxy":"us-ca","sub_account":"bob-sub","bytes_in":0,"bytes_out":10,"requests":1,"tunnels":0}]`, today))
	if !reflect.DeepEqual(any(usage), want) {
		t.Errorf("usage %v, want %v (each answer of the origin's /ip is 10 bytes)", usage, want)
	}
	month := time.Now().UTC().Format("2006-01")
	check(t, "usage before any traffic", e.get("/api/usage/?from=2000-01-01&to=2000-01-31", "bob", bobPW), 200,
		`{"usage":[],"bandwidth":{"month":"`+month+`","used":40,"limit":0}}`)
	check(t, "a plan's bandwidth", e.get("/api/usage/", "alice", alicePW), 200,
		`{"usage":[],"bandwidth":{"month":"`+month+`","used":0,"limit":1000000000}}`)
	r := e.get("/api/usage/?from=yesterday", "bob", bobPW)
	if r.status != 400 || r.json["fields"] == nil {
		t.Errorf("bad date: %d %s", r.status, r.body)
	}
}

func TestPasswordsNeverInClear(t *testing.T) {
	e := newEnv(t)
	e.post("/api/sub/create/", "bob", bobPW, url.Values{"username": {"bob-x"}, "password": {"visible-secret-9"}})
	e.get("/api/ips/", "alice", "wrong-guess-7")
	for _, secret := range []string{"visible-secret-9", alicePW, bobPW, "wrong-guess-7"} {
		if strings.Contains(e.log.String(), secret) {
			t.Errorf("the log contains the password %q", secret)
		}
	}
	login, err := e.store.GetLogin(context.Background(), "bob-x")
	if err != nil || !strings.HasPrefix(login.PasswordHash, "$argon2id$") || strings.Contains(login.PasswordHash, "visible-secret-9") {
		t.Errorf("stored password: %q, %v", login.PasswordHash, err)
	}
}

func TestOpenAPIDocumentMatchesRoutes(t *testing.T) {
	e := newEnv(t)
	resp, err := e.client("").Get("https://" + e.node.APIAddr() + "/api/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("document: %v, openapi %q", err, doc.OpenAPI)
	}
	documented := map[string]string{}
	for path, ops := range doc.Paths {
		for method := range ops {
			documented[path] = strings.ToUpper(method)
		}
		if len(ops) != 1 {
			t.Errorf("%s documents %d methods, want 1", path, len(ops))
		}
	}
	served := servedRoutes(t, e, documented)
	if !reflect.DeepEqual(documented, served) {
		t.Errorf("documented %v\nserved     %v", documented, served)
	}
}

// servedRoutes discovers the endpoints the server really has, by asking it: each documented path,
// and a list of likely ones, probed with GET as alice. 404 means no endpoint; 405 means a POST one.
func servedRoutes(t *testing.T, e *env, documented map[string]string) map[string]string {
	candidates := map[string]bool{}
	for p := range documented {
		candidates[p] = true
	}
	for _, p := range []string{"/api/ip/", "/api/ips/", "/api/ip/add/", "/api/ip/delete/", "/api/hostnames/", "/api/hostname/add/",
		"/api/hostname/delete/", "/api/proxies/", "/api/proxies/available/", "/api/proxy/add/", "/api/proxy/delete/", "/api/subs/",
		"/api/sub/create/", "/api/sub/edit/", "/api/sub/delete/", "/api/usage/", "/api/sub/", "/api/account/", "/api/account/edit/",
		"/api/password/", "/api/tokens/", "/api/token/create/", "/api/webhook/", "/api/webhook/set/"} {
		candidates[p] = true
	}
	served := map[string]string{}
	for p := range candidates {
		switch r := e.get(p, "bob", bobPW); r.status {
		case 404:
		case 405:
			served[p] = r.header.Get("Allow")
		default:
			served[p] = http.MethodGet
		}
	}
	return served
}

func TestIdempotencyKeyReplaysTheFirstAnswer(t *testing.T) {
	e := newEnv(t)
	add := func(key string) reply {
		h := http.Header{}
		if key != "" {
			h.Set("Idempotency-Key", key)
		}
		return e.do(request{method: "POST", path: "/api/ip/add/", login: "alice", pw: alicePW, form: url.Values{"ip": {"192.0.2.44"}}, header: h})
	}
	first := add("k-1")
	check(t, "first", first, 200, `{"ip":"192.0.2.44"}`)
	v := e.version()
	again := add("k-1") // the client lost the first answer and retries
	check(t, "retry with the same key", again, 200, `{"ip":"192.0.2.44"}`)
	if again.header.Get("Idempotent-Replayed") != "true" || e.version() != v {
		t.Errorf("the retry was applied again: replayed %q, version %d → %d", again.header.Get("Idempotent-Replayed"), v, e.version())
	}
	check(t, "a new key is a new request", add("k-2"), 400, `{"error":"IP address is already authorized."}`)
	other := e.do(request{method: "POST", path: "/api/ip/add/", login: "alice", pw: alicePW, form: url.Values{"ip": {"192.0.2.99"}},
		header: http.Header{"Idempotency-Key": {"k-1"}}})
	if other.status != 422 || !strings.Contains(other.errorText(), "another request") {
		t.Errorf("k-1 with another IP: %d %s, want 422", other.status, other.body)
	}
	other = e.do(request{method: "POST", path: "/api/ip/delete/", login: "alice", pw: alicePW, form: url.Values{"ip": {"192.0.2.44"}},
		header: http.Header{"Idempotency-Key": {"k-1"}}})
	if other.status != 422 {
		t.Errorf("k-1 on another endpoint: %d %s, want 422", other.status, other.body)
	}
	check(t, "no key", add(""), 400, `{"error":"IP address is already authorized."}`)
	// Keys are per account: bob's k-1 is not alice's.
	r := e.do(request{method: "POST", path: "/api/ip/add/", login: "bob", pw: bobPW, form: url.Values{"ip": {"192.0.2.45"}},
		header: http.Header{"Idempotency-Key": {"k-1"}}})
	check(t, "another account's key", r, 200, `{"ip":"192.0.2.45"}`)
}

func TestWebhookEndpoints(t *testing.T) {
	e := newEnv(t)
	events := `["bandwidth.80","bandwidth.100","token.expiring"]`
	check(t, "none yet", e.get("/api/webhook/", "alice", alicePW), 200, `{"url":"","events":`+events+`}`)
	before := e.version()
	for _, c := range []struct {
		name string
		form url.Values
		says string
	}{
		{"no url", url.Values{}, "required"},
		{"loopback not allowed", url.Values{"url": {"http://127.0.0.77:8080/hook"}}, "loopback address"},
		{"an exit of this network", url.Values{"url": {"http://127.0.0.5:8080/hook"}}, "own address"},
		{"private", url.Values{"url": {"https://10.0.0.1/hook"}}, "private address"},
		{"not http", url.Values{"url": {"gopher://127.0.0.1/"}}, "http:// or https://"},
	} {
		r := e.post("/api/webhook/set/", "alice", alicePW, c.form)
		fields, _ := r.json["fields"].(map[string]any)
		if msgs, _ := fields["url"].([]any); r.status != 400 || len(msgs) != 1 || !strings.Contains(fmt.Sprint(msgs[0]), c.says) {
			t.Errorf("%s: %d %s, want 400 with a url field error saying %q", c.name, r.status, r.body, c.says)
		}
	}
	if e.version() != before {
		t.Error("refused sets changed the store version")
	}
	r := e.post("/api/webhook/set/", "alice", alicePW, url.Values{"url": {"http://127.0.0.1:9/hook"}})
	secret, _ := r.json["secret"].(string)
	if r.status != 200 || r.json["url"] != "http://127.0.0.1:9/hook" || !strings.HasPrefix(secret, "whsec_") || len(secret) != len("whsec_")+48 {
		t.Fatalf("set: %d %s", r.status, r.body)
	}
	check(t, "shown", e.get("/api/webhook/", "alice", alicePW), 200, fmt.Sprintf(`{"url":"http://127.0.0.1:9/hook","secret":%q,"events":%s}`, secret, events))
	check(t, "another URL keeps the secret", e.post("/api/webhook/set/", "alice", alicePW, url.Values{"url": {"https://127.0.0.1:8443/other"}}), 200,
		fmt.Sprintf(`{"url":"https://127.0.0.1:8443/other","secret":%q,"events":%s}`, secret, events))
	check(t, "bob has none", e.get("/api/webhook/", "bob", bobPW), 200, `{"url":"","events":`+events+`}`)
	check(t, "removed", e.post("/api/webhook/set/", "alice", alicePW, url.Values{"url": {""}}), 200, `{"url":"","events":`+events+`}`)
	check(t, "gone", e.get("/api/webhook/", "alice", alicePW), 200, `{"url":"","events":`+events+`}`)
}
