package node_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/node"
	"github.com/exitmesh/exitmesh/internal/origin"
	"github.com/exitmesh/exitmesh/internal/store"
	"github.com/exitmesh/exitmesh/internal/upstreamtest"
	"github.com/exitmesh/exitmesh/internal/webhooks"
)

// webhookConfig: a plan of 1 MB a period, usage flushed every 100 ms, and the operator's webhook
// (%[2]s) for bandwidth and account events. Loopback is allowed by the egress policy, for the
// origin and for customers' webhook receivers alike.
const webhookConfig = `
store: sqlite:%[1]s
api: {listen: "127.0.0.1:0"}
metrics: {listen: "off"}
sync: {interval: 100ms}
usage: {flush_interval: 100ms}
proxies:
  - name: us-ca
    listen: "127.0.0.1:0"
    exits: [{ip: 127.0.0.2}]
egress: {allow: [127.0.0.1/32]}
plans:
  - {name: metered, proxies: 3, subs: 5, ips: 10, hostnames: 5, bandwidth: 1MB}
webhooks:
  - {url: "%[2]s", secret: "operator-secret-0123456789", events: [bandwidth.80, bandwidth.100, account.created]}
`

// receiver is a webhook receiver on loopback that can be taken down and brought back on the same
// address. It keeps every delivery whose signature verifies under the secret of its path.
type receiver struct {
	t       *testing.T
	addr    string
	secrets map[string]string // path → secret

	mu       sync.Mutex
	srv      *http.Server
	got      []delivered
	badSigns int
}

type delivered struct {
	path, id, typ, login string
	percent              int
	proxy, ip, node      string
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, secrets: map[string]string{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(r.down)
	return r
}

func (r *receiver) url(path string) string { return "http://" + r.addr + path }

func (r *receiver) serve(ln net.Listener) {
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := webhooks.Verify(r.secrets[req.URL.Path], req.Header.Get(webhooks.SignatureHeader), body, time.Now(), 5*time.Minute); err != nil {
			r.badSigns++
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var e struct {
			ID, Type string
			Data     struct {
				Login, Proxy, IP, Node string
				Percent                int
			}
		}
		if err := json.Unmarshal(body, &e); err != nil || req.Header.Get("X-Exitmesh-Event-Id") != e.ID {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		r.got = append(r.got, delivered{req.URL.Path, e.ID, e.Type, e.Data.Login, e.Data.Percent, e.Data.Proxy, e.Data.IP, e.Data.Node})
	})}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go srv.Serve(ln)
}

// down closes the receiver: connections to it are refused.
func (r *receiver) down() {
	r.mu.Lock()
	srv := r.srv
	r.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// up serves again on the same address.
func (r *receiver) up() {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatalf("receiver back on %s: %v", r.addr, err)
	}
	r.serve(ln)
}

// bad is how many deliveries had a bad signature.
func (r *receiver) bad() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.badSigns
}

func (r *receiver) deliveries() []delivered {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivered(nil), r.got...)
}

// find returns the deliveries of typ to path.
func (r *receiver) find(path, typ string) []delivered {
	var out []delivered
	for _, d := range r.deliveries() {
		if d.path == path && d.typ == typ {
			out = append(out, d)
		}
	}
	return out
}

// startNode starts a node on the config file at path.
func startNode(t *testing.T, path string) *node.Node {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func stopNode(t *testing.T, n *node.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Errorf("node close: %v", err)
	}
}

// apiPost posts a form to the node's account API as login and decodes the JSON answer.
func apiPost(t *testing.T, n *node.Node, login, password, path string, form url.Values, out any) int {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	req, _ := http.NewRequest(http.MethodPost, "https://"+n.APIAddr()+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(login, password)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("POST %s: %d, body: %v", path, resp.StatusCode, err)
	}
	return resp.StatusCode
}

