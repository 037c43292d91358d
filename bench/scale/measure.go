package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/exitmesh/exitmesh/bench/benchstore"
	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/domain"
	"github.com/exitmesh/exitmesh/internal/store"
)

// The node under measurement: a fresh store (SQLite in a fresh directory, or a fresh PostgreSQL
// schema), one proxy server with one loopback exit, egress to the harness's origin only, per-client
// limits lifted (the harness is one client), and the default sync interval (500 ms). Changes come from
// this process: on SQLite the node follows them by polling, on PostgreSQL it is notified. On PostgreSQL
// a second node (%[3]s) follows the same store, and the one measured is the other.
const nodeConfig = `store: %[1]q
node: {name: %[3]s, api: false}
metrics: {listen: "off"}
proxies:
  - {name: %[3]s, listen: "127.0.0.1:%[2]d", exits: [{ip: 127.0.0.2}]}
egress: {allow: [127.0.0.1/32]}
plans:
  - {name: scale, proxies: 2, subs: 1, ips: 20, hostnames: 0, bandwidth: 0}
limits: {connections_per_ip: 1000000, connections_per_account: 1000000}
timeouts: {shutdown: 2s}
log: {level: info}
`

// result is what one account count measured.
type result struct {
	n, logins    int
	seed         time.Duration   // writing the accounts through the bulk path
	serving      time.Duration   // from the node's start to its first proxied answer
	loadLine     string          // the node's own log of its full load
	rssKiB       int64           // the node's resident memory, serving, before the storm
	baseKiB      int64           // the same of a node holding no account but the probe
	propagation  []time.Duration // per change: from the commit to the proxy honouring it
	lost         int             // changes not honoured within propagationLimit
	cpuPerChange time.Duration   // node CPU per change, idle CPU taken off
	quiet, storm float64         // keep-alive requests per second without and during changes
	// The share of its CPU the node used during each keep-alive run: below 100%, what limited the
	// rate was the load's side (wrk, the origin, and during changes the writer, the database and the
	// other node, all on the other CPU), not the node.
	quietBusy, stormBusy float64
}

func (r result) summary() string {
	p50, p99, worst := percentiles(r.propagation)
	return fmt.Sprintf("%s accounts: serving after %v, %.0f B/login, propagation p50 %v p99 %v max %v (%d lost), %v CPU/change, %.0f → %.0f req/s (node CPU %.0f%% → %.0f%%)",
		thousands(r.n), r.serving.Round(time.Millisecond), r.rssPerLogin(), p50, p99, worst, r.lost, r.cpuPerChange, r.quiet, r.storm,
		100*r.quietBusy, 100*r.stormBusy)
}

func (r result) rssPerLogin() float64 { return float64(r.rssKiB) * 1024 / float64(r.logins) }

// rssPerLoginAdded is the memory the logins add to a node that holds none.
func (r result) rssPerLoginAdded() float64 {
	return float64(r.rssKiB-r.baseKiB) * 1024 / float64(r.logins)
}

// propagationLimit is how long a change may take before it counts as lost.
const propagationLimit = 30 * time.Second

// baseline returns the resident memory of a node serving with no account but the probe.
func baseline(ctx context.Context, o options) (int64, error) {
	r, err := startSeeded(ctx, o, 0, func(nd *nodeProc, _, _ string) (result, error) {
		rss, err := rssKiB(nd.pid())
		return result{rssKiB: rss}, err
	})
	return r.rssKiB, err
}

func measureSize(ctx context.Context, o options, n int) (result, error) {
	return startSeeded(ctx, o, n, func(nd *nodeProc, proxyAddr, target string) (result, error) {
		return measureNode(ctx, o, n, nd, proxyAddr, target)
	})
}

