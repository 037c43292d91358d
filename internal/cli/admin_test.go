package cli_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/cli"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/store"
)

// These tests run the operator commands in-process, as the binary would, against a real SQLite
// store in a temporary directory, and check what SPEC §3.2 promises: exit status 0 and no stderr on
// success; on failure one line on stderr and a non-zero status (2 for a wrong command line, 3 for a
// refusal) — and that a refused command leaves the store as it was.

// testConfig declares the store, two proxy servers and the plan "starter", which allows one proxy
// server, two sub-accounts, two IPs, one hostname and 10GB a month.
const testConfig = `store: "sqlite:%s"
metrics: {listen: "off"}
node: {name: test-node}
proxies:
  - name: us-ca
    listen: 127.0.0.1:0
    country: US
    exits:
      - ip: 127.0.0.2
      - ip: 127.0.0.3
  - name: world
    listen: 127.0.0.1:0
    exits:
      - ip: 127.0.0.4
plans:
  - {name: starter, proxies: 1, subs: 2, ips: 2, hostnames: 1, bandwidth: 10GB}
`

// env is one temporary installation: a config file and the SQLite file it names.
type env struct {
	cfg, db string
	st      domain.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{cfg: filepath.Join(dir, "exitmesh.yaml"), db: filepath.Join(dir, "exitmesh.db")}
	writeFile(t, e.cfg, fmt.Sprintf(testConfig, e.db))
	// Open the store here, not in a subtest, so that it stays open until the whole test ends.
	st, err := store.Open(t.Context(), "sqlite:"+e.db)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	e.st = st
	return e
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// run runs exitmesh with args and stdin, as the binary would, and returns what it reported.
func run(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = cli.Main(t.Context(), args, cli.IO{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut})
	return code, out.String(), errOut.String()
}

// admin runs "exitmesh admin ARGS... --config FILE".
func (e *env) admin(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return run(t, stdin, append(append([]string{"admin"}, args...), "--config", e.cfg)...)
}

// mustAdmin runs an admin command that must succeed and returns its stdout.
func (e *env) mustAdmin(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	code, stdout, stderr := e.admin(t, stdin, args...)
	wantSuccess(t, code, stderr)
	return stdout
}

// store returns the env's store, opened the way the CLI opens it.
func (e *env) store(*testing.T) domain.Store { return e.st }

// account returns the stored account called username; ok is false when there is none.
func (e *env) account(t *testing.T, username string) (acct domain.Account, ok bool) {
	t.Helper()
	acct, err := e.store(t).GetAccount(t.Context(), username)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return domain.Account{}, false
	}
	if err != nil {
		t.Fatalf("GetAccount(%q): %v", username, err)
	}
	return acct, true
}

func (e *env) mustAccount(t *testing.T, username string) domain.Account {
	t.Helper()
	acct, ok := e.account(t, username)
	if !ok {
		t.Fatalf("account %q not in the store", username)
	}
	return acct
}

func wantSuccess(t *testing.T, code int, stderr string) {
	t.Helper()
	if code != 0 || stderr != "" {
		t.Fatalf("exit status %d, stderr %q; want 0 and no stderr", code, stderr)
	}
}

// nonZero as a wanted exit status accepts any failure status.
const nonZero = -1

// wantFailure checks the failure contract: the wanted status, and exactly one stderr line that
// starts with "exitmesh: " and contains every one of the fragments (case-insensitively).
func wantFailure(t *testing.T, code int, stderr string, wantCode int, fragments ...string) {
	t.Helper()
	switch {
	case wantCode == nonZero && code == 0:
		t.Errorf("exit status 0, want non-zero")
	case wantCode != nonZero && code != wantCode:
		t.Errorf("exit status %d, want %d", code, wantCode)
	}
	if !isErrorLine(stderr) {
		t.Errorf("stderr = %q, want one line starting with %q", stderr, "exitmesh: ")
	}
	for _, f := range fragments {
		if !strings.Contains(strings.ToLower(stderr), strings.ToLower(f)) {
			t.Errorf("stderr = %q, want it to mention %q", stderr, f)
		}
	}
}

func isErrorLine(s string) bool {
	return strings.HasPrefix(s, "exitmesh: ") && strings.HasSuffix(s, "\n") && strings.Count(s, "\n") == 1
}

// rows splits a table printed by a list command into the fields of its lines, header first.
func rows(stdout string) [][]string {
	var out [][]string
	for line := range strings.Lines(stdout) {
		out = append(out, strings.Fields(line))
	}
	return out
}

// row returns the fields of the table line whose first field is key.
func row(t *testing.T, stdout, key string) []string {
	t.Helper()
	for _, r := range rows(stdout) {
		if len(r) > 0 && r[0] == key {
			return r
		}
	}
	t.Fatalf("no line for %q in:\n%s", key, stdout)
	return nil
}

func wantPassword(t *testing.T, acct domain.Account, pw string, want bool) {
	t.Helper()
	got, err := auth.CheckPassword(acct.PasswordHash, pw)
	if err != nil || got != want {
		t.Errorf("CheckPassword(%s's hash, %q) = %v, %v; want %v, nil", acct.Username, pw, got, err, want)
	}
}

