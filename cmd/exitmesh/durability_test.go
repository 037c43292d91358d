package main_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, for the integrity check

	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/origin"
)

// write is one change the test sent to the account API: the state it brings key to ("" is absent),
// and whether the node acknowledged it (200 or 204).
type write struct {
	key, state string
	acked      bool
}

// writer sends changes one after another and records each. It stops at the first one the node does
// not answer, so at most its last write is unacknowledged.
type writer struct {
	n      *storeNode
	acks   *ackCount
	writes []write
}

// ackCount counts acknowledged writes across writers and closes reached when the count gets to at.
type ackCount struct {
	n       atomic.Int64
	at      int64
	reached chan struct{}
}

func (a *ackCount) add() {
	if a.n.Add(1) == a.at {
		close(a.reached)
	}
}

// send makes one change and reports whether the node acknowledged it.
func (w *writer) send(key, state, path string, form url.Values) bool {
	status, body, err := w.n.call(http.MethodPost, path, form)
	switch {
	case err != nil:
		w.writes = append(w.writes, write{key: key, state: state})
		return false
	case status != http.StatusOK && status != http.StatusNoContent:
		w.n.t.Errorf("POST %s %v: %d %s", path, form, status, body)
		return false
	}
	w.writes = append(w.writes, write{key: key, state: state, acked: true})
	w.acks.add()
	return true
}

// subIPs are the account's IPs every sub-account the test creates gets, with proxy us-ca.
var subIPs = []string{"127.0.0.10", "127.0.0.11"}

// ipWriter authorizes IPs of its own and deletes every other one again.
func ipWriter(id int) func(w *writer) {
	return func(w *writer) {
		for i := 0; ; i++ {
			ip := fmt.Sprintf("127.%d.%d.%d", 1+id, i/250, i%250+1)
			form := url.Values{"ip": {ip}}
			if !w.send("ip "+ip, "present", "/api/ip/add/", form) {
				return
			}
			if i%2 == 1 && !w.send("ip "+ip, "", "/api/ip/delete/", form) {
				return
			}
		}
	}
}

// subWriter creates two sub-accounts at a time, then disables the first and deletes the second.
func subWriter(id int) func(w *writer) {
	return func(w *writer) {
		for i := 0; ; i++ {
			a, b := fmt.Sprintf("w%d-a%d", id, i), fmt.Sprintf("w%d-b%d", id, i)
			for _, name := range []string{a, b} {
				form := url.Values{"username": {name}, "password": {"sub-password-1"}, "proxies": {"us-ca"}, "ips": subIPs}
				if !w.send("sub "+name, "active", "/api/sub/create/", form) {
					return
				}
			}
			if !w.send("sub "+a, "inactive", "/api/sub/edit/", url.Values{"username": {a}, "active": {"false"}}) ||
				!w.send("sub "+b, "", "/api/sub/delete/", url.Values{"username": {b}}) {
				return
			}
		}
	}
}

// proxyWriter adds and removes the account's second and third proxy servers in turn.
func proxyWriter(w *writer) {
	for {
		for _, step := range []struct{ name, state, path string }{
			{"us-ny", "present", "/api/proxy/add/"}, {"eu-de", "present", "/api/proxy/add/"},
			{"us-ny", "", "/api/proxy/delete/"}, {"eu-de", "", "/api/proxy/delete/"},
		} {
			if !w.send("proxy "+step.name, step.state, step.path, url.Values{"proxy": {step.name}}) {
				return
			}
		}
	}
}

