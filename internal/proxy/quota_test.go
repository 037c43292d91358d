package proxy_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/egress"
	"github.com/exitmesh/exitmesh/internal/proxy"
	"github.com/exitmesh/exitmesh/internal/store"
	"github.com/exitmesh/exitmesh/internal/tcptest"
	"github.com/exitmesh/exitmesh/internal/testwait"
	"github.com/exitmesh/exitmesh/internal/usage"
)

// quotaLimit is the monthly bandwidth of the "tiny" plan the quota tests' accounts are on.
const quotaLimit = 10_000

// meterInterval is how often the quota tests' proxy meters open transfers.
const meterInterval = 100 * time.Millisecond

// quotaEnv is a proxy server whose accounts and usage live in a real SQLite store: dave, his
// sub-account dave-bot, and erin, all on the tiny plan.
type quotaEnv struct {
	*env
	st         domain.Store
	view       *auth.View
	rec        *usage.Recorder
	dave, erin int64 // account ids
}

// spent is the account's bytes in its billing period, its sub-accounts' included, as the proxy sees them.
func (q *quotaEnv) spent(account int64) int64 {
	return q.rec.Figures(usage.Login{AccountID: account, BillingDay: 1}).AccountPeriod
}

// reload makes the proxy's view what the store holds now.
func (q *quotaEnv) reload(t *testing.T) {
	t.Helper()
	snap, err := q.st.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	q.view.Load(snap)
}

func newQuotaEnv(t *testing.T) *quotaEnv {
	t.Helper()
	ctx := t.Context()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "quota.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.PutPlan(ctx, domain.Plan{Name: "tiny", MaxProxies: 1, MaxSubs: 2, MaxIPs: 1, MonthlyBandwidth: quotaLimit}))
	must(st.PutProxyServer(ctx, domain.ProxyServer{Name: "us-ca", Address: "127.0.0.1:1"}))
	h := hashes()
	create := func(name string) int64 {
		a, err := st.CreateAccount(ctx, domain.NewAccount{Username: name, PasswordHash: h[alicePW], Plan: "tiny",
			Confirmed: true, Proxies: []string{"us-ca"}})
		must(err)
		return a.ID
	}
	q := &quotaEnv{st: st, dave: create("dave"), erin: create("erin")}
	_, err = st.CreateSubAccount(ctx, "dave", domain.NewSubAccount{Username: "dave-bot", PasswordHash: h[subPW], Proxies: []string{"us-ca"}})
	must(err)
	snap, err := st.Snapshot(ctx)
	must(err)
	q.view = auth.NewView(nil)
	q.view.Load(snap)
	q.rec = usage.NewRecorder(st)
	q.env = newEnv(t, func(c *proxy.Config, _ *egress.Dialer) {
		c.Accounts, c.Usage, c.MeterInterval = q.view, q.rec, meterInterval
	})
	return q
}

// attempt is one request through the proxy: its status and X-ProxyMesh-Error, and the bytes it
// moved (request and response bodies, or everything through a tunnel) when it was served.
type attempt func() (status int, reason string, bytes int64)