func TestPlanCreateAndList(t *testing.T) {
	e := newEnv(t)
	steps := []struct {
		name      string
		args      []string
		wantCode  int
		wantOut   string // a fragment of stdout; empty: no stdout at all
		wantError string // a fragment of stderr
	}{
		{"create", []string{"plan", "create", "gold", "--proxies", "1", "--subs", "2", "--ips", "3", "--hostnames", "4", "--bandwidth", "5GB", "--tokens", "6"},
			0, "plan gold created", ""},
		{"duplicate", []string{"plan", "create", "gold", "--proxies", "9", "--bandwidth", "1GB"}, 3, "", `plan "gold" already exists`},
		{"bad bandwidth unit", []string{"plan", "create", "silver", "--proxies", "1", "--bandwidth", "5XB"}, 2, "", "--bandwidth"},
		{"bad name", []string{"plan", "create", "Gold!", "--proxies", "1"}, 3, "", "plan name"},
		{"no name", []string{"plan", "create", "--proxies", "1"}, 2, "", "plan create NAME"},
		{"not a number", []string{"plan", "create", "bronze", "--proxies", "many"}, 2, "", "-proxies"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			code, stdout, stderr := e.admin(t, "", s.args...)
			if s.wantCode == 0 {
				wantSuccess(t, code, stderr)
			} else {
				wantFailure(t, code, stderr, s.wantCode, s.wantError)
			}
			if s.wantOut == "" && stdout != "" || !strings.Contains(stdout, s.wantOut) {
				t.Errorf("stdout = %q, want it to contain %q (nothing if empty)", stdout, s.wantOut)
			}
		})
	}

	got, err := e.store(t).GetPlan(t.Context(), "gold")
	want := domain.Plan{Name: "gold", MaxProxies: 1, MaxSubs: 2, MaxIPs: 3, MaxHostnames: 4, MonthlyBandwidth: 5_000_000_000, MaxTokens: 6}
	if err != nil || got != want {
		t.Errorf("stored plan gold = %+v, %v; want %+v (the duplicate create must not change it)", got, err, want)
	}
	for _, name := range []string{"silver", "bronze"} {
		if _, err := e.store(t).GetPlan(t.Context(), name); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Errorf("GetPlan(%q) error = %v; want not found after a failed create", name, err)
		}
	}

	list := e.mustAdmin(t, "", "plan", "list")
	wantRows := map[string][]string{
		"PLAN":    {"PLAN", "PROXIES", "SUBS", "IPS", "HOSTNAMES", "TOKENS", "BANDWIDTH", "RATE", "SPEED", "CONNECTIONS"},
		"gold":    {"gold", "1", "2", "3", "4", "6", "5GB/month", "-", "-", "-"},
		"starter": {"starter", "1", "2", "2", "1", "0", "10GB/month", "-", "-", "-"},
	}
	for key, want := range wantRows {
		if got := row(t, list, key); !slices.Equal(got, want) {
			t.Errorf("plan list line %v, want %v", got, want)
		}
	}
	if n := len(rows(list)); n != 3 {
		t.Errorf("plan list has %d lines, want 3 (header, gold, starter):\n%s", n, list)
	}
}

// An edit of a plan the config declares survives later operator commands: admin creates what the
// config declares but is missing, and never resets what exists.
func TestEditOfConfigPlanPersists(t *testing.T) {
	e := newEnv(t)
	e.mustAdmin(t, "", "plan", "edit", "starter", "--ips", "7")
	e.mustAdmin(t, "", "plan", "list")
	got, err := e.store(t).GetPlan(t.Context(), "starter")
	if err != nil {
		t.Fatal(err)
	}
	if got.MaxIPs != 7 || got.MaxProxies != 1 {
		t.Errorf("starter after edit and another command = %+v, want MaxIPs 7 and the other limits kept", got)
	}
}