// startSeeded seeds a store with n accounts, starts a node on it, waits until it serves, and runs
// measure on it.
func startSeeded(ctx context.Context, o options, n int, measure func(nd *nodeProc, proxyAddr, target string) (result, error)) (r result, err error) {
	var other *nodeProc                    // on PostgreSQL, the node not measured
	started := func() error { return nil } // starts it
	dir, err := os.MkdirTemp("", "exitmesh-scale-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	origin, err := startOrigin()
	if err != nil {
		return r, err
	}
	defer origin.Close()
	port, err := freePort()
	if err != nil {
		return r, err
	}
	dsn := "sqlite:" + filepath.Join(dir, "exitmesh.db")
	if o.pg != "" {
		var drop func()
		if dsn, drop, err = freshSchema(ctx, o.pg); err != nil {
			return r, err
		}
		defer drop()
	}
	cfgPath := filepath.Join(dir, "exitmesh.yaml")
	if err := os.WriteFile(cfgPath, fmt.Appendf(nil, nodeConfig, dsn, port, "scale"), 0o644); err != nil {
		return r, err
	}
	if o.pg != "" { // the other node: it hosts the second proxy server, and follows the store too
		otherPort, err := freePort()
		if err != nil {
			return r, err
		}
		otherCfg := filepath.Join(dir, "other.yaml")
		if err := os.WriteFile(otherCfg, fmt.Appendf(nil, nodeConfig, dsn, otherPort, "other"), 0o644); err != nil {
			return r, err
		}
		defer func() {
			if other != nil {
				other.stop()
			}
		}()
		// It starts first, on the harness's CPU, and has loaded its view before the measured node
		// starts: what is measured is one node starting alone and serving, as when a node of a running
		// network restarts, not two starts sharing one CPU.
		started = func() error {
			var err error
			if other, err = startNode(ctx, o.bin, dir, otherCfg, "other.log", "1"); err != nil {
				return err
			}
			return other.waitLoaded(ctx)
		}
	}
	r.n, r.logins = n, n+n/4+1
	if err := seed(ctx, cfgPath, n, &r); err != nil {
		return r, err
	}

	fmt.Fprintf(os.Stderr, "%s accounts seeded in %v; starting the node\n", thousands(n), r.seed.Round(time.Second))
	if err := started(); err != nil {
		return r, err
	}
	nd, err := startNode(ctx, o.bin, dir, cfgPath, "node.log", "0")
	if err != nil {
		return r, err
	}
	defer nd.stop()
	proxyAddr := "127.0.0.1:" + strconv.Itoa(port)
	target := "http://" + origin.Listener.Addr().String() + "/"
	begin := nd.started
	if err := waitServing(ctx, proxyAddr, target); err != nil {
		return r, fmt.Errorf("%w (see %s)", err, nd.logPath)
	}
	serving := time.Since(begin)
	time.Sleep(2 * time.Second)
	m, err := measure(nd, proxyAddr, target)
	m.n, m.logins, m.seed, m.serving, m.loadLine = r.n, r.logins, r.seed, serving, nd.loadLine()
	return m, err
}

// measureNode measures a serving node seeded with n accounts: its memory, then the change storms.
func measureNode(ctx context.Context, o options, n int, nd *nodeProc, proxyAddr, target string) (r result, err error) {
	st, err := store.Open(ctx, nd.dsn)
	if err != nil {
		return r, err
	}
	defer st.Close()
	changes := &changer{store: st, n: n}
	idle := nd.cpuOver(10 * time.Second) // and the memory the start left settles
	if r.rssKiB, err = rssKiB(nd.pid()); err != nil {
		return r, err
	}
	fmt.Fprintf(os.Stderr, "serving; %.0f MiB, idle CPU %v per 10 s; storm with pollers\n", float64(r.rssKiB)/1024, idle)
	if r.propagation, r.lost, err = changes.stormWithPollers(ctx, o, proxyAddr, target); err != nil {
		return r, err
	}
	const cpuStorm = 20 * time.Second
	before := cpuTime(nd.pid())
	made, err := changes.storm(ctx, o.rate, cpuStorm)
	if err != nil {
		return r, err
	}
	time.Sleep(time.Second) // the last changes are applied
	used := cpuTime(nd.pid()) - before - idle*(cpuStorm+time.Second)/(10*time.Second)
	r.cpuPerChange = max(used, 0) / time.Duration(made)

	if r.quiet, r.quietBusy, err = nd.keepAlive(ctx, o.loadDur, proxyAddr, target); err != nil {
		return r, err
	}
	stormDone := make(chan error, 1)
	go func() {
		_, err := changes.storm(ctx, o.rate, o.loadDur+2*time.Second)
		stormDone <- err
	}()
	time.Sleep(time.Second)
	if r.storm, r.stormBusy, err = nd.keepAlive(ctx, o.loadDur, proxyAddr, target); err != nil {
		return r, err
	}
	return r, <-stormDone
}

// seed writes n accounts (and a quarter as many sub-accounts) through the store's bulk path, then
// the probe account the harness's own requests authenticate as, by 127.0.0.1.
func seed(ctx context.Context, cfgPath string, n int, r *result) error {
	begin := time.Now()
	err := benchstore.Seed(ctx, cfgPath, "scale-password", n+1, func(i int, hash string) domain.BulkAccount {
		if i == n {
			return domain.BulkAccount{Account: domain.NewAccount{Username: "probe", PasswordHash: hash, Plan: "scale",
				Confirmed: true, Proxies: []string{"scale"}, IPs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}}
		}
		b := domain.BulkAccount{Account: domain.NewAccount{Username: accountName(i), PasswordHash: hash, Plan: "scale",
			Confirmed: true, Proxies: []string{"scale"}, IPs: []netip.Addr{storedIP(i)}}}
		if i%4 == 0 {
			b.Subs = []domain.NewSubAccount{{Username: accountName(i) + "-s", PasswordHash: hash, Proxies: []string{"scale"}}}
		}
		return b
	})
	r.seed = time.Since(begin)
	return err
}

func accountName(i int) string { return fmt.Sprintf("acct%07d", i) }

// storedIP is account i's authorized IP: in 100.64.0.0/10 (shared address space), stored and never
// reached.
func storedIP(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{100, 64 + byte(i>>16), byte(i >> 8), byte(i)})
}

