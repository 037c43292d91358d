package main_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/exitmesh/exitmesh/internal/dnstest"
)

const accountConfig = nodeConfig + `hostnames: {resolver: %q}
proxies:
  - {name: us-ca, listen: "127.0.0.1:0", address: "us-ca.test:31280", country: US, exits: [{ip: 127.0.0.2, region: US-CA, city: los_angeles, asn: 64500}, {ip: 127.0.0.3}]}
  - {name: us-ny, listen: "127.0.0.1:0", address: "us-ny.test:31280", country: US, exits: [{ip: 127.0.0.4}]}
egress: {allow: [127.0.0.1/32]}
plans:
  - {name: small, proxies: 2, subs: 1, ips: 2, hostnames: 1, bandwidth: 10GB, tokens: 2}
`

// customer runs customer commands of the built binary against one serving node, as alice.
type customer struct {
	t   *testing.T
	env []string
}

// result is what a command printed and its exit status.
type result struct {
	stdout, stderr string
	status         int
}

func (c *customer) run(stdin string, args ...string) result {
	c.t.Helper()
	cmd := exec.Command(build(c.t), args...)
	cmd.Env = c.env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		c.t.Fatalf("exitmesh %v: %v", args, err)
	}
	return result{stdout: strings.TrimSpace(out.String()), stderr: strings.TrimSpace(errOut.String()), status: cmd.ProcessState.ExitCode()}
}

// ok runs a command that must succeed and returns its standard output.
func (c *customer) ok(args ...string) string {
	c.t.Helper()
	return c.okIn("", args...)
}