func TestPlanEdit(t *testing.T) {
	e := newEnv(t)
	e.mustAdmin(t, "", "plan", "create", "gold", "--proxies", "1", "--subs", "2", "--ips", "3", "--hostnames", "4", "--bandwidth", "5GB")
	gold := domain.Plan{Name: "gold", MaxProxies: 1, MaxSubs: 2, MaxIPs: 3, MaxHostnames: 4, MonthlyBandwidth: 5_000_000_000}

	tests := []struct {
		name      string
		args      []string
		wantCode  int
		wantError string
		want      domain.Plan // the stored plan gold afterwards
	}{
		{"ips only", []string{"plan", "edit", "gold", "--ips", "7"}, 0, "", withIPs(gold, 7)},
		{"unknown plan", []string{"plan", "edit", "platinum", "--ips", "7"}, 3, `plan "platinum" not found`, withIPs(gold, 7)},
		{"bad bandwidth", []string{"plan", "edit", "gold", "--ips", "1", "--bandwidth", "lots"}, 2, "--bandwidth", withIPs(gold, 7)},
		{"negative", []string{"plan", "edit", "gold", "--subs", "-1"}, 3, "negative", withIPs(gold, 7)},
		{"unlimited bandwidth", []string{"plan", "edit", "gold", "--bandwidth", "0"}, 0, "",
			domain.Plan{Name: "gold", MaxProxies: 1, MaxSubs: 2, MaxIPs: 7, MaxHostnames: 4}},
		{"tokens only", []string{"plan", "edit", "gold", "--tokens", "3"}, 0, "",
			domain.Plan{Name: "gold", MaxProxies: 1, MaxSubs: 2, MaxIPs: 7, MaxHostnames: 4, MaxTokens: 3}},
		{"rate, speed and connections", []string{"plan", "edit", "gold", "--rate", "5", "--speed", "2MB", "--connections", "9"}, 0, "",
			domain.Plan{Name: "gold", MaxProxies: 1, MaxSubs: 2, MaxIPs: 7, MaxHostnames: 4, MaxTokens: 3, Rate: 5, Speed: 2_000_000, Connections: 9}},
		{"bad speed", []string{"plan", "edit", "gold", "--speed", "fast"}, 2, "--speed",
			domain.Plan{Name: "gold", MaxProxies: 1, MaxSubs: 2, MaxIPs: 7, MaxHostnames: 4, MaxTokens: 3, Rate: 5, Speed: 2_000_000, Connections: 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := e.admin(t, "", tt.args...)
			if tt.wantCode == 0 {
				wantSuccess(t, code, stderr)
				if want := "plan gold updated\n"; stdout != want {
					t.Errorf("stdout = %q, want %q", stdout, want)
				}
			} else {
				wantFailure(t, code, stderr, tt.wantCode, tt.wantError)
			}
			got, err := e.store(t).GetPlan(t.Context(), "gold")
			if err != nil || got != tt.want {
				t.Errorf("stored plan = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
	if _, err := e.store(t).GetPlan(t.Context(), "platinum"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("GetPlan(platinum) error = %v; editing an unknown plan must not create it", err)
	}
	if got := row(t, e.mustAdmin(t, "", "plan", "list"), "gold"); !slices.Equal(got[len(got)-4:], []string{"unlimited", "5/s", "2MB/s", "9"}) {
		t.Errorf("plan list line %v, want bandwidth unlimited, rate 5/s, speed 2MB/s, connections 9", got)
	}
}

func withIPs(p domain.Plan, n int) domain.Plan {
	p.MaxIPs = n
	return p
}

// Every admin command first makes the config's plans and proxy servers exist in the store.
func TestAdminProvisionsConfig(t *testing.T) {
	for _, args := range [][]string{{"proxy", "list"}, {"plan", "list"}, {"account", "list"}, {"usage"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			e := newEnv(t)
			e.mustAdmin(t, "", args...)

			plan, err := e.store(t).GetPlan(t.Context(), "starter")
			want := domain.Plan{Name: "starter", MaxProxies: 1, MaxSubs: 2, MaxIPs: 2, MaxHostnames: 1, MonthlyBandwidth: 10_000_000_000}
			if err != nil || plan != want {
				t.Errorf("stored plan starter = %+v, %v; want %+v", plan, err, want)
			}
			proxies, err := e.store(t).ListProxyServers(t.Context())
			wantProxies := []domain.ProxyServer{
				{Name: "us-ca", Address: "127.0.0.1:0", Country: "US", Places: domain.Places{Countries: []string{"US"}}},
				{Name: "world", Address: "127.0.0.1:0"},
			}
			if err != nil || !reflect.DeepEqual(proxies, wantProxies) {
				t.Errorf("stored proxy servers = %+v, %v; want %+v", proxies, err, wantProxies)
			}
		})
	}

	e := newEnv(t)
	list := e.mustAdmin(t, "", "proxy", "list")
	want := [][]string{{"PROXY", "ADDRESS", "COUNTRY"}, {"us-ca", "127.0.0.1:0", "US"}, {"world", "127.0.0.1:0", "-"}}
	if got := rows(list); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("proxy list = %v, want %v", got, want)
	}
}

func TestAccountCreate(t *testing.T) {
	tests := []struct {
		name          string
		stdin         string
		args          []string // after "account create alice --plan starter"
		password      string
		wantConfirmed bool
		wantProxies   []string
		wantIPs       []netip.Addr
	}{
		{"password on stdin, proxies and IPs", "s3cret-password\n",
			[]string{"--password-stdin", "--proxies", "us-ca", "--ips", "203.0.113.5"},
			"s3cret-password", true, []string{"us-ca"}, []netip.Addr{netip.MustParseAddr("203.0.113.5")}},
		{"password flag", "", []string{"--password", "hunter2-hunter2"}, "hunter2-hunter2", true, nil, nil},
		{"unconfirmed", "", []string{"--password", "hunter2-hunter2", "--unconfirmed"}, "hunter2-hunter2", false, nil, nil},
		{"stdin without newline", "no-newline-here", []string{"--password-stdin"}, "no-newline-here", true, nil, nil},
		{"stdin with CRLF and more lines", "crlf-password\r\nignored\n", []string{"--password-stdin"}, "crlf-password", true, nil, nil},
		{"two IPs, spaces in list", "", []string{"--password", "hunter2-hunter2", "--ips", "203.0.113.9, 2001:db8::1"}, "hunter2-hunter2", true, nil,
			[]netip.Addr{netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("2001:db8::1")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			args := append([]string{"account", "create", "alice", "--plan", "starter"}, tt.args...)
			code, stdout, stderr := e.admin(t, tt.stdin, args...)
			wantSuccess(t, code, stderr)
			if want := "account alice created (plan starter)\n"; stdout != want {
				t.Errorf("stdout = %q, want %q", stdout, want)
			}

			acct := e.mustAccount(t, "alice")
			if !strings.HasPrefix(acct.PasswordHash, "$argon2id$") || strings.Contains(acct.PasswordHash, tt.password) {
				t.Errorf("stored password hash %q: want an argon2id hash that does not contain the password", acct.PasswordHash)
			}
			wantPassword(t, acct, tt.password, true)
			wantPassword(t, acct, tt.password+"x", false)
			if acct.Plan != "starter" || acct.Confirmed != tt.wantConfirmed || acct.Disabled {
				t.Errorf("stored plan %q, confirmed %v, disabled %v; want starter, %v, false", acct.Plan, acct.Confirmed, acct.Disabled, tt.wantConfirmed)
			}
			if !slices.Equal(acct.Proxies, tt.wantProxies) {
				t.Errorf("stored proxies %v, want %v", acct.Proxies, tt.wantProxies)
			}
			if !slices.Equal(acct.IPs, tt.wantIPs) {
				t.Errorf("stored IPs %v, want %v", acct.IPs, tt.wantIPs)
			}
		})
	}
}

func TestAccountCreateRefused(t *testing.T) {
	const pw = "s3cret-password"
	tests := []struct {
		name      string
		stdin     string
		args      []string // after "account create alice"
		wantCode  int
		wantError []string
	}{
		{"no plan", "", []string{"--password", pw}, 2, []string{"--plan"}},
		{"no password", "", []string{"--plan", "starter"}, 2, []string{"password"}},
		{"both passwords", pw + "\n", []string{"--plan", "starter", "--password", pw, "--password-stdin"}, 2, []string{"not both"}},
		{"short password", "", []string{"--plan", "starter", "--password", "short"}, 3, []string{"at least 8 characters"}},
		{"short password on stdin", "short\n", []string{"--plan", "starter", "--password-stdin"}, 3, []string{"at least 8 characters"}},
		{"empty stdin", "", []string{"--plan", "starter", "--password-stdin"}, 3, []string{"at least 8 characters"}},
		{"unknown plan", "", []string{"--plan", "gold", "--password", pw}, 3, []string{`plan "gold"`}},
		{"unknown proxy", "", []string{"--plan", "starter", "--password", pw, "--proxies", "mars"}, 3, []string{`proxy server "mars"`}},
		{"too many proxies", "", []string{"--plan", "starter", "--password", pw, "--proxies", "us-ca,world"}, 3, []string{"allows 1 proxy server", "upgrade"}},
		{"too many IPs", "", []string{"--plan", "starter", "--password", pw, "--ips", "203.0.113.1,203.0.113.2,203.0.113.3"}, 3, []string{"allows 2 IP addresses", "upgrade"}},
		{"bad IP", "", []string{"--plan", "starter", "--password", pw, "--ips", "203.0.113.5,999.1.1.1"}, 2, []string{`"999.1.1.1"`}},
		{"unspecified IP", "", []string{"--plan", "starter", "--password", pw, "--ips", "0.0.0.0"}, 3, []string{"0.0.0.0"}},
		{"two usernames", "", []string{"bob", "--plan", "starter", "--password", pw}, 2, []string{"USERNAME"}},
		{"unknown flag", "", []string{"--plan", "starter", "--password", pw, "--color", "red"}, 2, []string{"-color"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			args := append([]string{"account", "create", "alice"}, tt.args...)
			code, stdout, stderr := e.admin(t, tt.stdin, args...)
			wantFailure(t, code, stderr, tt.wantCode, tt.wantError...)
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			if acct, ok := e.account(t, "alice"); ok {
				t.Fatalf("failed create left account %+v in the store", acct)
			}
			// Nothing half-done: the username is still free.
			e.mustAdmin(t, "", "account", "create", "alice", "--plan", "starter", "--password", pw)
		})
	}

	t.Run("bad username", func(t *testing.T) {
		e := newEnv(t)
		code, _, stderr := e.admin(t, "", "account", "create", "al/ice", "--plan", "starter", "--password", pw)
		wantFailure(t, code, stderr, 3, "username")
		if page, err := e.store(t).ListAccounts(t.Context(), domain.AccountQuery{}); err != nil || len(page.Accounts) != 0 {
			t.Errorf("accounts after a failed create: %+v, %v; want none", page.Accounts, err)
		}
	})

	t.Run("duplicate username", func(t *testing.T) {
		e := newEnv(t)
		e.mustAdmin(t, "", "account", "create", "alice", "--plan", "starter", "--password", "first-password")
		code, _, stderr := e.admin(t, "", "account", "create", "alice", "--plan", "starter", "--password", "second-password",
			"--proxies", "us-ca", "--unconfirmed")
		wantFailure(t, code, stderr, 3, "already taken")
		acct := e.mustAccount(t, "alice")
		wantPassword(t, acct, "first-password", true)
		if len(acct.Proxies) != 0 || !acct.Confirmed {
			t.Errorf("alice after a duplicate create: proxies %v, confirmed %v; want none, true (unchanged)", acct.Proxies, acct.Confirmed)
		}
	})
}

func TestAccountListAndShow(t *testing.T) {
	e := newEnv(t)
	e.mustAdmin(t, "", "account", "create", "alice", "--plan", "starter", "--password", "alice-password",
		"--proxies", "us-ca", "--ips", "203.0.113.5,198.51.100.7")
	e.mustAdmin(t, "", "account", "create", "bob", "--plan", "starter", "--password", "bob-password", "--unconfirmed")
	e.mustAdmin(t, "", "account", "create", "carol", "--plan", "starter", "--password", "carol-password")
	e.mustAdmin(t, "", "account", "disable", "carol")

	list := e.mustAdmin(t, "", "account", "list")
	if got, want := rows(list)[0], []string{"USERNAME", "PLAN", "STATUS", "PROXIES", "IPS", "CREATED"}; !slices.Equal(got, want) {
		t.Errorf("account list header %v, want %v", got, want)
	}
	for _, want := range [][]string{
		{"alice", "starter", "active", "us-ca", "2"},
		{"bob", "starter", "unconfirmed", "-", "0"},
		{"carol", "starter", "disabled", "-", "0"},
	} {
		got := row(t, list, want[0])
		if len(got) != 6 || !slices.Equal(got[:5], want) {
			t.Errorf("account list line %v, want %v followed by the creation date", got, want)
		}
	}

	// A page at a time: the rest follows with --after; --prefix finds by the start of a name.
	for _, tt := range []struct {
		args     []string
		want     []string
		nextHint string
	}{
		{[]string{"--limit", "2"}, []string{"alice", "bob"}, "--after bob"},
		{[]string{"--limit", "2", "--after", "bob"}, []string{"carol"}, ""},
		{[]string{"--prefix", "CA"}, []string{"carol"}, ""},
		{[]string{"--prefix", "A", "--limit", "1"}, []string{"alice"}, ""}, // the only match: no next page
	} {
		code, stdout, stderr := e.admin(t, "", append([]string{"account", "list"}, tt.args...)...)
		if code != 0 {
			t.Fatalf("account list %v: exit status %d, stderr %q", tt.args, code, stderr)
		}
		var got []string
		for _, r := range rows(stdout)[1:] {
			got = append(got, r[0])
		}
		if !slices.Equal(got, tt.want) || (tt.nextHint == "") != !strings.Contains(stderr, "more accounts follow") ||
			!strings.Contains(stderr, tt.nextHint) {
			t.Errorf("account list %v: %v, stderr %q; want %v and next %q", tt.args, got, stderr, tt.want, tt.nextHint)
		}
	}
	code, _, stderr := e.admin(t, "", "account", "list", "--limit", "0")
	wantFailure(t, code, stderr, 2, "--limit")

	tests := []struct {
		username string
		want     map[string]string // "key:" line of account show → its value
	}{
		{"alice", map[string]string{"username": "alice", "plan": "starter", "status": "active",
			"proxies": "us-ca", "ips": "198.51.100.7, 203.0.113.5", "subs": "-"}},
		{"bob", map[string]string{"username": "bob", "status": "unconfirmed", "proxies": "-", "ips": "-"}},
		{"carol", map[string]string{"status": "disabled"}},
	}
	for _, tt := range tests {
		t.Run("show "+tt.username, func(t *testing.T) {
			fields := map[string]string{}
			for line := range strings.Lines(e.mustAdmin(t, "", "account", "show", tt.username)) {
				key, value, _ := strings.Cut(line, ":")
				fields[key] = strings.TrimSpace(value)
			}
			for key, want := range tt.want {
				if got := fields[key]; got != want {
					t.Errorf("account show %s: %s = %q, want %q", tt.username, key, got, want)
				}
			}
		})
	}

	code, stdout, stderr := e.admin(t, "", "account", "show", "nobody")
	wantFailure(t, code, stderr, 3, `account "nobody" not found`)
	if stdout != "" {
		t.Errorf("stdout = %q, want nothing", stdout)
	}
}

// The steps run in order against one store; each checks alice afterwards.
func TestAccountLifecycle(t *testing.T) {
	e := newEnv(t)
	e.mustAdmin(t, "", "plan", "create", "gold", "--proxies", "3", "--subs", "1", "--ips", "5", "--hostnames", "1", "--bandwidth", "0")
	e.mustAdmin(t, "", "account", "create", "alice", "--plan", "starter", "--password", "old-password", "--unconfirmed")

	type state struct {
		plan                string
		confirmed, disabled bool
	}
	steps := []struct {
		name      string
		args      []string
		wantCode  int
		wantOut   string // all of stdout on success
		wantError string
		want      state
	}{
		{"confirm", []string{"account", "confirm", "alice"}, 0, "account alice confirmed\n", "", state{"starter", true, false}},
		{"disable", []string{"account", "disable", "alice"}, 0, "account alice disabled\n", "", state{"starter", true, true}},
		{"disable again", []string{"account", "disable", "alice"}, 0, "account alice disabled\n", "", state{"starter", true, true}},
		{"enable", []string{"account", "enable", "alice"}, 0, "account alice enabled\n", "", state{"starter", true, false}},
		{"set plan", []string{"account", "set-plan", "alice", "gold"}, 0, "account alice moved to plan gold\n", "", state{"gold", true, false}},
		{"set unknown plan", []string{"account", "set-plan", "alice", "platinum"}, 3, "", `plan "platinum"`, state{"gold", true, false}},
		{"set plan of unknown user", []string{"account", "set-plan", "nobody", "starter"}, 3, "", `account "nobody" not found`, state{"gold", true, false}},
		{"set plan without plan", []string{"account", "set-plan", "alice"}, 2, "", "USERNAME PLAN", state{"gold", true, false}},
		{"confirm unknown user", []string{"account", "confirm", "nobody"}, 3, "", `account "nobody" not found`, state{"gold", true, false}},
		{"disable unknown user", []string{"account", "disable", "nobody"}, 3, "", `account "nobody" not found`, state{"gold", true, false}},
		{"enable unknown user", []string{"account", "enable", "nobody"}, 3, "", `account "nobody" not found`, state{"gold", true, false}},
		{"disable without username", []string{"account", "disable"}, 2, "", "USERNAME", state{"gold", true, false}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			code, stdout, stderr := e.admin(t, "", s.args...)
			if s.wantCode == 0 {
				wantSuccess(t, code, stderr)
			} else {
				wantFailure(t, code, stderr, s.wantCode, s.wantError)
			}
			if stdout != s.wantOut {
				t.Errorf("stdout = %q, want %q", stdout, s.wantOut)
			}
			acct := e.mustAccount(t, "alice")
			if got := (state{acct.Plan, acct.Confirmed, acct.Disabled}); got != s.want {
				t.Errorf("alice is %+v, want %+v", got, s.want)
			}
		})
	}
	if _, ok := e.account(t, "nobody"); ok {
		t.Error("a command on an unknown user created it")
	}
}

func TestAccountSetBillingDay(t *testing.T) {
	e := newEnv(t)
	e.mustAdmin(t, "", "account", "create", "alice", "--plan", "starter", "--password", "old-password")
	for _, tt := range []struct {
		args      []string
		wantCode  int
		wantOut   string
		wantError string
		want      int
	}{
		{[]string{"alice", "15"}, 0, "account alice bills from day 15 of each month\n", "", 15},
		{[]string{"alice", "29"}, 3, "", "from 1 to 28", 15},
		{[]string{"alice", "0"}, 3, "", "from 1 to 28", 15},
		{[]string{"alice", "first"}, 2, "", "DAY must be a number", 15},
		{[]string{"nobody", "3"}, 3, "", `account "nobody" not found`, 15},
		{[]string{"alice"}, 2, "", "USERNAME DAY", 15},
	} {
		code, stdout, stderr := e.admin(t, "", append([]string{"account", "set-billing-day"}, tt.args...)...)
		if tt.wantCode == 0 {
			wantSuccess(t, code, stderr)
		} else {
			wantFailure(t, code, stderr, tt.wantCode, tt.wantError)
		}
		if stdout != tt.wantOut {
			t.Errorf("set-billing-day %v: stdout %q, want %q", tt.args, stdout, tt.wantOut)
		}
		if got := e.mustAccount(t, "alice").BillingDay; got != tt.want {
			t.Errorf("set-billing-day %v: alice's billing day %d, want %d", tt.args, got, tt.want)
		}
	}
	if show := e.mustAdmin(t, "", "account", "show", "alice"); !strings.Contains(show, "billing:   from day 15 of each month") ||
		!strings.Contains(show, "limits:    none monthly, none in all") {
		t.Errorf("account show:\n%s", show)
	}
}

func TestAccountResetPassword(t *testing.T) {
	e := newEnv(t)
	e.mustAdmin(t, "", "account", "create", "alice", "--plan", "starter", "--password", "old-password")

	tests := []struct {
		name      string
		stdin     string
		args      []string
		wantCode  int
		wantError string
		valid     string // the password that verifies afterwards
		invalid   string // one that does not
	}{
		{"too short", "short\n", []string{"alice", "--password-stdin"}, 3, "at least 8 characters", "old-password", "short"},
		{"no password", "", []string{"alice"}, 2, "password", "old-password", "new-password"},
		{"unknown user", "new-password\n", []string{"nobody", "--password-stdin"}, 3, `account "nobody" not found`, "old-password", "new-password"},
		{"stdin", "new-password\n", []string{"alice", "--password-stdin"}, 0, "", "new-password", "old-password"},
		{"flag", "", []string{"alice", "--password", "newer-password"}, 0, "", "newer-password", "new-password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := e.admin(t, tt.stdin, append([]string{"account", "reset-password"}, tt.args...)...)
			if tt.wantCode == 0 {
				wantSuccess(t, code, stderr)
				if want := "account alice has a new password\n"; stdout != want {
					t.Errorf("stdout = %q, want %q", stdout, want)
				}
			} else {
				wantFailure(t, code, stderr, tt.wantCode, tt.wantError)
			}
			acct := e.mustAccount(t, "alice")
			wantPassword(t, acct, tt.valid, true)
			wantPassword(t, acct, tt.invalid, false)
		})
	}
}

// --config may come before the command words as well as after them.
func TestAdminConfigFlagPosition(t *testing.T) {
	e := newEnv(t)
	e.mustAdmin(t, "", "account", "create", "alice", "--plan", "starter", "--password", "s3cret-password")
	_, after, _ := e.admin(t, "", "account", "list")
	if !strings.Contains(after, "alice") {
		t.Fatalf("account list = %q, want alice in it", after)
	}
	for _, args := range [][]string{
		{"admin", "--config", e.cfg, "account", "list"},
		{"admin", "-config", e.cfg, "account", "list"},
		{"admin", "--config=" + e.cfg, "account", "list"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, stdout, stderr := run(t, "", args...)
			wantSuccess(t, code, stderr)
			if stdout != after {
				t.Errorf("stdout = %q, want %q (as with --config after the command)", stdout, after)
			}
		})
	}

	for _, tt := range []struct {
		args      []string
		wantError string
	}{
		{[]string{"admin", "--verbose", "account", "list"}, `unknown admin flag "--verbose"`},
		{[]string{"admin", "--config"}, "--config needs a file"},
		{[]string{"admin", "--config", e.cfg}, "no admin command"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, stderr := run(t, "", tt.args...)
			wantFailure(t, code, stderr, 2, tt.wantError)
		})
	}
}

