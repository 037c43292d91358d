package proxy_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dunglas/httpsfv"

	"github.com/exitmesh/exitmesh/internal/testwait"
)

// proxyStatus parses a Proxy-Status field with an RFC 8941 parser and returns the one member's name
// and parameters.
func proxyStatus(t *testing.T, resp *http.Response) (name string, params *httpsfv.Params) {
	t.Helper()
	lines := resp.Header.Values("Proxy-Status")
	if len(lines) == 0 {
		t.Fatalf("%s: no Proxy-Status", resp.Status)
	}
	list, err := httpsfv.UnmarshalList(lines)
	if err != nil {
		t.Fatalf("%s: Proxy-Status %q is not an RFC 8941 list: %v", resp.Status, lines, err)
	}
	if len(list) != 1 {
		t.Fatalf("Proxy-Status %q has %d members, want 1 (this proxy)", lines, len(list))
	}
	item, ok := list[0].(httpsfv.Item)
	if !ok {
		t.Fatalf("Proxy-Status %q: member is not an item", lines)
	}
	if name, ok = item.Value.(string); !ok {
		t.Fatalf("Proxy-Status %q: the proxy's name is %T, want a string", lines, item.Value)
	}
	return name, item.Params
}

// Every error of SPEC §2.10 carries Proxy-Status (RFC 9209): this proxy's name and the error type
// that says what went wrong, read back with a structured-field parser.
func TestErrorsCarryProxyStatus(t *testing.T) {
	e := newEnv(t)
	e.setRefused("127.0.0.2")
	e.setSilent("127.0.0.3")
	origin := strings.TrimPrefix(e.origin.URL, "http://")
	alice := "Proxy-Authorization: " + basic("alice", alicePW) + "\r\n"
	get := func(extra string) string {
		return "GET http://" + origin + "/ip HTTP/1.1\r\nHost: " + origin + "\r\n" + extra + "\r\n"
	}
	connect := func(target, extra string) string {
		return "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n" + extra + "\r\n"
	}
	for _, c := range []struct {
		name, request string
		status        int
		reason, typ   string
		params        map[string]any
	}{
		{"not a proxy request", "GET /ip HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad-request", "http_request_error", nil},
		{"smuggling", "GET http://" + origin + "/ HTTP/1.1\r\nHost: " + origin + "\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "bad-request", "http_request_error", nil},
		{"numeric look-alike", connect("127.2:80", alice), 400, "bad-request", "http_request_error", nil},
		{"numeric look-alike URI", "GET http://2130706434/ HTTP/1.1\r\nHost: 2130706434\r\n" + alice + "\r\n", 400, "bad-request", "http_request_error", nil},
		{"bad steering", get(alice + "X-ProxyMesh-Country: USA\r\n"), 400, "bad-steering", "http_request_error", nil},
		{"no credentials", get(""), 407, "auth-required", "http_request_denied", nil},
		{"wrong password", get("Proxy-Authorization: " + basic("alice", "nope") + "\r\n"), 407, "auth-failed", "http_request_denied", nil},
		{"proxy not authorized", get("Proxy-Authorization: " + basic("carol", alicePW) + "\r\n"), 403, "proxy-not-authorized", "http_request_denied", nil},
		{"internal destination", connect("intranet.test:80", alice), 403, "egress-denied", "destination_ip_prohibited", nil},
		{"denied port", connect("origin.test:25", alice), 403, "port-denied", "http_request_denied", nil},
		{"no such host", connect("nowhere.test:443", alice), 502, "dns-failed", "dns_error", map[string]any{"rcode": "NXDOMAIN"}},
		{"refused", get(alice + "X-ProxyMesh-IP: 127.0.0.2\r\n"), 502, "upstream-failed", "connection_refused", nil},
		{"connect timeout", get(alice + "X-ProxyMesh-IP: 127.0.0.3\r\nX-ProxyMesh-Timeout: 0.2\r\n"), 504, "timeout", "connection_timeout", nil},
		{"no exit in country", get(alice + "X-ProxyMesh-Country: FR\r\n"), 503, "no-exit-in-country", "destination_unavailable", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := e.raw(c.request)
			if resp.StatusCode != c.status || resp.Header.Get("X-ProxyMesh-Error") != c.reason {
				t.Fatalf("%s %q (%s), want %d %s", resp.Status, resp.Header.Get("X-ProxyMesh-Error"), body, c.status, c.reason)
			}
			name, params := proxyStatus(t, resp)
			if name != "exitmesh" {
				t.Errorf("Proxy-Status names %q, want the node's name exitmesh", name)
			}
			if typ, _ := params.Get("error"); typ != httpsfv.Token(c.typ) {
				t.Errorf("Proxy-Status error = %v, want the token %s", typ, c.typ)
			}
			for k, want := range c.params {
				if got, _ := params.Get(k); got != want {
					t.Errorf("Proxy-Status %s = %v, want %v", k, got, want)
				}
			}
		})
	}
	resp, body := e.raw(connect("nowhere.test:443", alice))
	if want := "Could not resolve nowhere.test.\n"; body != want {
		t.Errorf("dns-failed body %q, want %q (%s)", body, want, resp.Status)
	}
}

// A request that reaches the proxy after Shutdown began, on a connection kept alive (here pipelined
// behind a request still being answered), is answered 503 shutting-down with Connection: close.
func TestRequestDuringShutdownIsRefused(t *testing.T) {
	e := newEnv(t)
	held, release := make(chan struct{}), make(chan struct{})
	e.mux.HandleFunc("/hold", func(w http.ResponseWriter, _ *http.Request) {
		close(held)
		<-release
		io.WriteString(w, "done")
	})
	origin := strings.TrimPrefix(e.origin.URL, "http://")
	c, err := net.Dial("tcp", e.proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	auth := "Proxy-Authorization: " + basic("alice", alicePW) + "\r\n"
	io.WriteString(c, "GET http://"+origin+"/hold HTTP/1.1\r\nHost: "+origin+"\r\n"+auth+"\r\n"+
		"GET http://"+origin+"/ip HTTP/1.1\r\nHost: "+origin+"\r\n"+auth+"\r\n")
	<-held
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- e.srv.Shutdown(ctx)
	}()
	testwait.For(t, "the proxy to stop accepting", func() error {
		if c, err := net.Dial("tcp", e.proxyAddr); err == nil {
			c.Close()
			return errors.New("still accepting")
		}
		return nil
	})
	close(release)
	br := bufio.NewReader(c)
	first, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, first.Body)
	if first.StatusCode != 200 {
		t.Fatalf("the request in flight got %s, want 200", first.Status)
	}
	second, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the request behind it got no answer: %v", err)
	}
	if second.StatusCode != 503 || second.Header.Get("X-ProxyMesh-Error") != "shutting-down" || !second.Close {
		t.Errorf("%s %q close=%v, want 503 shutting-down with Connection: close", second.Status, second.Header.Get("X-ProxyMesh-Error"), second.Close)
	}
	if _, params := proxyStatus(t, second); params != nil {
		if typ, _ := params.Get("error"); typ != httpsfv.Token("proxy_internal_error") {
			t.Errorf("Proxy-Status error = %v, want proxy_internal_error", typ)
		}
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}