// changer makes changes from this process, as an operator's admin command or another node would.
type changer struct {
	store domain.Store
	n     int
	next  int // changes made so far: each adds a new loopback IP to an account
}

// change authorizes a new loopback address for an account spread over the store, and returns it.
func (c *changer) change(ctx context.Context) (netip.Addr, error) {
	k := c.next
	c.next++
	ip := netip.AddrFrom4([4]byte{127, 1 + byte(k>>16), byte(k >> 8), byte(k)})
	account := accountName(k * 7919 % c.n)
	return ip, c.store.AddIP(ctx, account, ip)
}

// storm makes rate changes a second for d and returns how many it made.
func (c *changer) storm(ctx context.Context, rate int, d time.Duration) (int, error) {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	end := time.Now().Add(d)
	made := 0
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return made, ctx.Err()
		case <-tick.C:
		}
		if _, err := c.change(ctx); err != nil {
			return made, err
		}
		made++
	}
	return made, nil
}

// stormWithPollers makes changes at o.rate for o.storm; after each commit a poller asks the proxy
// every 10 ms, from the address just authorized, until it is served.
func (c *changer) stormWithPollers(ctx context.Context, o options, proxyAddr, target string) ([]time.Duration, int, error) {
	tick := time.NewTicker(time.Second / time.Duration(o.rate))
	defer tick.Stop()
	var mu sync.Mutex
	var took []time.Duration
	lost := 0
	var wg sync.WaitGroup
	end := time.Now().Add(o.storm)
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-tick.C:
		}
		ip, err := c.change(ctx)
		if err != nil {
			return nil, 0, err
		}
		committed := time.Now()
		wg.Go(func() {
			d, ok := pollUntilServed(ctx, proxyAddr, target, ip, committed)
			mu.Lock()
			defer mu.Unlock()
			if ok {
				took = append(took, d)
			} else {
				lost++
			}
		})
	}
	wg.Wait()
	return took, lost, nil
}

// pollUntilServed asks the proxy from ip until it answers 200, and returns how long after committed.
func pollUntilServed(ctx context.Context, proxyAddr, target string, ip netip.Addr, committed time.Time) (time.Duration, bool) {
	tr := &http.Transport{
		Proxy:             http.ProxyURL(&url.URL{Scheme: "http", Host: proxyAddr}),
		DisableKeepAlives: true,
		DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: ip.AsSlice()}, Timeout: time.Second}).DialContext,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	for time.Since(committed) < propagationLimit && ctx.Err() == nil {
		resp, err := client.Get(target)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(committed), true
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, false
}