// spendUntilRefused repeats ex until the proxy refuses it, and checks each answer against the
// account's bytes so far, computed from what each served request moved: served while they are below
// the limit, 509 bandwidth-exceeded from the first request after they reach it. Between requests it
// flushes the usage to the store and refreshes from it, so the count is also checked across that
// round trip. It returns how many requests were served.
func (q *quotaEnv) spendUntilRefused(t *testing.T, account int64, ex attempt) int {
	t.Helper()
	spent := q.spent(account)
	for served := 0; served < 1000; served++ {
		status, reason, n := ex()
		if spent >= quotaLimit {
			if status != proxy.StatusBandwidthExceeded || reason != "bandwidth-exceeded" {
				t.Fatalf("request %d with %d of %d bytes spent: %d %q, want 509 bandwidth-exceeded", served+1, spent, quotaLimit, status, reason)
			}
			return served
		}
		if status != http.StatusOK {
			t.Fatalf("request %d with %d of %d bytes spent: %d %q, want 200", served+1, spent, quotaLimit, status, reason)
		}
		spent += n
		// A tunnel is counted when it closes, which the client may see a moment before the proxy does.
		eventually(t, fmt.Sprintf("month-to-date after request %d", served+1), func() error {
			if got := q.spent(account); got != spent {
				return fmt.Errorf("figure = %d, want %d", got, spent)
			}
			return nil
		})
		switch served % 3 {
		case 1:
			if err := q.rec.Flush(t.Context()); err != nil {
				t.Fatal(err)
			}
		case 2:
			if err := q.rec.Refresh(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Fatal("never refused")
	return 0
}

// eventually waits for check to pass (see testwait).
var eventually = testwait.For

// get is an attempt: GET rawURL through c.
func get(t *testing.T, c *http.Client, rawURL string) attempt {
	return func() (int, string, int64) {
		resp, body := fetch(t, c, rawURL)
		return resp.StatusCode, resp.Header.Get("X-ProxyMesh-Error"), int64(len(body))
	}
}

// requestsNeeded is how many requests of size bytes each reach the limit: the next one is refused.
func requestsNeeded(size int64) int { return int((quotaLimit + size - 1) / size) }

func TestBandwidthLimitOnForwardedRequests(t *testing.T) {
	q := newQuotaEnv(t)
	const size = 2500 // four requests spend the limit exactly: spent and not exceeded is refused too
	dave := q.client("dave", alicePW, nil, nil)
	url := fmt.Sprintf("%s/bytes/%d", q.origin.URL, size)
	if served := q.spendUntilRefused(t, q.dave, get(t, dave, url)); served != requestsNeeded(size) {
		t.Errorf("%d requests of %d bytes served before the 509, want %d", served, size, requestsNeeded(size))
	}

	resp, body := fetch(t, dave, url)
	next := time.Now().UTC().AddDate(0, 1, 1-time.Now().UTC().Day())
	for _, want := range []string{"10 KB", "resets on 1 " + next.Format("January 2006"), "upgrade the plan"} {
		if !strings.Contains(body, want) {
			t.Errorf("509 body %q, want it to say %q", body, want)
		}
	}
	if resp.StatusCode != proxy.StatusBandwidthExceeded || resp.Header.Get("X-ProxyMesh-IP") != "" {
		t.Errorf("refused again: %d, X-ProxyMesh-IP %q; want 509 and no exit named", resp.StatusCode, resp.Header.Get("X-ProxyMesh-IP"))
	}
	if resp, _ := fetch(t, q.client("erin", alicePW, nil, nil), url); resp.StatusCode != http.StatusOK {
		t.Errorf("erin, on the same plan, got %d after dave's bandwidth ran out; want 200", resp.StatusCode)
	}
}

// tcpOrigin is a raw TCP server on 127.0.0.1: it reads request bytes from each connection, then
// writes reply bytes and closes.
func tcpOrigin(t *testing.T, request, reply int) string {
	t.Helper()
	return tcptest.Serve(t, func(c net.Conn) {
		if _, err := io.ReadFull(c, make([]byte, request)); err == nil {
			c.Write(make([]byte, reply))
		}
	})
}

// tunnel is an attempt: CONNECT target as login, send request bytes, read the reply to its end.
func (q *quotaEnv) tunnel(t *testing.T, login, password, target string, request int) attempt {
	return func() (int, string, int64) {
		c, err := net.Dial("tcp", q.proxyAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n", target, target, basic(login, password))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
		if err != nil {
			t.Fatalf("CONNECT %s: %v", target, err)
		}
		reason := resp.Header.Get("X-ProxyMesh-Error")
		if resp.StatusCode != http.StatusOK {
			return resp.StatusCode, reason, 0
		}
		if _, err := c.Write(make([]byte, request)); err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, br)
		if err != nil {
			t.Fatalf("tunnel to %s: %v", target, err)
		}
		return resp.StatusCode, reason, int64(request) + n
	}
}

func TestBandwidthLimitOnTunnels(t *testing.T) {
	q := newQuotaEnv(t)
	const request, reply = 700, 1100 // the sixth tunnel crosses the limit and completes
	target := tcpOrigin(t, request, reply)
	served := q.spendUntilRefused(t, q.dave, q.tunnel(t, "dave", alicePW, target, request))
	if want := requestsNeeded(request + reply); served != want {
		t.Errorf("%d tunnels of %d bytes opened before the 509, want %d", served, request+reply, want)
	}
	if status, _, _ := q.tunnel(t, "erin", alicePW, target, request)(); status != http.StatusOK {
		t.Errorf("erin's CONNECT after dave's bandwidth ran out: %d, want 200", status)
	}
}

func TestSubAccountSpendsItsAccountsBandwidth(t *testing.T) {
	q := newQuotaEnv(t)
	dave, bot := q.client("dave", alicePW, nil, nil), q.client("dave-bot", subPW, nil, nil)
	for range 2 { // dave spends some himself first
		if status, _, _ := get(t, dave, q.origin.URL+"/bytes/2000")(); status != http.StatusOK {
			t.Fatalf("dave: %d", status)
		}
	}
	eventually(t, "dave's own bytes counted", func() error {
		if got := q.spent(q.dave); got != 4000 {
			return fmt.Errorf("figure = %d, want 4000", got)
		}
		return nil
	})
	upload := strings.Repeat("u", 1500)
	post := func() (int, string, int64) { // bytes both ways: the upload, and the origin's digest
		resp, err := bot.Post(q.origin.URL+"/sha256", "text/plain", strings.NewReader(upload))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return resp.StatusCode, resp.Header.Get("X-ProxyMesh-Error"), 0
		}
		return resp.StatusCode, "", int64(len(upload) + len(body))
	}
	// The sub-account is refused from the request after the account's total — dave's 4000 bytes and
	// its own — reaches the limit.
	q.spendUntilRefused(t, q.dave, post)
	if status, reason, _ := get(t, dave, q.origin.URL+"/ip")(); status != proxy.StatusBandwidthExceeded || reason != "bandwidth-exceeded" {
		t.Errorf("dave after his sub-account spent the rest: %d %q, want 509 bandwidth-exceeded", status, reason)
	}
	if got := q.spent(q.erin); got != 0 {
		t.Errorf("erin's month-to-date = %d, want 0", got)
	}
}

// TestCutStreamsAreCounted cuts a streamed answer before its end, the client leaving or Shutdown's
// deadline passing, and requires its delivered bytes counted as a tunnel's are; Shutdown returns only
// once they are.
func TestCutStreamsAreCounted(t *testing.T) {
	const chunk = 1000
	for _, cut := range []string{"the client leaves", "the shutdown deadline passes"} {
		t.Run(cut, func(t *testing.T) {
			q := newQuotaEnv(t)
			q.mux.HandleFunc("/endless", func(w http.ResponseWriter, r *http.Request) {
				w.Write(make([]byte, chunk))
				w.(http.Flusher).Flush()
				<-r.Context().Done()
			})
			resp, err := q.client("dave", alicePW, nil, nil).Get(q.origin.URL + "/endless")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if n, err := io.ReadFull(resp.Body, make([]byte, chunk)); err != nil {
				t.Fatalf("read %d bytes of the stream: %v", n, err)
			}
			if cut == "the client leaves" {
				resp.Body.Close()
				eventually(t, "the stream counted", func() error {
					if got := q.spent(q.dave); got != chunk {
						return fmt.Errorf("figure = %d, want %d", got, chunk)
					}
					return nil
				})
				return
			}
			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			defer cancel()
			q.srv.Shutdown(ctx)
			if got := q.spent(q.dave); got != chunk {
				t.Errorf("after Shutdown figure = %d, want the %d bytes the cut stream delivered", got, chunk)
			}
			if _, err := resp.Body.Read(make([]byte, 1)); err == nil {
				t.Error("the stream still delivers after Shutdown")
			}
		})
	}
}

// TestUpgradedConnectionsAreCounted relays bytes both ways over a connection the origin switched to
// another protocol (101), and requires them counted, as a tunnel's are.
func TestUpgradedConnectionsAreCounted(t *testing.T) {
	q := newQuotaEnv(t)
	q.mux.HandleFunc("/upgrade", echoUpgrade)
	c, br := upgrade(t, q.proxyAddr, q.origin.URL, "dave", alicePW)
	const size = 3000
	c.Write(make([]byte, size))
	if _, err := io.ReadFull(br, make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	const want = int64(2 * (size + len("ping")))
	eventually(t, "the upgraded connection counted", func() error {
		if got := q.spent(q.dave); got != want {
			return fmt.Errorf("figure = %d, want %d", got, want)
		}
		return nil
	})
}

// TestSubAccountLimits: a sub-account with a monthly limit of its own is refused (509, naming its
// limit) once it is spent, while its account and a sibling keep working; then the account's own
// limit, below the plan's, refuses every login of the account.
func TestSubAccountLimits(t *testing.T) {
	q := newQuotaEnv(t)
	ctx := t.Context()
	const subLimit = 3000
	if _, err := q.st.UpdateSubAccount(ctx, "dave", "dave-bot", domain.SubAccountUpdate{MonthlyLimit: ptr(int64(subLimit))}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.st.CreateSubAccount(ctx, "dave", domain.NewSubAccount{Username: "dave-two", PasswordHash: hashes()[subPW], Proxies: []string{"us-ca"}}); err != nil {
		t.Fatal(err)
	}
	q.reload(t)
	bot, two, dave := q.client("dave-bot", subPW, nil, nil), q.client("dave-two", subPW, nil, nil), q.client("dave", alicePW, nil, nil)
	url := q.origin.URL + "/bytes/1000"
	for i := range subLimit / 1000 {
		if status, reason, _ := get(t, bot, url)(); status != http.StatusOK {
			t.Fatalf("dave-bot's request %d within its limit: %d %q", i+1, status, reason)
		}
	}
	eventually(t, "dave-bot's bytes counted", func() error {
		if got := q.rec.Figures(usage.Login{AccountID: q.dave, SubID: subID(t, q, "dave-bot"), BillingDay: 1}).Period; got != subLimit {
			return fmt.Errorf("dave-bot's period figure %d, want %d", got, subLimit)
		}
		return nil
	})
	resp, body := fetch(t, bot, url)
	if resp.StatusCode != proxy.StatusBandwidthExceeded || !strings.HasPrefix(resp.Status, "509 Bandwidth Limit Exceeded") ||
		resp.Header.Get("X-ProxyMesh-Error") != "bandwidth-exceeded" || !strings.Contains(body, "sub-account's monthly bandwidth limit, 3 KB") {
		t.Errorf("dave-bot past its limit: %s %q", resp.Status, body)
	}
	for name, c := range map[string]*http.Client{"dave-two": two, "dave": dave} {
		if status, reason, _ := get(t, c, url)(); status != http.StatusOK {
			t.Errorf("%s while dave-bot's limit is spent: %d %q, want 200", name, status, reason)
		}
	}
	// The account's own limit: 5000 bytes, half the plan's, already spent (3000 + 2000).
	if _, err := q.st.UpdateAccount(ctx, "dave", domain.AccountUpdate{MonthlyLimit: ptr(int64(5000))}); err != nil {
		t.Fatal(err)
	}
	q.reload(t)
	for name, c := range map[string]*http.Client{"dave-two": two, "dave": dave} {
		resp, body := fetch(t, c, url)
		if resp.StatusCode != proxy.StatusBandwidthExceeded || !strings.Contains(body, "the account's monthly bandwidth limit") {
			t.Errorf("%s past the account's own limit: %d %q", name, resp.StatusCode, body)
		}
	}
	if status, _, _ := get(t, q.client("erin", alicePW, nil, nil), url)(); status != http.StatusOK {
		t.Errorf("erin: %d, want 200", status)
	}
}

func ptr[T any](v T) *T { return &v }

func subID(t *testing.T, q *quotaEnv, username string) int64 {
	t.Helper()
	l, err := q.st.GetLogin(t.Context(), username)
	if err != nil {
		t.Fatal(err)
	}
	return l.SubID
}

// pacedOrigin is a TCP server that, once it has read one byte, writes chunk bytes every pace until
// the connection fails.
func pacedOrigin(t *testing.T, chunk int, pace time.Duration) string {
	t.Helper()
	return tcptest.Serve(t, func(c net.Conn) {
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			return
		}
		buf := make([]byte, chunk)
		for {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write(buf); err != nil {
				return
			}
			time.Sleep(pace)
		}
	})
}

// TestTunnelsAreMeteredWhileTheyRun: a tunnel streaming without end is counted while it runs and cut
// once its login's limit is spent, at most the documented bound past it — what it moves in one
// meter interval plus one splice burst (docs/SECURITY.md); an idle tunnel of the same login is cut too.
func TestTunnelsAreMeteredWhileTheyRun(t *testing.T) {
	q := newQuotaEnv(t)
	const chunk, pace = 500, 10 * time.Millisecond // 50 KB/s
	target := pacedOrigin(t, chunk, pace)
	open := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", q.proxyAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n", target, target, basic("dave", alicePW))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("CONNECT: %v %v", resp, err)
		}
		return c, br
	}
	idle, idleReader := open() // opened, then silent: its login's spending elsewhere must end it too
	streaming, br := open()
	streaming.Write([]byte{1})
	start := time.Now()
	read, err := io.Copy(io.Discard, br) // until the proxy cuts it
	elapsed := time.Since(start)
	if err != nil && !errors.Is(err, io.EOF) {
		var ne net.Error
		if !errors.As(err, &ne) || ne.Timeout() {
			t.Fatalf("the stream ended with %v after %d bytes: not cut by the proxy", err, read)
		}
	}
	rate := float64(chunk) / pace.Seconds()
	bound := int64(rate*(meterInterval+500*time.Millisecond).Seconds()) + 2*chunk // interval + one burst, and what was in flight
	t.Logf("the tunnel was cut after %d bytes in %v (limit %d, bound %d past it)", read, elapsed.Round(time.Millisecond), quotaLimit, bound)
	if read < quotaLimit-int64(chunk) {
		t.Errorf("cut after %d bytes, before the limit of %d was reached", read, quotaLimit)
	}
	if read > quotaLimit+bound {
		t.Errorf("cut after %d bytes: %d past the limit, more than the bound of %d", read, read-quotaLimit, bound)
	}
	idle.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := idleReader.ReadByte(); err == nil {
		t.Error("the idle tunnel of the same login delivered a byte")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Error("the idle tunnel of a login whose limit is spent was not ended")
	}
	eventually(t, "the cut tunnel counted", func() error {
		if got := q.spent(q.dave); got != read+1 {
			return fmt.Errorf("dave's figure %d, want the %d bytes the tunnel moved", got, read+1)
		}
		return nil
	})
}