func (c *customer) okIn(stdin string, args ...string) string {
	c.t.Helper()
	r := c.run(stdin, args...)
	if r.status != 0 || r.stderr != "" {
		c.t.Fatalf("exitmesh %s: status %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.status, r.stdout, r.stderr)
	}
	return r.stdout
}

// jsonOf runs a command with --json and decodes its output into v.
func (c *customer) jsonOf(v any, args ...string) {
	c.t.Helper()
	out := c.ok(append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("exitmesh %s --json printed %q: %v", strings.Join(args, " "), out, err)
	}
}

// fails runs a command that must fail with status and a message on stderr matching re.
func (c *customer) fails(status int, re string, args ...string) {
	c.t.Helper()
	r := c.run("", args...)
	if r.status != status || !regexp.MustCompile(re).MatchString(r.stderr) || r.stdout != "" {
		c.t.Errorf("exitmesh %s: status %d, stderr %q, stdout %q; want status %d and stderr matching %s",
			strings.Join(args, " "), r.status, r.stderr, r.stdout, status, re)
	}
}

// TestCustomerCommands runs every customer command of the binary against a serving node, with human
// and JSON output, and checks the exit status tells a refused request from a failed service.
func TestCustomerCommands(t *testing.T) {
	dir := t.TempDir()
	dns := dnstest.Start(t)
	dns.Set("bot.test", netip.MustParseAddr("127.0.0.8"))
	dns.Set("other.test", netip.MustParseAddr("127.0.0.9"))
	cfg := filepath.Join(dir, "exitmesh.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, accountConfig, dir, dns.Addr()), 0o600)
	os.MkdirAll(filepath.Join(dir, "demo"), 0o700)
	origin := startProcess(t, "demo", "--port", "0", "--dir", filepath.Join(dir, "demo")) // only for its origin
	originURL := origin.waitFor(t, regexp.MustCompile(`curl -s -x \S+ (http://\S+)/ip; done`))[1]

	serve := startProcess(t, "serve", "--config", cfg)
	addrs := serve.listening(t, 3)
	if out, err := adminCmd(t, cfg, "alice-pass-123\n", "account", "create", "alice", "--plan", "small",
		"--password-stdin", "--proxies", "us-ca").CombinedOutput(); err != nil {
		t.Fatalf("admin account create: %v\n%s", err, out)
	}

	// env is the environment of a customer's shell: the node's address and certificate, and more.
	env := func(more ...string) []string {
		return slices.Concat(os.Environ(), []string{"EXITMESH_API=https://" + addrs["api"],
			"EXITMESH_CACERT=" + filepath.Join(dir, "exitmesh-api.crt")}, more)
	}
	c := &customer{t: t, env: env("EXITMESH_USER=alice", "EXITMESH_PASSWORD=alice-pass-123")}

	t.Run("ip", func(t *testing.T) {
		if out := c.ok("ip"); out != "127.0.0.1" {
			t.Errorf("exitmesh ip printed %q, want the caller's address 127.0.0.1", out)
		}
		var ip struct{ IP string }
		c.jsonOf(&ip, "ip")
		if ip.IP != "127.0.0.1" {
			t.Errorf("exitmesh ip --json: %+v", ip)
		}
		if out := c.ok("ip", "add"); out != "authorized 127.0.0.1" {
			t.Errorf("exitmesh ip add printed %q", out)
		}
		if out := c.ok("ip", "add", "127.0.0.7"); out != "authorized 127.0.0.7" {
			t.Errorf("exitmesh ip add 127.0.0.7 printed %q", out)
		}
		if out := c.ok("ips"); out != "127.0.0.1\n127.0.0.7" {
			t.Errorf("exitmesh ips printed %q", out)
		}
		c.fails(3, `(?i)plan.*(upgrade|limit)`, "ip", "add", "127.0.0.9") // the plan allows 2
		c.fails(3, `already authorized`, "ip", "add", "127.0.0.7")
		c.fails(3, `127\.0\.0\.1/8|not a valid|invalid`, "ip", "add", "127.0.0.1/8")
		if out := c.ok("ip", "delete", "127.0.0.7"); out != "deleted 127.0.0.7" {
			t.Errorf("exitmesh ip delete printed %q", out)
		}
		c.fails(3, `not authorized`, "ip", "delete", "127.0.0.7")
		var ips struct{ IPs []string }
		c.jsonOf(&ips, "ips")
		if fmt.Sprint(ips.IPs) != "[127.0.0.1]" {
			t.Errorf("exitmesh ips --json after the delete: %v", ips.IPs)
		}
		c.ok("ip", "delete", "127.0.0.1") // later requests authenticate by password only
	})

	t.Run("hostname", func(t *testing.T) {
		if out := c.ok("hostname", "add", "bot.test"); out != "authorized bot.test (127.0.0.8)" {
			t.Errorf("exitmesh hostname add printed %q", out)
		}
		if out := c.ok("hostnames"); !regexp.MustCompile(`^HOSTNAME\s+IP\nbot\.test\s+127\.0\.0\.8$`).MatchString(out) {
			t.Errorf("exitmesh hostnames printed %q", out)
		}
		var hs struct {
			Hostnames []struct{ Hostname, IP string }
		}
		c.jsonOf(&hs, "hostnames")
		if len(hs.Hostnames) != 1 || hs.Hostnames[0].Hostname != "bot.test" || hs.Hostnames[0].IP != "127.0.0.8" {
			t.Errorf("exitmesh hostnames --json: %+v", hs)
		}
		c.fails(3, `(?i)plan.*(upgrade|limit)`, "hostname", "add", "other.test")
		if out := c.ok("hostname", "delete", "bot.test"); out != "deleted bot.test" {
			t.Errorf("exitmesh hostname delete printed %q", out)
		}
		c.fails(3, `not authorized`, "hostname", "delete", "bot.test")
	})

	t.Run("proxy", func(t *testing.T) {
		if out := c.ok("proxies"); out != "us-ca.test:31280" {
			t.Errorf("exitmesh proxies printed %q", out)
		}
		avail := c.ok("proxies", "--available")
		if !regexp.MustCompile(`(?m)^NAME\s+ADDRESS\s+COUNTRY\s+EXITS IN\s+REGIONS\s+CITIES\s+ASNS\n` +
			`us-ca\s+us-ca\.test:31280\s+US\s+US\s+US-CA\s+los_angeles\s+64500\nus-ny\s+us-ny\.test:31280\s+US\s+US\s+-\s+-\s+-$`).MatchString(avail) {
			t.Errorf("exitmesh proxies --available printed %q", avail)
		}
		if out := c.ok("proxy", "add", "us-ny"); out != "authorized us-ny.test:31280" {
			t.Errorf("exitmesh proxy add printed %q", out)
		}
		var ps struct{ Proxies []string }
		c.jsonOf(&ps, "proxies")
		if fmt.Sprint(ps.Proxies) != "[us-ca.test:31280 us-ny.test:31280]" {
			t.Errorf("exitmesh proxies --json: %v", ps.Proxies)
		}
		c.fails(3, `nowhere`, "proxy", "add", "nowhere")
		if out := c.ok("proxy", "delete", "us-ny.test:31280"); out != "deleted us-ny.test:31280" {
			t.Errorf("exitmesh proxy delete printed %q", out)
		}
		c.fails(3, `us-ny`, "proxy", "delete", "us-ny")
	})

	t.Run("sub", func(t *testing.T) {
		out := c.okIn("bot-pass-123\n", "sub", "create", "alice-bot", "--sub-password-stdin", "--proxies", "us-ca")
		if !regexp.MustCompile(`^USERNAME\s+ACTIVE\s+PROXIES\s+IPS\nalice-bot\s+true\s+us-ca\.test:31280\s+-$`).MatchString(out) {
			t.Errorf("exitmesh sub create printed %q", out)
		}
		// The password read from stdin is the one the proxy accepts.
		bot := proxyClient("http://alice-bot:bot-pass-123@"+addrs["us-ca"], nil)
		if _, resp := get(t, bot, originURL+"/ip", nil); resp.StatusCode != 200 {
			t.Errorf("the new sub-account's request through us-ca: status %d", resp.StatusCode)
		}
		c.fails(2, `password`, "sub", "create", "alice-bot2", "--proxies", "us-ca")
		r := c.run("x-pass-1234\n", "sub", "create", "alice-bot2", "--sub-password-stdin", "--proxies", "us-ca")
		if r.status != 3 || !regexp.MustCompile(`(?i)plan.*(upgrade|limit)`).MatchString(r.stderr) {
			t.Errorf("a second sub-account on a plan of one: status %d, stderr %q", r.status, r.stderr)
		}
		var sub struct {
			Username string
			Active   bool
			Proxies  []string
		}
		c.jsonOf(&sub, "sub", "edit", "alice-bot", "--active", "false")
		if sub.Username != "alice-bot" || sub.Active || fmt.Sprint(sub.Proxies) != "[us-ca.test:31280]" {
			t.Errorf("exitmesh sub edit --active false --json: %+v", sub)
		}
		eventually(t, func() error {
			if _, resp := get(t, bot, originURL+"/ip", nil); resp.StatusCode == 200 {
				return errors.New("a disabled sub-account's request still passes")
			}
			return nil
		})
		c.fails(2, `--active takes true or false`, "sub", "edit", "alice-bot", "--active", "maybe")
		if out := c.ok("subs"); !regexp.MustCompile(`(?m)^alice-bot\s+false\s+us-ca\.test:31280\s+-$`).MatchString(out) {
			t.Errorf("exitmesh subs printed %q", out)
		}
		if out := c.ok("sub", "delete", "alice-bot"); out != "deleted alice-bot" {
			t.Errorf("exitmesh sub delete printed %q", out)
		}
		var subs struct{ Subs []any }
		c.jsonOf(&subs, "subs")
		if subs.Subs == nil || len(subs.Subs) != 0 {
			t.Errorf("exitmesh subs --json after the delete: %+v", subs)
		}
		c.fails(3, `Sub-account not found`, "sub", "delete", "alice-bot")
	})

	t.Run("account", func(t *testing.T) {
		out := c.ok("account", "edit", "--monthly-limit", "2.5")
		if !regexp.MustCompile(`(?s)^username:\s+alice\nplan:\s+small\nbilling period: \d{4}-\d\d-01 to \d{4}-\d\d-01\nused:.*\nlimits:\s+plan 10 GB per period; the account's own: 2.5 GB per period, none in all$`).MatchString(out) {
			t.Errorf("exitmesh account edit printed %q", out)
		}
		var ac struct {
			MonthlyBandwidthLimit float64 `json:"monthly_bandwidth_limit"`
			BillingDay            int     `json:"billing_day"`
		}
		c.jsonOf(&ac, "account")
		if ac.MonthlyBandwidthLimit != 2.5 || ac.BillingDay != 1 {
			t.Errorf("exitmesh account --json: %+v", ac)
		}
		c.fails(2, `--monthly-limit or --total-limit`, "account", "edit")
		c.fails(3, `monthly_bandwidth_limit`, "account", "edit", "--monthly-limit", "-1")
		out = c.okIn("bot-pass-123\n", "sub", "create", "alice-lim", "--sub-password-stdin", "--email", "lim@example.com", "--monthly-limit", "0.001")
		var sub struct {
			Email                 string
			MonthlyBandwidthLimit float64 `json:"monthly_bandwidth_limit"`
		}
		c.jsonOf(&sub, "sub", "edit", "alice-lim", "--total-limit", "3")
		if sub.Email != "lim@example.com" || sub.MonthlyBandwidthLimit != 0.001 {
			t.Errorf("exitmesh sub edit --json: %+v (create printed %q)", sub, out)
		}
		c.ok("sub", "delete", "alice-lim")
	})

	t.Run("token", func(t *testing.T) {
		var tok struct {
			ID       int64
			Token    string
			Label    string
			Username string
			Active   bool
		}
		c.jsonOf(&tok, "token", "create", "--label", "ci")
		if !strings.HasPrefix(tok.Token, "exm_") || tok.Label != "ci" || tok.Username != "alice" || !tok.Active {
			t.Fatalf("exitmesh token create --json: %+v", tok)
		}
		out := c.ok("token", "create", "--expires", "2099-01-01")
		if !regexp.MustCompile(`(?s)^ID\s+PREFIX\s+LABEL\s+LOGIN\s+ACTIVE\s+EXPIRES\s+LAST USED\n\d+\s+exm_\w{8}\s+-\s+alice\s+yes\s+2099-01-02T00:00:00Z\s+-\n\nexm_\w{46}\n\nKeep this token`).MatchString(out) {
			t.Errorf("exitmesh token create printed %q", out)
		}
		c.fails(3, `(?i)plan.*2 active API tokens`, "token", "create")

		// The token is the credential of the API commands and of the proxies.
		byToken := &customer{t: t, env: env("EXITMESH_USER=", "EXITMESH_PASSWORD=", "EXITMESH_TOKEN="+tok.Token)}
		if out := byToken.ok("proxies"); out != "us-ca.test:31280" {
			t.Errorf("exitmesh proxies with a token printed %q", out)
		}
		byToken.fails(3, `username and password`, "tokens")
		bearer := http.Header{"Proxy-Authorization": {"Bearer " + tok.Token}}
		viaToken := proxyClient("http://"+addrs["us-ca"], nil)
		if _, resp := get(t, viaToken, originURL+"/ip", bearer); resp.StatusCode != 200 {
			t.Errorf("a request through us-ca with the token: status %d", resp.StatusCode)
		}
		id := fmt.Sprint(tok.ID)
		if out := c.ok("token", "deactivate", id); !regexp.MustCompile(`(?m)^` + id + `\s+exm_\w+\s+ci\s+alice\s+no\s`).MatchString(out) {
			t.Errorf("exitmesh token deactivate printed %q", out)
		}
		if _, resp := get(t, viaToken, originURL+"/ip", bearer); resp.StatusCode != 407 {
			t.Errorf("a deactivated token through us-ca: status %d, want 407", resp.StatusCode)
		}
		byToken.fails(3, `(?i)authentication`, "proxies")
		c.ok("token", "activate", id)
		if out := c.ok("token", "delete", id); out != "deleted token "+id {
			t.Errorf("exitmesh token delete printed %q", out)
		}
		c.fails(3, `Token not found`, "token", "delete", id)
		c.fails(2, `not a token id`, "token", "delete", "first")
		c.fails(2, `--sub does not apply`, "sub", "delete", "x", "--sub", "y")
		if out := c.ok("tokens"); strings.Count(out, "\n") != 1 || !strings.Contains(out, "2099-01-02T00:00:00Z") {
			t.Errorf("exitmesh tokens printed %q, want the one token left", out)
		}
	})

	t.Run("usage", func(t *testing.T) {
		alice := proxyClient("http://alice:alice-pass-123@"+addrs["us-ca"], nil)
		for range 3 {
			if _, resp := get(t, alice, originURL+"/ip", nil); resp.StatusCode != 200 {
				t.Fatalf("alice's request through us-ca: status %d", resp.StatusCode)
			}
		}
		var usage struct {
			Bandwidth struct {
				Month       string
				Used, Limit int64
			}
			Usage []struct {
				Day, Proxy string
				SubAccount string `json:"sub_account"`
				Requests   int
				BytesIn    int64 `json:"bytes_in"`
				BytesOut   int64 `json:"bytes_out"`
			}
		}
		eventually(t, func() error {
			usage.Usage = nil
			c.jsonOf(&usage, "usage")
			var total int64 // sub-accounts' bytes, the deleted one's included, count against the account
			for _, row := range usage.Usage {
				total += row.BytesIn + row.BytesOut
			}
			for _, row := range usage.Usage {
				if row.Proxy == "us-ca" && row.SubAccount == "" && row.Requests >= 3 && usage.Bandwidth.Used == total && usage.Bandwidth.Limit == 10e9 {
					return nil
				}
			}
			return fmt.Errorf("exitmesh usage --json: %+v, want alice's 3 requests on us-ca and the month's bandwidth of all rows", usage)
		})
		if out := c.ok("usage"); !regexp.MustCompile(`(?m)^DAY\s+SUB-ACCOUNT\s+PROXY\s+BYTES-IN\s+BYTES-OUT\s+REQUESTS\s+TUNNELS\n\d{4}-\d\d-\d\d\s+-\s+us-ca\s+\d+\s+\d+\s+[3-9]\s+0\n(?:.*\n)*\nbandwidth this month \(\d{4}-\d\d, UTC\): \d+ B of 10 GB$`).MatchString(out) {
			t.Errorf("exitmesh usage printed %q", out)
		}
		c.fails(3, `from`, "usage", "--from", "last week")
	})

	t.Run("webhook", func(t *testing.T) {
		if out := c.ok("webhook"); !strings.HasPrefix(out, "no webhook (events: bandwidth.80, bandwidth.100, token.expiring)") {
			t.Errorf("exitmesh webhook before one is set printed %q", out)
		}
		c.fails(3, `url: This network does not send webhooks to 127\.0\.0\.5:8080: it is a loopback address`, "webhook", "set", "http://127.0.0.5:8080/hook")
		var w struct{ URL, Secret string }
		c.jsonOf(&w, "webhook", "set", "http://127.0.0.1:9/hook") // egress.allow has 127.0.0.1
		if w.URL != "http://127.0.0.1:9/hook" || !strings.HasPrefix(w.Secret, "whsec_") {
			t.Errorf("exitmesh webhook set --json: %+v", w)
		}
		if out := c.ok("webhook"); !strings.Contains(out, "url:    http://127.0.0.1:9/hook") || !strings.Contains(out, "secret: "+w.Secret) {
			t.Errorf("exitmesh webhook printed %q", out)
		}
		if out := c.ok("webhook", "set", ""); !strings.HasPrefix(out, "no webhook") {
			t.Errorf("exitmesh webhook set \"\" printed %q", out)
		}
	})

	t.Run("exit status", func(t *testing.T) {
		wrong := &customer{t: t, env: env("EXITMESH_USER=alice", "EXITMESH_PASSWORD=wrong-password")}
		wrong.fails(3, `(?i)password`, "ips")
		anon := &customer{t: t, env: env("EXITMESH_USER=", "EXITMESH_PASSWORD=")}
		anon.fails(2, `--user \(or EXITMESH_USER\) is required|--password \(or EXITMESH_PASSWORD\) is required`, "ips")
		if out := anon.ok("ips", "--user", "alice", "--password", "alice-pass-123", "--json"); !strings.Contains(out, `"ips": []`) {
			t.Errorf("credentials from flags: %q", out)
		}
		c.fails(2, `unknown command "ipz"`, "ipz")
		c.fails(2, `want ip delete IP`, "ip", "delete")
		c.fails(2, `-bogus`, "ips", "--bogus")

		// A closed port: the service failed, try later.
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		closed := ln.Addr().String()
		ln.Close()
		c.fails(1, `127\.0\.0\.1`, "ips", "--api", "https://"+closed, "--timeout", "2s")
		// Without the node's certificate the client refuses the connection rather than sending the password.
		untrusted := &customer{t: t, env: env("EXITMESH_CACERT=", "EXITMESH_USER=alice", "EXITMESH_PASSWORD=alice-pass-123")}
		untrusted.fails(1, `certificate is not trusted.*--cacert`, "ips")
	})
	serve.stop(t, syscall.SIGTERM)
	origin.stop(t, os.Interrupt)
}