func TestUsageReport(t *testing.T) {
	e := newEnv(t)
	e.mustAdmin(t, "", "account", "create", "alice", "--plan", "starter", "--password", "alice-password")
	e.mustAdmin(t, "", "account", "create", "bob", "--plan", "starter", "--password", "bob-password")
	alice, bob := e.mustAccount(t, "alice"), e.mustAccount(t, "bob")
	err := e.store(t).AddUsage(t.Context(), "cli-test", map[domain.UsageKey]domain.UsageCounts{
		{AccountID: alice.ID, Proxy: "us-ca", Day: "2026-11-24"}: {BytesIn: 1234, BytesOut: 56789, Requests: 7, Tunnels: 3},
		{AccountID: bob.ID, Proxy: "world", Day: "2025-06-01"}:   {BytesIn: 11, BytesOut: 22, Requests: 33, Tunnels: 44},
	})
	if err != nil {
		t.Fatalf("AddUsage: %v", err)
	}

	header := []string{"DAY", "ACCOUNT", "SUB-ACCOUNT", "PROXY", "BYTES-IN", "BYTES-OUT", "REQUESTS", "TUNNELS"}
	aliceRow := []string{"2026-11-24", "alice", "-", "us-ca", "1234", "56789", "7", "3"}
	bobRow := []string{"2025-06-01", "bob", "-", "world", "11", "22", "33", "44"}
	tests := []struct {
		name      string
		args      []string // after "usage"
		wantCode  int
		wantError string
		wantRows  [][]string // on success, after the header
	}{
		{"everyone", nil, 0, "", [][]string{bobRow, aliceRow}},
		{"alice in 2026", []string{"alice", "--from", "2026-01-01", "--to", "2026-12-31"}, 0, "", [][]string{aliceRow}},
		{"bob in 2026", []string{"bob", "--from", "2026-01-01", "--to", "2026-12-31"}, 0, "", nil},
		{"from only", []string{"--from", "2026-11-24"}, 0, "", [][]string{aliceRow}},
		{"to only", []string{"--to", "2026-11-23"}, 0, "", [][]string{bobRow}},
		{"unknown user", []string{"nobody"}, 3, `account "nobody" not found`, nil},
		{"bad from", []string{"--from", "notadate"}, nonZero, "notadate", nil},
		{"bad to", []string{"alice", "--to", "2026-13-01"}, nonZero, "2026-13-01", nil},
		{"from after to", []string{"--from", "2026-12-31", "--to", "2026-01-01"}, nonZero, "after", nil},
		{"two users", []string{"alice", "bob"}, 2, "USERNAME", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := e.admin(t, "", append([]string{"usage"}, tt.args...)...)
			if tt.wantCode != 0 {
				wantFailure(t, code, stderr, tt.wantCode, tt.wantError)
				if stdout != "" {
					t.Errorf("stdout = %q, want nothing", stdout)
				}
				return
			}
			wantSuccess(t, code, stderr)
			want := append([][]string{header}, tt.wantRows...)
			usageTable, _, _ := strings.Cut(stdout, "\n\n") // the month's bandwidth follows
			if got := rows(usageTable); !slices.EqualFunc(got, want, slices.Equal) {
				t.Errorf("usage report = %v, want %v", got, want)
			}
		})
	}
}

