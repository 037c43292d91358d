package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/bench/benchdoc"
)

// target is one column of the table: the origin straight, or a proxy in front of it.
type target struct {
	name   string
	server *server // nil: direct to the origin
	auth   string  // Proxy-Authorization sent, if any
	// logins are Proxy-Authorization values sent in turn, one per request, instead of auth: many
	// customers' requests interleaved on the connections.
	logins []string
	peer   bool // one of the peers exitmesh is compared with
	socks  bool // tunnels are opened with SOCKS5, not HTTP CONNECT
	kinds  []string
	origin originAddrs
}

// originAddrs are the origin's HTTP, echo and bulk source addresses for one target.
type originAddrs struct{ http, echo, source string }

func (t *target) proxy() string {
	if t.server == nil {
		return ""
	}
	return t.server.addr
}

func (t *target) does(kind string) bool { return slices.Contains(t.kinds, kind) }

// The kinds of measurement, each giving one or more figures.
const (
	kindKeepAlive   = "keep-alive"
	kindNewConn     = "new-conn"
	kindConnect     = "connect"
	kindBulk        = "bulk"
	kindIdle        = "idle"
	kindKeepAlive64 = "keep-alive-64" // the large-store target: the 64-connection run only
)

// bench is a running set of servers and what was measured through them.
type bench struct {
	o       options
	dir     string
	origin  *proc
	targets []*target
	servers []*server
}