// readState reads through the API what the writers change: "ip X" and "proxy NAME" are "present",
// "sub NAME" is "active" or "inactive". Every sub-account must be whole: created with its proxy
// server and both IPs, or absent.
func readState(t *testing.T, n *storeNode) map[string]string {
	t.Helper()
	var lists struct {
		IPs     []string `json:"ips"`
		Proxies []string `json:"proxies"`
		Subs    []struct {
			Username string   `json:"username"`
			Proxies  []string `json:"proxies"`
			IPs      []string `json:"ips"`
			Active   bool     `json:"active"`
		} `json:"subs"`
	}
	for _, path := range []string{"/api/ips/", "/api/proxies/", "/api/subs/"} {
		status, body, err := n.call(http.MethodGet, path, nil)
		if err != nil || status != http.StatusOK {
			t.Fatalf("GET %s after the restart: %d %s %v", path, status, body, err)
		}
		if err := json.Unmarshal([]byte(body), &lists); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	state := map[string]string{}
	for _, ip := range lists.IPs {
		state["ip "+ip] = "present"
	}
	for _, addr := range lists.Proxies {
		state["proxy "+strings.TrimSuffix(addr, ".test:31280")] = "present"
	}
	for _, s := range lists.Subs {
		if fmt.Sprint(s.Proxies) != "[us-ca.test:31280]" || !slices.Equal(s.IPs, subIPs) {
			t.Errorf("sub-account %s has proxies %v and IPs %v, want all of [us-ca.test:31280] and %v: a half-applied write",
				s.Username, s.Proxies, s.IPs, subIPs)
		}
		state["sub "+s.Username] = map[bool]string{true: "active", false: "inactive"}[s.Active]
	}
	return state
}

// requireDurable requires that state shows every key as its last acknowledged write left it, or as
// the unanswered write after that (committed or not, both are right), and nothing no write made.
func requireDurable(t *testing.T, writers []*writer, state map[string]string) {
	t.Helper()
	allowed := map[string][]string{}
	for _, w := range writers {
		for _, wr := range w.writes {
			before, ok := allowed[wr.key]
			switch {
			case wr.acked:
				allowed[wr.key] = []string{wr.state}
			case ok:
				allowed[wr.key] = append(slices.Clone(before), wr.state)
			default:
				allowed[wr.key] = []string{"", wr.state}
			}
		}
	}
	for key, want := range allowed {
		if got := state[key]; !slices.Contains(want, got) {
			t.Errorf("after the restart %s is %q, want %q", key, got, want)
		}
	}
	for key, got := range state {
		if _, ok := allowed[key]; !ok {
			t.Errorf("after the restart %s is %q, which no write made", key, got)
		}
	}
}

// requireIntact runs SQLite's integrity check on the file the killed process left, before anything
// else opens it.
func requireIntact(t *testing.T, dsn string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+strings.TrimPrefix(dsn, "sqlite:"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var result string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&result); err != nil || result != "ok" {
		t.Errorf("integrity check of the database the killed node left: %q %v", result, err)
	}
}

// TestAcknowledgedWritesSurviveSIGKILL kills a node with SIGKILL while six clients are writing
// through the account API, without stopping them first, and restarts it on the same store: every
// change the node acknowledged is there, and no sub-account is half-created.
func TestAcknowledgedWritesSurviveSIGKILL(t *testing.T) {
	const killAfter = 200 // acknowledged writes
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			n := newStoreNode(t, b, "10s")
			n.start()
			setup := &writer{n: n, acks: &ackCount{}, writes: []write{{key: "proxy us-ca", state: "present", acked: true}}}
			for _, ip := range subIPs {
				if !setup.send("ip "+ip, "present", "/api/ip/add/", url.Values{"ip": {ip}}) {
					t.Fatalf("authorizing %s failed", ip)
				}
			}

			acks := &ackCount{at: killAfter, reached: make(chan struct{})}
			programs := []func(*writer){ipWriter(0), ipWriter(1), ipWriter(2), subWriter(0), subWriter(1), proxyWriter}
			writers := []*writer{setup}
			stopped := make(chan struct{})
			var once sync.Once
			var wg sync.WaitGroup
			for _, program := range programs {
				w := &writer{n: n, acks: acks}
				writers = append(writers, w)
				wg.Go(func() {
					program(w)
					once.Do(func() { close(stopped) }) // normally the kill ends every writer
				})
			}
			select {
			case <-acks.reached:
			case <-stopped:
			}
			n.proc.kill(t)
			atKill := acks.n.Load()
			wg.Wait()
			if atKill < killAfter {
				t.Fatalf("a writer stopped after %d acknowledged writes, before the kill", atKill)
			}
			unanswered := 0
			for _, w := range writers {
				for _, wr := range w.writes {
					if !wr.acked {
						unanswered++
					}
				}
			}
			t.Logf("SIGKILL after %d acknowledged writes (%d counted by then, %d in all); %d writes unanswered",
				killAfter, atKill, acks.n.Load(), unanswered)

			if b.name == "sqlite" {
				requireIntact(t, n.dsn)
			}
			n.start()
			state := readState(t, n)
			requireDurable(t, writers, state)
			t.Logf("after the restart the API shows %d IPs, proxy servers and sub-accounts", len(state))
			n.proc.stop(t, syscall.SIGTERM)
		})
	}
}