func TestBandwidthThisMonth(t *testing.T) {
	e := newEnv(t)
	e.mustAdmin(t, "", "plan", "create", "tiny", "--proxies", "1", "--subs", "1", "--ips", "1", "--hostnames", "1", "--bandwidth", "10KB")
	e.mustAdmin(t, "", "plan", "create", "free", "--proxies", "1", "--subs", "1", "--ips", "1", "--hostnames", "1", "--bandwidth", "0")
	for user, plan := range map[string]string{"alice": "starter", "bob": "starter", "carol": "tiny", "dave": "free"} {
		e.mustAdmin(t, "", "account", "create", user, "--plan", plan, "--password", user+"-password")
	}
	alice, carol, dave := e.mustAccount(t, "alice"), e.mustAccount(t, "carol"), e.mustAccount(t, "dave")
	sub, err := e.store(t).CreateSubAccount(t.Context(), "alice", domain.NewSubAccount{Username: "alice-bot", PasswordHash: alice.PasswordHash})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	today, month := now.Format(time.DateOnly), now.Format("2006-01")
	lastMonth := now.AddDate(0, 0, -now.Day()).Format(time.DateOnly)
	err = e.store(t).AddUsage(t.Context(), "cli-bandwidth", map[domain.UsageKey]domain.UsageCounts{
		{AccountID: alice.ID, Proxy: "us-ca", Day: today}:                {BytesIn: 200_000_000, BytesOut: 700_000_000},
		{AccountID: alice.ID, SubID: sub.ID, Proxy: "us-ca", Day: today}: {BytesOut: 350_000_000},   // the sub-account's count too
		{AccountID: alice.ID, Proxy: "us-ca", Day: lastMonth}:            {BytesOut: 5_000_000_000}, // not this month
		{AccountID: carol.ID, Proxy: "world", Day: today}:                {BytesIn: 2_000, BytesOut: 10_345},
		{AccountID: dave.ID, Proxy: "world", Day: today}:                 {BytesOut: 123_456_789},
	})
	if err != nil {
		t.Fatal(err)
	}

	heading := "bandwidth this month (" + month + ", UTC):"
	lines := func(stdout string) []string {
		_, report, _ := strings.Cut(stdout, "\n\n")
		return slices.Collect(strings.Lines(report))
	}
	if got, want := lines(e.mustAdmin(t, "", "usage", "alice")), []string{heading + " 1.2 GB of 10 GB\n"}; !slices.Equal(got, want) {
		t.Errorf("usage alice ends with %q, want %q", got, want)
	}
	want := []string{
		heading + "\n",
		"  alice  1.2 GB of 10 GB\n",
		"  bob    0 B of 10 GB\n",
		"  carol  12.3 KB of 10 KB (spent: the proxies answer 509)\n",
		"  dave   123.4 MB (unlimited plan)\n",
	}
	if got := lines(e.mustAdmin(t, "", "usage", "--from", today)); !slices.Equal(got, want) {
		t.Errorf("usage ends with\n%q, want\n%q", got, want)
	}
	for user, want := range map[string]string{"alice": "1.2 GB of 10 GB", "bob": "0 B of 10 GB"} {
		show := e.mustAdmin(t, "", "account", "show", user)
		if line := "bandwidth: " + want + " this month (" + month + ", UTC)\n"; !strings.Contains(show, line) {
			t.Errorf("account show %s:\n%s\nwant the line %q", user, show, line)
		}
	}
}

