package proxy_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/exitmesh/exitmesh/internal/accesslog"
	"github.com/exitmesh/exitmesh/internal/egress"
	"github.com/exitmesh/exitmesh/internal/proxy"
	"github.com/exitmesh/exitmesh/internal/testlog"
	"github.com/exitmesh/exitmesh/internal/testwait"
)

// withAccessLog gives the proxy an access log writing to w (with paths when paths is set).
func withAccessLog(t *testing.T, w io.Writer, queue int, paths bool) envOption {
	l, err := accesslog.Open(accesslog.Config{Writer: w, Node: "node-a", Paths: paths, Queue: queue, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(t.Context()) })
	return func(c *proxy.Config, _ *egress.Dialer) { c.AccessLog = l }
}

// A forwarded request, a CONNECT tunnel, a SOCKS5 tunnel and a refusal each make one line with who,
// from where, through which exit, to where, the outcome and the bytes; never a credential.
func TestAccessLogLines(t *testing.T) {
	out := &testlog.Buffer{}
	l, err := accesslog.Open(accesslog.Config{Writer: out, Node: "node-a", Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *proxy.Config, _ *egress.Dialer) { c.AccessLog = l })
	plain := e.through(false, "alice-us", subPW, http.Header{"X-Proxymesh-Ip": {"127.0.0.3"}})
	tunnel := e.through(true, "alice", alicePW, nil)
	saw := e.seenThrough(t, e.socksClient(t, "alice", alicePW, ""))
	refused := e.through(false, "alice", "wrong-password", nil)
	if plain.status != "200" || tunnel.status != "200" || refused.status != "407" {
		t.Fatalf("requests: %+v %+v %+v", plain, tunnel, refused)
	}
	e.srv.Shutdown(t.Context()) // tunnels end: their lines are written
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, secret := range []string{alicePW, subPW, "Basic ", b64("alice:")} {
		if strings.Contains(text, secret) {
			t.Errorf("the access log holds %q:\n%s", secret, text)
		}
	}
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	find := func(method string, status float64) map[string]any {
		for _, m := range lines {
			if m["method"] == method && m["status"] == status {
				return m
			}
		}
		t.Fatalf("no %s line with status %v in\n%s", method, status, text)
		return nil
	}
	originHost, originPort, _ := strings.Cut(strings.TrimPrefix(e.origin.URL, "http://"), ":")
	get := find("GET", 200)
	for k, v := range map[string]any{"node": "node-a", "proxy": "us-ca", "account": "alice", "sub_account": "alice-us",
		"client_ip": "127.0.0.1", "exit_ip": "127.0.0.3", "host": originHost, "port": float64(atoi(originPort)), "error": ""} {
		if get[k] != v {
			t.Errorf("GET line: %s = %#v, want %#v", k, get[k], v)
		}
	}
	if get["bytes_out"].(float64) <= 0 || get["bytes_in"] != 0.0 || get["duration_ms"].(float64) <= 0 {
		t.Errorf("GET line bytes and duration: %v", get)
	}
	if _, ok := get["path"]; ok {
		t.Errorf("GET line has a path without access_log.paths: %v", get)
	}
	conn := find("CONNECT", 200)
	if conn["account"] != "alice" || conn["sub_account"] != "" || conn["exit_ip"] != tunnel.exitIP || conn["bytes_in"].(float64) <= 0 || conn["bytes_out"].(float64) <= 0 {
		t.Errorf("CONNECT line: %v, want alice's tunnel through %s with bytes both ways", conn, tunnel.exitIP)
	}
	socks := find("SOCKS5", 0)
	if socks["exit_ip"] != saw || socks["account"] != "alice" || socks["bytes_out"].(float64) <= 0 {
		t.Errorf("SOCKS5 line: %v, want alice's tunnel through %s", socks, saw)
	}
	bad := find("GET", 407)
	if bad["error"] != "auth-failed" || bad["account"] != "" || bad["exit_ip"] != "" {
		t.Errorf("refusal line: %v", bad)
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// With access_log.paths the path and query are logged too.
func TestAccessLogPaths(t *testing.T) {
	out := &testlog.Buffer{}
	e := newEnv(t, withAccessLog(t, out, 0, true))
	host := strings.TrimPrefix(e.origin.URL, "http://")
	e.raw("GET http://" + host + "/ip?x=1 HTTP/1.1\r\nHost: " + host + "\r\nProxy-Authorization: " + basic("alice", alicePW) + "\r\n\r\n")
	e.srv.Shutdown(t.Context())
	testwait.For(t, "the line with its path", func() error {
		if text := out.String(); !strings.Contains(text, `"path":"/ip?x=1"`) {
			return fmt.Errorf("log so far: %s", text)
		}
		return nil
	})
}

// A stuck log (its writer blocked on a pipe nobody reads) never delays a request: every request is
// answered while the lines beyond the queue are dropped.
func TestStuckAccessLogNeverStallsTheProxy(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { go io.Copy(io.Discard, r) }) // unstick it so the log can close
	e := newEnv(t, withAccessLog(t, w, 4, true))
	for i := range 300 { // each line is ~300 bytes: the pipe's 64 KiB and the queue fill early on
		if got := e.through(false, "alice", alicePW, nil); got.status != "200" {
			t.Fatalf("request %d with a stuck access log: %+v", i, got)
		}
	}
}