// TestUsageLossBoundedByFlushInterval shows what a node's usage survives: a SIGTERM flushes all of
// it, a SIGKILL loses exactly what was recorded since the last flush, and what a periodic flush wrote
// is never lost.
func TestUsageLossBoundedByFlushInterval(t *testing.T) {
	originSrv := httptest.NewServer(origin.Handler())
	t.Cleanup(originSrv.Close)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			n := newStoreNode(t, b, "1h") // no periodic flush during phases 1 and 2
			// Each answer is the exit's address, "127.0.0.N\n": 10 bytes.
			send := func(requests int) {
				t.Helper()
				c := proxyClient("http://alice:"+alicePassword+"@"+n.addrs["us-ca"], nil)
				for range requests {
					if body, resp := get(t, c, originSrv.URL+"/ip", nil); resp.StatusCode != 200 || len(body) != 9 {
						t.Fatalf("request through us-ca: %d %q", resp.StatusCode, body)
					}
				}
			}
			counts := func(requests int64) domain.UsageCounts {
				return domain.UsageCounts{BytesOut: 10 * requests, Requests: requests}
			}

			// 1. SIGTERM: the final flush writes everything.
			n.start()
			send(5)
			n.proc.stop(t, syscall.SIGTERM)
			if got := n.usage(); got != counts(5) {
				t.Fatalf("after SIGTERM the store holds %+v, want %+v", got, counts(5))
			}

			// 2. SIGKILL before the first periodic flush: those 7 requests are lost, nothing else.
			n.start()
			send(7)
			n.proc.kill(t)
			if got := n.usage(); got != counts(5) {
				t.Fatalf("after SIGKILL within the flush interval the store holds %+v, want %+v: only the flushed usage", got, counts(5))
			}

			// 3. Flushes every 200ms: once a flush has written 6 more requests, 8 sent right before the
			// SIGKILL may be lost, but those 6 are not; no batch is half-written or counted twice.
			n.configure("200ms")
			n.start()
			send(6)
			eventually(t, func() error {
				if got := n.usage(); got != counts(11) {
					return fmt.Errorf("the store holds %+v, want %+v after a periodic flush", got, counts(11))
				}
				return nil
			})
			send(8)
			n.proc.kill(t)
			got := n.usage()
			if got.Requests < 11 || got.Requests > 19 || got != counts(got.Requests) {
				t.Fatalf("after SIGKILL the store holds %+v, want 11 to 19 requests of 10 bytes each", got)
			}
			t.Logf("usage: 5 flushed at SIGTERM; 7 lost to SIGKILL within the interval; 6 flushed periodically "+
				"and 8 sent right before SIGKILL: the store holds %d requests (%d of the 8 were flushed in time)", got.Requests, got.Requests-11)
		})
	}
}