func TestCommandLine(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name      string
		args      []string
		wantCode  int
		wantOut   string // a fragment of stdout; empty: no stdout at all
		wantError string // a fragment of stderr
	}{
		{"no command", nil, 2, "exitmesh demo", "no command given"},
		{"unknown command", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{"admin alone", []string{"admin"}, 2, "account create USERNAME", "no admin command given"},
		{"unknown admin command", []string{"admin", "frobnicate"}, 2, "", `unknown admin command "frobnicate"`},
		{"unknown admin subcommand", []string{"admin", "plan", "delete", "gold", "--config", e.cfg}, 2, "", `"plan delete"`},
		{"admin group alone", []string{"admin", "account"}, 2, "", `"account"`},
		{"stray argument", []string{"admin", "plan", "list", "extra", "--config", e.cfg}, 2, "", "no arguments"},
		{"version", []string{"version"}, 0, "exitmesh ", ""},
		{"--version", []string{"--version"}, 0, "exitmesh ", ""},
		{"help", []string{"--help"}, 0, "exitmesh admin COMMAND", ""},
		{"admin help", []string{"admin", "--help"}, 0, "account reset-password USERNAME", ""},
		{"command help", []string{"admin", "plan", "create", "--help"}, 0, "-bandwidth", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, "", tt.args...)
			switch {
			case tt.wantCode != 0:
				wantFailure(t, code, stderr, tt.wantCode, tt.wantError)
			default:
				wantSuccess(t, code, stderr)
			}
			if tt.wantOut == "" && stdout != "" || !strings.Contains(stdout, tt.wantOut) {
				t.Errorf("stdout = %q, want it to contain %q (nothing if empty)", stdout, tt.wantOut)
			}
		})
	}
	_, stdout, _ := run(t, "", "version")
	// go test's binaries carry no VCS information: cmd/exitmesh's TestVersionShowsCommit builds one that does.
	if !regexp.MustCompile(`^exitmesh v?\d+\.\d+\.\d+\S*\ncommit:  .+\ndate:    .+\ngo:      go\S+ \w+/\w+\n$`).MatchString(stdout) {
		t.Errorf("version prints %q, want \"exitmesh\" and a semantic version on the first line, then the commit, date and Go release", stdout)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "exitmesh.db")
	good := fmt.Sprintf(testConfig, db)
	tests := []struct {
		name      string
		config    string
		wantError []string
	}{
		{"top-level typo", strings.Replace(good, "plans:", "plnas:", 1), []string{"plnas", "unknown key"}},
		{"nested typo", strings.Replace(good, "country: US", "contry: US", 1), []string{"proxies[0].contry", "unknown key"}},
		{"two typos", strings.Replace(strings.Replace(good, "plans:", "plnas:", 1), "country: US", "contry: US", 1),
			[]string{"plnas", "proxies[0].contry"}},
		{"bad value", strings.Replace(good, "bandwidth: 10GB", "bandwidth: 10XB", 1), []string{"plans[0].bandwidth"}},
		{"bad store", strings.Replace(good, "sqlite:", "mysql:", 1), []string{"store"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := filepath.Join(dir, fmt.Sprintf("config-%d.yaml", i))
			writeFile(t, cfg, tt.config)
			code, stdout, stderr := run(t, "", "admin", "plan", "list", "--config", cfg)
			wantFailure(t, code, stderr, nonZero, tt.wantError...)
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
		})
	}

	t.Run("missing file", func(t *testing.T) {
		code, _, stderr := run(t, "", "admin", "plan", "list", "--config", filepath.Join(dir, "absent.yaml"))
		wantFailure(t, code, stderr, nonZero, "absent.yaml")
	})

	if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat %s: %v; a command with a broken config must not create the store", db, err)
	}
}