// waitServing waits until the proxy serves the probe account (authorized by 127.0.0.1).
func waitServing(ctx context.Context, proxyAddr, target string) error {
	tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: proxyAddr}), DisableKeepAlives: true}
	client := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	deadline := time.Now().Add(15 * time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		resp, err := client.Get(target)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("the proxy did not serve within 15 minutes")
}

// keepAlive runs wrk, 64 keep-alive connections, through the proxy for d and returns requests per
// second.
func keepAlive(ctx context.Context, d time.Duration, proxyAddr, target string) (float64, error) {
	script, err := os.CreateTemp("", "scale-*.lua")
	if err != nil {
		return 0, err
	}
	defer os.Remove(script.Name())
	fmt.Fprintf(script, "wrk.method = \"GET\"\nwrk.path = %q\nwrk.headers[\"Host\"] = %q\n", target,
		strings.TrimSuffix(strings.TrimPrefix(target, "http://"), "/"))
	script.Close()
	secs := strconv.Itoa(max(1, int(d/time.Second)))
	out, err := exec.CommandContext(ctx, "taskset", "-c", "1", "wrk", "-t1", "-c64", "-d"+secs+"s", "--timeout", "5s",
		"-s", script.Name(), "http://"+proxyAddr+"/").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("wrk: %v: %s", err, out)
	}
	m := regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("wrk printed no rate: %s", out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// keepAlive runs keepAlive against the node and returns, with the rate, the share of a CPU the node
// used meanwhile.
func (p *nodeProc) keepAlive(ctx context.Context, d time.Duration, proxyAddr, target string) (rate, busy float64, err error) {
	before, began := cpuTime(p.pid()), time.Now()
	if rate, err = keepAlive(ctx, d, proxyAddr, target); err != nil {
		return 0, 0, err
	}
	return rate, float64(cpuTime(p.pid())-before) / float64(time.Since(began)), nil
}

// nodeProc is the running node.
type nodeProc struct {
	cmd     *exec.Cmd
	logPath string
	dsn     string // its store
	started time.Time
	exited  chan struct{} // closed when the process has exited, err its Wait's result
	err     error
}

// startNode starts a node on the CPUs cpus (taskset's list).
func startNode(ctx context.Context, bin, dir, cfgPath, logName, cpus string) (*nodeProc, error) {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, logName)
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "taskset", "-c", cpus, bin, "serve", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = f, f
	p := &nodeProc{cmd: cmd, logPath: logPath, dsn: cfg.Store, started: time.Now(), exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.exited)
	}()
	return p, nil
}

func (p *nodeProc) pid() int { return p.cmd.Process.Pid }

func (p *nodeProc) stop() {
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// waitLoaded waits until the node has logged its full load.
func (p *nodeProc) waitLoaded(ctx context.Context) error {
	deadline := time.Now().Add(15 * time.Minute)
	for p.loadLine() == "" {
		select {
		case <-p.exited:
			return fmt.Errorf("the node stopped before it loaded: %v (see %s)", p.err, p.logPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the node did not load within 15 minutes (see %s)", p.logPath)
		}
	}
	return nil
}

// loadLine returns the node's log line of its full load at start, without the time stamp.
func (p *nodeProc) loadLine() string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); strings.Contains(line, "account view loaded in full") {
			if _, rest, ok := strings.Cut(line, " level="); ok {
				return "level=" + rest
			}
			return line
		}
	}
	return ""
}

// cpuOver returns the CPU the node uses over d doing nothing asked of it.
func (p *nodeProc) cpuOver(d time.Duration) time.Duration {
	before := cpuTime(p.pid())
	time.Sleep(d)
	return cpuTime(p.pid()) - before
}

// cpuTime returns a process's CPU time, user and system, from /proc/PID/stat (in USER_HZ, 100/s).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

// rssKiB reads a process's resident memory.
func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS for %d", pid)
}

func percentiles(ds []time.Duration) (p50, p99, worst time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return at(0.50).Round(time.Millisecond), at(0.99).Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