// An account crossing 80% of its plan's bandwidth makes one signed bandwidth.80 event for the
// operator's webhook and the account's own. With the operator's receiver down when it happens and
// the node restarted before the receiver comes back, the event still arrives, once.
func TestWebhookBandwidthEventSurvivesReceiverOutageAndRestart(t *testing.T) {
	ops := newReceiver(t)
	ops.secrets["/ops"] = "operator-secret-0123456789"
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "exitmesh.yaml")
	if err := os.WriteFile(cfgPath, fmt.Appendf(nil, webhookConfig, filepath.Join(dir, "exitmesh.db"), ops.url("/ops")), 0o600); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, cfgPath)
	f := &fixture{node: n, dbPath: filepath.Join(dir, "exitmesh.db")}
	var err error
	if f.admin, err = store.Open(context.Background(), "sqlite:"+f.dbPath); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.admin.Close() })
	f.origin = httptest.NewServer(origin.Handler())
	t.Cleanup(f.origin.Close)
	f.createOnPlan(t, "alice", "metered")
	eventually(t, "account.created at the operator's webhook", func() error {
		if len(ops.find("/ops", domain.EventAccountCreated)) != 1 {
			return fmt.Errorf("deliveries: %v", ops.deliveries())
		}
		return nil
	})

	// The account's own webhook, set through the API, on the same receiver.
	var hook struct{ URL, Secret string }
	if code := apiPost(t, n, "alice", "alice-password", "/api/webhook/set/", url.Values{"url": {ops.url("/alice")}}, &hook); code != 200 ||
		hook.URL != ops.url("/alice") || !strings.HasPrefix(hook.Secret, "whsec_") {
		t.Fatalf("set webhook: %d %+v", code, hook)
	}
	ops.mu.Lock()
	ops.secrets["/alice"] = hook.Secret
	ops.mu.Unlock()

	// The receiver goes down; alice downloads 850 kB of her 1 MB.
	ops.down()
	c := f.client("alice", "alice-password", "")
	resp, err := c.Get(f.origin.URL + "/bytes/850000")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	eventually(t, "a failed attempt of each bandwidth.80 delivery", func() error {
		ds, err := f.admin.ListWebhookDeliveries(context.Background(), 10)
		if err != nil {
			return err
		}
		failed := 0
		for _, d := range ds {
			if d.Event == domain.EventBandwidth80 && d.Attempts >= 1 && d.State == domain.DeliveryPending && d.LastError != "" {
				failed++
			}
		}
		if failed != 2 {
			return fmt.Errorf("deliveries %+v", ds)
		}
		return nil
	})

	// The node restarts; then the receiver comes back.
	stopNode(t, n)
	n = startNode(t, cfgPath)
	t.Cleanup(func() { stopNode(t, n) })
	ops.up()
	// The retry is due 10 s (±20%) after the failed attempt, which eats most of testwait's bound:
	// wait for it first, then as usual.
	time.Sleep(8 * time.Second)
	eventually(t, "bandwidth.80 at both webhooks after the outage and the restart", func() error {
		if len(ops.find("/ops", domain.EventBandwidth80)) == 0 || len(ops.find("/alice", domain.EventBandwidth80)) == 0 {
			return fmt.Errorf("deliveries: %v", ops.deliveries())
		}
		return nil
	})
	time.Sleep(2 * time.Second) // a duplicate would come within a few delivery steps
	toOps, toAlice := ops.find("/ops", domain.EventBandwidth80), ops.find("/alice", domain.EventBandwidth80)
	if len(toOps) != 1 || len(toAlice) != 1 || toOps[0].id != toAlice[0].id || toOps[0].login != "alice" || toOps[0].percent != 80 {
		t.Errorf("bandwidth.80 deliveries: operator %v, account %v; want one each, the same event id, about alice at 80%%", toOps, toAlice)
	}
	if len(ops.find("/ops", domain.EventBandwidth100)) != 0 {
		t.Errorf("bandwidth.100 at 850 kB of 1 MB: %v", ops.deliveries())
	}
	if ops.bad() != 0 {
		t.Errorf("%d deliveries with a bad signature", ops.bad())
	}
}

// A customer's webhook URL passes the egress policy: an internal address the operator has not
// allowed is refused when it is set, with the reason.
func TestWebhookURLPassesTheEgressPolicy(t *testing.T) {
	f := startWith(t, fmt.Sprintf(webhookConfig, "%[1]s", "http://127.0.0.1:9/ops"), slog.New(slog.DiscardHandler))
	f.createOnPlan(t, "alice", "metered")
	for _, c := range []struct {
		url    string
		status int
		says   string
	}{
		{"http://127.0.0.5:8080/hook", 400, "loopback address"},
		{"http://10.1.2.3/hook", 400, "private address"},
		{"http://[fe80::1]/hook", 400, "link-local"},
		{"http://127.0.0.1:9/hook", 200, ""}, // allowed by egress.allow
		{"ftp://example.net/hook", 400, "http:// or https://"},
		{"http://user:pw@127.0.0.1/hook", 400, "credentials"},
		{"http://127.0.0.1:25/hook", 400, "port is blocked"},
	} {
		var out struct {
			URL    string
			Error  string
			Fields map[string][]string `json:"fields"`
		}
		code := apiPost(t, f.node, "alice", "alice-password", "/api/webhook/set/", url.Values{"url": {c.url}}, &out)
		if code != c.status || (c.says != "" && !strings.Contains(strings.Join(out.Fields["url"], " "), c.says)) {
			t.Errorf("set %s: %d %+v; want %d saying %q", c.url, code, out, c.status, c.says)
		}
	}
}

// An upstream exit that dies and comes back makes one exit.down and one exit.up event at the
// operator's webhook, naming the node, the proxy server and the exit.
func TestWebhookExitDownAndUp(t *testing.T) {
	ops := newReceiver(t)
	ops.secrets["/ops"] = "operator-secret-0123456789"
	socks := upstreamtest.StartSOCKS5(t, "127.0.0.7")
	cfg := fmt.Sprintf(healthConfig, startEcho(t), 3, socks.URL()) +
		fmt.Sprintf("node: {name: node-x}\nwebhooks: [{url: %q, secret: operator-secret-0123456789, events: [exit.down, exit.up]}]\n", ops.url("/ops"))
	f := startWith(t, cfg, slog.New(slog.DiscardHandler))
	// The node's first report of the exit, healthy, reaches the store first: a first report makes
	// no event, a change from it does.
	eventually(t, "the exit reported healthy", func() error { return exitReported(t, f.admin, "203.0.113.7", true, socks.Pass) })
	socks.Stop()
	eventually(t, "exit.down at the operator's webhook", func() error {
		if len(ops.find("/ops", domain.EventExitDown)) != 1 {
			return fmt.Errorf("deliveries %v", ops.deliveries())
		}
		return nil
	})
	socks.Start()
	eventually(t, "exit.up at the operator's webhook", func() error {
		if len(ops.find("/ops", domain.EventExitUp)) != 1 {
			return fmt.Errorf("deliveries %v", ops.deliveries())
		}
		return nil
	})
	time.Sleep(time.Second)
	got := ops.deliveries()
	if len(got) != 2 || ops.bad() != 0 || got[0].typ != domain.EventExitDown || got[0].node != "node-x" || got[0].proxy != "us-ca" || got[0].ip != "203.0.113.7" {
		t.Errorf("deliveries %v (%d badly signed), want exit.down then exit.up, once each", got, ops.bad())
	}
}