func TestExitList(t *testing.T) {
	e := newEnv(t)
	now := time.Now().UTC()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.store(t).PutExitStatuses(t.Context(), "node-a", []domain.ExitStatus{
		{Proxy: "us-ca", IP: netip.MustParseAddr("127.0.0.2"), Healthy: true, Active: true, Latency: 1200 * time.Microsecond, Checks: 40, Updated: now},
		{Proxy: "us-ca", IP: netip.MustParseAddr("203.0.113.7"), Via: "socks5://u:xxxxx@10.0.0.5:1080", Active: true, Checks: 40,
			Failures: 3, LastError: "exit 203.0.113.7: connect to 127.0.0.1:9: dial tcp 127.0.0.1:9: connection refused", Since: now.Add(-90 * time.Second), Updated: now},
	}))
	must(e.store(t).PutExitStatuses(t.Context(), "node-b", []domain.ExitStatus{
		{Proxy: "world", IP: netip.MustParseAddr("127.0.0.9"), Healthy: true, Updated: now.Add(-time.Hour)},
	}))
	out := e.mustAdmin(t, "", "exits")
	for _, want := range []string{
		`(?m)^NODE\s+PROXY\s+EXIT\s+VIA\s+HEALTH\s+ACTIVE\s+LATENCY\s+CHECKS\s+FAILED\s+LAST ERROR\s+REPORTED$`,
		`(?m)^node-a\s+us-ca\s+127\.0\.0\.2\s+-\s+up\s+yes\s+1\.2ms\s+40\s+0\s+-\s+\d+s ago$`,
		`(?m)^node-a\s+us-ca\s+203\.0\.113\.7\s+socks5://u:xxxxx@10\.0\.0\.5:1080\s+DOWN 1m3\ds\s+yes\s+-\s+40\s+3\s+exit 203\.0\.113\.7: connect to 127\.0\.0\.1:9: dial tcp 127\.0\.\.\.\.\s+\d+s ago$`,
		`(?m)^node-b\s+world\s+127\.0\.0\.9\s+-\s+up\s+no\s+-\s+0\s+0\s+-\s+1h0m\ds ago$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("admin exits:\n%s\nwant a line matching %s", out, want)
		}
	}
	only := e.mustAdmin(t, "", "exits", "world")
	if strings.Contains(only, "us-ca") || !strings.Contains(only, "127.0.0.9") {
		t.Errorf("admin exits world:\n%s", only)
	}
}

func TestBanListAndLift(t *testing.T) {
	e := newEnv(t)
	if out := e.mustAdmin(t, "", "ban", "list"); len(rows(out)) != 1 {
		t.Errorf("ban list with no bans:\n%s\nwant the header alone", out)
	}
	now := time.Now().UTC().Truncate(time.Second)
	for _, b := range []domain.Ban{
		{IP: netip.MustParseAddr("192.0.2.10"), Reason: "auth-failure", Since: now.Add(-5 * time.Minute), Until: now.Add(10 * time.Minute)},
		{IP: netip.MustParseAddr("2001:db8::1"), Reason: "not-found", Since: now.Add(-time.Minute), Until: now.Add(30 * time.Second)},
		{IP: netip.MustParseAddr("192.0.2.99"), Reason: "auth-failure", Since: now.Add(-time.Hour), Until: now.Add(-time.Minute)}, // over
	} {
		if err := e.store(t).PutBan(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	out := e.mustAdmin(t, "", "ban", "list")
	day := func(d time.Duration) string { return regexp.QuoteMeta(now.Add(d).Format(time.DateTime)) }
	for _, want := range []string{
		`^IP\s+REASON\s+SINCE \(UTC\)\s+UNTIL \(UTC\)\s+LEFT\n`,
		`\n192\.0\.2\.10\s+auth-failure\s+` + day(-5*time.Minute) + `\s+` + day(10*time.Minute) + `\s+(10|9) more minutes\n`,
		`\n2001:db8::1\s+not-found\s+` + day(-time.Minute) + `\s+` + day(30*time.Second) + `\s+\d+ more seconds?\n$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("ban list:\n%s\nwant a match of %s", out, want)
		}
	}
	if strings.Contains(out, "192.0.2.99") {
		t.Errorf("ban list shows a ban that is over:\n%s", out)
	}

	// Pages and the search, as on the operator page.
	code, out, stderr := e.admin(t, "", "ban", "list", "--limit", "1")
	if code != 0 || len(rows(out)) != 2 || row(t, out, "192.0.2.10") == nil ||
		stderr != "more bans follow: exitmesh admin ban list --after 192.0.2.10\n" {
		t.Errorf("ban list --limit 1: status %d, stdout:\n%s\nstderr %q", code, out, stderr)
	}
	if out := e.mustAdmin(t, "", "ban", "list", "--after", "192.0.2.10"); len(rows(out)) != 2 || row(t, out, "2001:db8::1") == nil {
		t.Errorf("ban list --after 192.0.2.10:\n%s", out)
	}
	if out := e.mustAdmin(t, "", "ban", "list", "--prefix", "2001:"); len(rows(out)) != 2 || row(t, out, "2001:db8::1") == nil {
		t.Errorf("ban list --prefix 2001::\n%s", out)
	}

	if out := e.mustAdmin(t, "", "ban", "lift", "192.0.2.10"); !strings.HasPrefix(out, "ban of 192.0.2.10 lifted") {
		t.Errorf("ban lift: %q", out)
	}
	bans, err := e.store(t).ListBans(t.Context())
	if err != nil || len(bans) != 1 || bans[0].IP != netip.MustParseAddr("2001:db8::1") {
		t.Errorf("bans in the store after the lift: %v, %v; want 2001:db8::1's alone", bans, err)
	}
	if out := e.mustAdmin(t, "", "ban", "list"); strings.Contains(out, "192.0.2.10") {
		t.Errorf("ban list after the lift:\n%s", out)
	}

	code, out, stderr = e.admin(t, "", "ban", "lift", "192.0.2.10")
	wantFailure(t, code, stderr, 3, "192.0.2.10 is not banned")
	code, _, stderr = e.admin(t, "", "ban", "lift", "192.0.2.99") // its ban is over
	wantFailure(t, code, stderr, 3, "192.0.2.99 is not banned")
	code, _, stderr = e.admin(t, "", "ban", "lift", "alice")
	wantFailure(t, code, stderr, 2, `"alice" is not an IP address`)
	code, _, stderr = e.admin(t, "", "ban", "lift")
	wantFailure(t, code, stderr, 2, "ban lift IP")
	code, _, stderr = e.admin(t, "", "ban", "list", "--limit", "0")
	wantFailure(t, code, stderr, 2, "--limit")
	if out != "" {
		t.Errorf("a refused lift printed %q", out)
	}
}