func newBench(ctx context.Context, o options) (_ *bench, err error) {
	if _, err := exec.LookPath("taskset"); err != nil {
		return nil, fmt.Errorf("taskset is needed to pin processes: %w", err)
	}
	dir, err := os.MkdirTemp("", "exitmesh-bench-")
	if err != nil {
		return nil, err
	}
	os.Chmod(dir, 0o755)
	b := &bench{o: o, dir: dir}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	const servers, columns = 6, 10 // the ports of the proxies, and the columns with an origin's three each
	ports, err := freePorts(servers + 3*columns)
	if err != nil {
		return nil, err
	}
	all := []string{kindKeepAlive, kindNewConn, kindConnect, kindBulk}
	proxyKinds := append(slices.Clone(all), kindIdle)
	em, err := exitmeshServer(ctx, dir, o.bin, "exitmesh", ports[3], o.proxyCPU, manyLogins, 1)
	if err != nil {
		return nil, err
	}
	emLarge, err := exitmeshServer(ctx, dir, o.bin, "exitmesh-large", ports[4], o.proxyCPU, o.accounts, o.ipsEach)
	if err != nil {
		return nil, err
	}
	candidates := []*target{
		{name: "direct", kinds: all},
		{name: "tinyproxy", server: tinyproxyServer(dir, ports[0], o.proxyCPU), peer: true, kinds: proxyKinds},
		{name: "squid", server: squidServer(dir, ports[1], o.proxyCPU), peer: true, kinds: proxyKinds},
		{name: "goproxy", server: goproxyServer(dir, o.bin, ports[2], o.proxyCPU), peer: true, kinds: proxyKinds},
		{name: "exitmesh", server: em, kinds: proxyKinds},
		{name: "exitmesh Basic", server: em, auth: basicAuth(benchUser, benchPassword),
			kinds: []string{kindKeepAlive, kindNewConn, kindConnect}},
		{name: "exitmesh, " + strconv.Itoa(manyLogins) + " logins", server: em, logins: benchLogins(manyLogins),
			kinds: []string{kindKeepAlive}},
		{name: "exitmesh, " + benchdoc.Thousands(int64(o.accounts)) + " accounts", server: emLarge,
			kinds: []string{kindKeepAlive64}},
		{name: "microsocks", server: microsocksServer(dir, ports[5], o.proxyCPU), socks: true, // beside exitmesh SOCKS5 only
			kinds: []string{kindConnect, kindBulk}},
		{name: "exitmesh SOCKS5", server: em, socks: true, kinds: []string{kindConnect, kindBulk}},
	}
	// Every target has origin ports of its own (see bench/origin).
	var https, echos, sources []string
	for i, t := range candidates {
		p := ports[servers+3*i:]
		t.origin = originAddrs{http: loopback(p[0]), echo: loopback(p[1]), source: loopback(p[2])}
		https, echos, sources = append(https, t.origin.http), append(echos, t.origin.echo), append(sources, t.origin.source)
	}
	b.origin, err = start(dir, "origin", o.loadCPU, filepath.Join(o.bin, "origin"), "-http", strings.Join(https, ","),
		"-echo", strings.Join(echos, ","), "-source", strings.Join(sources, ","))
	if err != nil {
		return nil, err
	}
	if err := waitListening(ctx, b.origin, sources[len(sources)-1]); err != nil {
		return nil, err
	}
	for _, t := range candidates {
		if o.only != "" && !slices.ContainsFunc(strings.Split(o.only, ","), func(n string) bool {
			return strings.HasPrefix(t.name, strings.TrimSpace(n))
		}) {
			continue
		}
		b.targets = append(b.targets, t)
		if t.server != nil && !slices.Contains(b.servers, t.server) {
			b.servers = append(b.servers, t.server)
		}
	}
	for _, s := range b.servers {
		if err := s.run(ctx); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func (b *bench) close() {
	for _, s := range b.servers {
		s.proc.stop()
	}
	b.origin.stop()
	if os.Getenv("BENCH_KEEP") == "" {
		os.RemoveAll(b.dir)
	} else {
		fmt.Fprintln(os.Stderr, "work directory kept:", b.dir)
	}
}

// measure runs every measurement, rounds times for the rates, and returns the report.
func (b *bench) measure(ctx context.Context) (*report, error) {
	rep := newReport(b.o, b.targets)
	background.sample(2 * time.Second) // the servers are up and idle: what is busy is other work
	progress := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	// Warm-up: connections, pools and the credential cache (its first check is an argon2id hash, a
	// tenth of a second of the proxy's one CPU for each login).
	for _, t := range b.targets {
		if t.does(kindKeepAlive) || t.does(kindKeepAlive64) {
			warm := time.Second + time.Duration(len(t.logins))*200*time.Millisecond
			if _, err := b.wrk(ctx, t, 64, warm, false); err != nil {
				return nil, fmt.Errorf("warm-up %s: %w", t.name, err)
			}
		}
	}
	for round := 1; round <= b.o.rounds; round++ {
		for _, conns := range []int{1, 64, 256} {
			for _, run := range b.keepAliveOrder(conns) {
				t, key := run.target, fmt.Sprintf("ka%d", conns)
				if run.pair {
					key = pairKey
				}
				cpu := b.cpuMeter(t)
				r, err := b.wrk(ctx, t, conns, b.o.dur, false)
				if err := rep.addWrk(t, key, r, err); err != nil {
					return nil, err
				}
				rep.addCPU(t, key, cpu(), r.Requests)
				if run.pair && t.does(kindKeepAlive64) { // the large store's only figures
					rep.addWrk(t, "ka64", r, nil)
					rep.addCPU(t, "ka64", cpu(), r.Requests)
				}
				progress("round %d: keep-alive, %d connections, %s: %.0f req/s, p50 %d µs, p99 %d µs, %d errors",
					round, conns, t.name, r.rate(), r.P50US, r.P99US, r.errors())
			}
		}
		for _, t := range b.targets {
			if !t.does(kindNewConn) {
				continue
			}
			cpu := b.cpuMeter(t)
			r, err := b.wrk(ctx, t, 64, b.o.dur, true)
			if err := rep.addWrk(t, "newconn", r, err); err != nil {
				return nil, err
			}
			rep.addCPU(t, "newconn", cpu(), r.Requests)
			progress("round %d: new connections, %s: %.0f/s, %d errors", round, t.name, r.rate(), r.errors())
		}
		for _, t := range b.targets {
			if !t.does(kindConnect) {
				continue
			}
			cpu := b.cpuMeter(t)
			r, err := b.connectRate(ctx, t)
			if err := rep.addRate(t, r, err); err != nil {
				return nil, err
			}
			rep.addCPU(t, "connect", cpu(), r.Count)
			progress("round %d: CONNECT setups, %s: %.0f/s, p99 %.0f µs, %d errors %s", round, t.name,
				float64(r.Count)/r.Secs, r.P99US, r.Errors, r.Error)
		}
		for _, t := range b.targets {
			if !t.does(kindBulk) {
				continue
			}
			cpu := b.cpuMeter(t)
			r, err := b.bulk(ctx, t)
			if err := rep.addBulk(t, r, err); err != nil {
				return nil, err
			}
			if t.server != nil && err == nil {
				rep.add("bulk_cpu", t, float64(cpu().Milliseconds())/(float64(r.Bytes)/(1<<30)))
			}
			progress("round %d: CONNECT bulk, %s: %.0f MiB/s", round, t.name, float64(r.Bytes)/r.Secs/(1<<20))
		}
	}
	for _, t := range b.targets {
		if !t.does(kindIdle) {
			continue
		}
		u, err := b.idle(ctx, t)
		if err := rep.addIdle(t, u, err); err != nil {
			return nil, err
		}
		progress("idle tunnels, %s: %.1f KiB RSS and %.1f fds per tunnel", t.name, u.rssPerTunnel, u.fdsPerTunnel)
	}
	rep.finish()
	return rep, nil
}

// keepAliveRun is one run of a keep-alive round; pair runs compare the store sizes.
type keepAliveRun struct {
	target *target
	pair   bool
}

// pairKey holds the samples of the store-size comparison, kept apart so that exitmesh's figures have
// as many samples as every other column's.
const pairKey = "ka64pair"

// keepAliveOrder returns the runs of a keep-alive round with conns connections, in order. At 64
// connections exitmesh with the large store and exitmesh are measured once more, back to back both
// ways round, so that the store-size comparison is not blurred by other load coming and going
// between distant runs.
func (b *bench) keepAliveOrder(conns int) []keepAliveRun {
	var order []keepAliveRun
	var small, large *target
	for _, t := range b.targets {
		switch {
		case t.does(kindKeepAlive64):
			large = t
		case t.does(kindKeepAlive):
			order = append(order, keepAliveRun{target: t})
			if t.name == "exitmesh" {
				small = t
			}
		}
	}
	if conns == 64 && large != nil {
		if small == nil {
			return append(order, keepAliveRun{large, true})
		}
		order = append(order, keepAliveRun{large, true}, keepAliveRun{small, true}, keepAliveRun{small, true}, keepAliveRun{large, true})
	}
	return order
}

// cpuMeter starts measuring the CPU time t's proxy uses; the function it returns reports it so
// far. For the direct target it reports 0.
func (b *bench) cpuMeter(t *target) func() time.Duration {
	if t.server == nil {
		return func() time.Duration { return 0 }
	}
	pid := t.server.proc.pid()
	before := cpuTime(pid)
	return func() time.Duration { return cpuTime(pid) - before }
}

// wrk runs wrk against t; closing asks for a new connection per request.
func (b *bench) wrk(ctx context.Context, t *target, conns int, dur time.Duration, closing bool) (wrkResult, error) {
	h := map[string]string{}
	if t.auth != "" {
		h["Proxy-Authorization"] = t.auth
	}
	if closing {
		h["Connection"] = "close"
	}
	defer pause()
	return wrkRun{origin: t.origin.http, path: "/small", proxy: t.proxy(), headers: h, logins: t.logins, conns: conns,
		dur: dur, cpu: b.o.loadCPU}.run(ctx, b.dir)
}

// pause lets the previous run's connections finish closing before the next run.
// It also samples the machine's CPU use meanwhile: the servers are idle, so what is busy is other
// work (see background).
func pause() {
	time.Sleep(100 * time.Millisecond) // the last run's connections close
	background.sample(400 * time.Millisecond)
}

func (b *bench) loadArgs(t *target, target string) []string {
	return []string{"-proxy", t.proxy(), "-target", target, "-auth", t.auth, "-socks5=" + strconv.FormatBool(t.socks)}
}

func (b *bench) connectRate(ctx context.Context, t *target) (rateResult, error) {
	var r rateResult
	defer pause()
	args := append([]string{"load-connect", "-c", "64", "-d", b.o.dur.String()}, b.loadArgs(t, t.origin.echo)...)
	line, err := runLine(ctx, b.o.loadCPU, b.o.dur+time.Minute, args...)
	if err == nil {
		err = json.Unmarshal([]byte(line), &r)
	}
	return r, err
}

func (b *bench) bulk(ctx context.Context, t *target) (bulkResult, error) {
	var r bulkResult
	defer pause()
	args := append([]string{"load-bulk", "-bytes", strconv.FormatInt(b.o.bulkBytes, 10)}, b.loadArgs(t, t.origin.source)...)
	line, err := runLine(ctx, b.o.loadCPU, 5*time.Minute, args...)
	if err == nil {
		err = json.Unmarshal([]byte(line), &r)
	}
	return r, err
}

// idleUsage is the memory figure of one proxy.
type idleUsage struct {
	before, after              usage
	opened                     int
	short                      string // why fewer tunnels than asked were open, if so
	rssPerTunnel, fdsPerTunnel float64
}

// idle restarts t's server, opens one tunnel and closes it (lazy initialisation is not a tunnel's
// cost), measures, opens o.tunnels tunnels and leaves them idle, measures again.
func (b *bench) idle(ctx context.Context, t *target) (idleUsage, error) {
	var u idleUsage
	if err := t.server.restart(ctx); err != nil {
		return u, err
	}
	warm := append([]string{"load-connect", "-c", "1", "-d", "200ms"}, b.loadArgs(t, t.origin.echo)...)
	if _, err := runLine(ctx, b.o.loadCPU, time.Minute, warm...); err != nil {
		return u, err
	}
	time.Sleep(2 * time.Second)
	var err error
	if u.before, err = measure(t.server.proc.pid()); err != nil {
		return u, err
	}
	self, err := os.Executable()
	if err != nil {
		return u, err
	}
	args := append([]string{"-c", strconv.Itoa(b.o.loadCPU), self, "load-idle", "-n", strconv.Itoa(b.o.tunnels)},
		b.loadArgs(t, t.origin.echo)...)
	cmd := exec.CommandContext(ctx, "taskset", args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return u, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return u, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return u, err
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
		pause()
	}()
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
		io.Copy(io.Discard, stdout)
	}()
	var res idleResult
	select {
	case line := <-lines:
		if err := json.Unmarshal([]byte(line), &res); err != nil {
			return u, fmt.Errorf("load-idle: %q: %w", line, err)
		}
	case <-time.After(3 * time.Minute):
		cmd.Process.Kill()
		return u, fmt.Errorf("load-idle: tunnels not open after 3 minutes")
	}
	u.opened = res.Opened
	if res.Opened < b.o.tunnels {
		u.short = fmt.Sprintf("only %d of %d tunnels opened (%d errors, first: %s)", res.Opened, b.o.tunnels, res.Errors, res.Error)
		if res.Opened < b.o.tunnels/2 {
			return u, errors.New("load-idle: " + u.short)
		}
	}
	time.Sleep(3 * time.Second) // let the proxy settle: timers, collectors, lazily freed buffers
	if u.after, err = measure(t.server.proc.pid()); err != nil {
		return u, err
	}
	u.rssPerTunnel = float64(u.after.RSSKiB-u.before.RSSKiB) / float64(u.opened)
	u.fdsPerTunnel = float64(u.after.FDs-u.before.FDs) / float64(u.opened)
	return u, nil
}
