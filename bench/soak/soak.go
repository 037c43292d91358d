package main

import (
	"context"
	cryptorand "crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// soak is one run: the node, its origin and the load.
type soak struct {
	o      options
	dir    string
	node   *node
	origin *originServers
	load   *load
}

func newSoak(ctx context.Context, o options) (s *soak, err error) {
	s = &soak{o: o}
	if s.dir, err = os.MkdirTemp("", "exitmesh-soak-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	bin := o.exitmesh
	if bin == "" {
		progress("building ./cmd/exitmesh")
		if bin, err = buildExitmesh(ctx, s.dir); err != nil {
			return nil, err
		}
	}
	if s.origin, err = startOrigin(); err != nil {
		return nil, err
	}
	if s.node, err = startNode(ctx, bin, s.dir); err != nil {
		return nil, err
	}
	progress("exitmesh (pid %d) is serving; work directory %s", s.node.cmd.Process.Pid, s.dir)
	var accounts []account
	for i := 1; i <= o.accounts; i++ {
		a := account{user: fmt.Sprintf("soak%d", i), password: "soak-" + cryptorand.Text()}
		names := make([]string, len(proxyServers))
		for j, ps := range proxyServers {
			names[j] = ps.name
		}
		if err := s.node.admin(ctx, a.password+"\n", "account", "create", a.user, "--plan", "soak",
			"--password-stdin", "--proxies", strings.Join(names, ",")); err != nil {
			return nil, err
		}
		accounts = append(accounts, a)
	}
	certs, err := loadCerts(filepath.Join(s.dir, "exitmesh-api.crt"))
	if err != nil {
		return nil, fmt.Errorf("the node's API certificate: %w", err)
	}
	s.load = &load{o: o, accounts: accounts, origin: s.origin, apiURL: "https://" + s.node.apiAddr, apiCerts: certs, errs: newTally()}
	return s, nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().UTC().Format("15:04:05 ")+format+"\n", args...)
}

func (s *soak) close() {
	if s.node != nil {
		s.node.stop()
	}
	if s.origin != nil {
		s.origin.close()
	}
	if s.o.keep {
		progress("kept %s", s.dir)
	} else {
		os.RemoveAll(s.dir)
	}
}

func (s *soak) run(ctx context.Context) (*report, error) {
	rep := newReport(s.o)
	l := s.load
	if err := s.warmUp(ctx); err != nil {
		return nil, err
	}
	base, err := s.settle(ctx)
	if err != nil {
		return nil, err
	}
	rep.add(base, "baseline")
	rep.fdsBefore, _ = fdKinds(s.node.cmd.Process.Pid, s.endpoints())
	warnFrom, errFrom := s.node.logs.counts()
	progress("baseline: %s", base.summary())

	// What the warm-up took is not the load's.
	for _, lat := range []*latency{&l.lat.open, &l.lat.echo, &l.lat.request, &l.lat.api} {
		*lat = latency{}
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range s.o.tunnels {
		wg.Go(func() { l.tunnel(loadCtx, i) })
	}
	for i := range s.o.clients {
		wg.Go(func() { l.httpClient(loadCtx, i) })
	}
	wg.Go(func() { l.apiWriter(loadCtx) })

	rep.loadBegin = time.Now()
	// The steady phase starts once every tunnel has been opened and has had time for an echo.
	steadyFrom := rep.loadBegin.Add(s.o.ramp + s.o.tunnelInterval)
	end := rep.loadBegin.Add(s.o.dur)
	tick := time.NewTicker(s.o.sample)
	for running := true; running; {
		select {
		case <-tick.C:
		case <-ctx.Done():
			running = false
			continue
		case err := <-s.node.done:
			s.node.done <- err
			l.errs.add("node: exited during the load", fmt.Sprint(err))
			running = false
			continue
		}
		sm, err := s.sample(ctx)
		if err != nil {
			l.errs.add("node: /metrics", err.Error())
			continue
		}
		phase := "ramp"
		if sm.at.After(steadyFrom) {
			phase = "steady"
		}
		sm.requestMax, sm.echoMax = l.lat.request.takeIntervalMax(), l.lat.echo.takeIntervalMax()
		rep.add(sm, phase)
		progress("%s %s: %s; slowest request %s ms, echo %s ms", phase, sm.at.Sub(rep.loadBegin).Round(time.Second), sm.summary(),
			ms(sm.requestMax), ms(sm.echoMax))
		running = time.Until(end) > 0
	}
	tick.Stop()
	stopLoad()
	rep.loadEnd = time.Now()
	if !waitGroup(&wg, time.Minute) {
		l.errs.add("harness: load did not stop", "clients still running a minute after the end")
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	progress("load stopped; waiting %s for the node's idle timeouts, then until it is quiet", s.o.settle)
	after, err := s.settle(ctx)
	if err != nil {
		return nil, err
	}
	rep.add(after, "after")
	rep.fdsAfter, _ = fdKinds(s.node.cmd.Process.Pid, s.endpoints())
	progress("after: %s", after.summary())

	warnings, errs := s.node.logs.since(warnFrom, errFrom)
	for _, line := range errs {
		l.errs.add("node log: ERROR", line)
	}
	rep.warnings = warnings
	for series, v := range after.m.series("exitmesh_proxy_errors_total") {
		if d := v - base.m[series]; d > 0 {
			l.errs.addN("node counted: "+series, fmt.Sprintf("%s rose by %.0f during the load", series, d), int(d))
		}
	}
	if err := s.node.stop(); err != nil {
		l.errs.add("node: stop", err.Error())
	}
	rep.finish(l)
	return rep, nil
}

// warmUp waits until every account works through every proxy server, with a request and a tunnel
// each. It fills the credential cache and the node's origin pools before the baseline is taken,
// so the baseline is a node that has served, not one that never has.
func (s *soak) warmUp(ctx context.Context) error {
	l := s.load
	deadline := time.Now().Add(30 * time.Second)
	for i := range len(proxyServers) * len(l.accounts) {
		ps, acct := l.proxyFor(i)
		hc := &http.Client{Timeout: ioTimeout, Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL(ps, acct))}}
		for {
			err := l.request(ctx, hc, ps)
			if err == nil {
				var c interface{ Close() error }
				c, _, err = l.openTunnel(ps, acct, clientSource(i))
				if err == nil {
					c.Close()
					break
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("warm-up, %s through %s: %w", acct.user, ps.name, err)
			}
			if !sleep(ctx, 100*time.Millisecond) { // the account reaches the node within its sync interval
				return ctx.Err()
			}
		}
		hc.CloseIdleConnections()
	}
	return nil
}

// settle waits out the node's idle timeouts, then until it is quiet, and samples it. The node
// keeps idle connections to origins (and a client's keep-alive connection) for 90 seconds by
// design; the origin here never closes its side, so only the node's own timeouts end them, and a
// sample taken sooner would count them as growth.
func (s *soak) settle(ctx context.Context) (sample, error) {
	if !sleep(ctx, s.o.settle) {
		return sample{}, ctx.Err()
	}
	return s.quiet(ctx)
}

// quiet waits until the node has no tunnels open and its goroutines and descriptors hold still
// for five seconds (or the quiet timeout passes), and samples it.
func (s *soak) quiet(ctx context.Context) (sample, error) {
	deadline := time.Now().Add(s.o.quietTimeout)
	var last sample
	still := 0
	for {
		sm, err := s.sample(ctx)
		if err != nil {
			return sm, err
		}
		if sm.tunnelsActive == 0 && sm.goroutines == last.goroutines && sm.fds == last.fds {
			still++
		} else {
			still = 0
		}
		if still >= 5 || time.Now().After(deadline) {
			return sm, nil
		}
		last = sm
		if !sleep(ctx, time.Second) {
			return sm, ctx.Err()
		}
	}
}

// sample reads the node's metrics and the harness's counters.
func (s *soak) sample(ctx context.Context) (sample, error) {
	m, err := s.node.metrics(ctx)
	if err != nil {
		return sample{}, err
	}
	sm := sample{at: time.Now(), m: m,
		goroutines:    m["go_goroutines"],
		fds:           m["process_open_fds"],
		rss:           m["process_resident_memory_bytes"],
		heapInuse:     m["go_memstats_heap_inuse_bytes"],
		tunnelsActive: m["exitmesh_proxy_tunnels_active"],
		tunnelsTotal:  m["exitmesh_proxy_tunnels_total"],
		requestsTotal: m["exitmesh_proxy_requests_total"],
		errorsTotal:   m["exitmesh_proxy_errors_total"],
		harnessOpen:   s.load.n.tunnelsOpen.Load(),
		echoOpen:      s.origin.echoOpen.Load(),
	}
	for _, name := range []string{"go_goroutines", "process_open_fds", "process_resident_memory_bytes", "go_memstats_heap_inuse_bytes"} {
		if _, ok := m[name]; !ok {
			return sm, fmt.Errorf("/metrics has no %s", name)
		}
	}
	return sm, nil
}

// endpoints names the soak's listeners, for the breakdown of the node's descriptors.
func (s *soak) endpoints() map[string]string {
	names := map[string]string{
		strings.TrimPrefix(s.origin.httpURL, "http://"): "origin http",
		s.origin.echoAddr:  "origin echo",
		s.node.apiAddr:     "api",
		s.node.metricsAddr: "metrics",
	}
	for _, ps := range proxyServers {
		names[ps.addr] = "proxy " + ps.name
	}
	return names
}

// waitGroup waits for wg at most d and says whether it finished.
func waitGroup(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}
