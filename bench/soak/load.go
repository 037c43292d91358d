package main

import (
	"bufio"
	"context"
	cryptorand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/exitmesh/exitmesh/client"
)

// account is a customer account the load authenticates as, by Basic password.
type account struct {
	user, password string
}

// counters are what the load did, for the report.
type counters struct {
	tunnelsOpened  atomic.Int64
	tunnelsOpen    atomic.Int64
	tunnelsChurned atomic.Int64
	echoes         atomic.Int64
	requests       atomic.Int64
	clientDials    atomic.Int64
	apiCalls       atomic.Int64
	apiAttempts    atomic.Int64
}

// load is the soak's clients: tunnels, keep-alive HTTP clients and the API writer.
type load struct {
	o        options
	accounts []account
	origin   *originServers
	apiURL   string
	apiCerts *x509.CertPool
	errs     *tally
	n        counters
	lat      struct{ open, echo, request, api latency }
}

// fail counts an error unless the load is stopping: a read cut short by the end of the run is
// not a finding.
func (l *load) fail(ctx context.Context, class string, err error) {
	if ctx.Err() != nil {
		return
	}
	l.errs.add(class+": "+errorClass(err), err.Error())
}

// proxyFor spreads the clients over the proxy servers and the accounts.
func (l *load) proxyFor(i int) (proxyServer, account) {
	return proxyServers[i%len(proxyServers)], l.accounts[(i/len(proxyServers))%len(l.accounts)]
}

// proxyURL is how an HTTP client names the proxy server: the account's credentials go in
// Proxy-Authorization on every request.
func proxyURL(ps proxyServer, a account) *url.URL {
	return &url.URL{Scheme: "http", Host: ps.addr, User: url.UserPassword(a.user, a.password)}
}

func basicAuth(a account) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(a.user+":"+a.password))
}

// sleep waits d or until ctx ends, and says whether ctx is still going.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// jitter is d ± 50%, so that the tunnels do not echo in step.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d+1)
}

// clientSources is how many loopback addresses the clients come from, as that many customers'
// machines would: each stays within the node's limits.connections_per_ip (1024 by default), which
// counts and releases every connection of the churn.
const clientSources = 8

// clientSource is the address client i dials from: 127.0.0.10 and up.
func clientSource(i int) *net.TCPAddr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(10+i%clientSources))}
}

// ioTimeout bounds every single exchange: on an idle loopback a round trip takes microseconds;
// seconds mean the node stalled.
const ioTimeout = 15 * time.Second

// tunnel runs tunnel i until ctx ends: open, echo every interval, now and then close and reopen.
func (l *load) tunnel(ctx context.Context, i int) {
	ps, acct := l.proxyFor(i)
	if !sleep(ctx, time.Duration(int64(l.o.ramp)*int64(i)/int64(l.o.tunnels))) {
		return
	}
	for ctx.Err() == nil {
		begin := time.Now()
		c, r, err := l.openTunnel(ps, acct, clientSource(i))
		if err != nil {
			l.fail(ctx, "tunnel open", err)
			sleep(ctx, time.Second) // no retry storm if the node refuses
			continue
		}
		l.lat.open.observe(time.Since(begin))
		l.n.tunnelsOpened.Add(1)
		l.n.tunnelsOpen.Add(1)
		l.echoLoop(ctx, i, c, r)
		c.Close()
		l.n.tunnelsOpen.Add(-1)
	}
}

// openTunnel dials the proxy server, CONNECTs to the echo server, and checks that the origin saw
// one of the proxy server's exits.
func (l *load) openTunnel(ps proxyServer, acct account, src *net.TCPAddr) (net.Conn, *bufio.Reader, error) {
	d := net.Dialer{Timeout: ioTimeout, LocalAddr: src}
	c, err := d.Dial("tcp", ps.addr)
	if err != nil {
		return nil, nil, err
	}
	c.SetDeadline(time.Now().Add(ioTimeout))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n", l.origin.echoAddr, l.origin.echoAddr, basicAuth(acct))
	r := bufio.NewReaderSize(c, 512)
	resp, err := http.ReadResponse(r, &http.Request{Method: http.MethodConnect})
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("CONNECT answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		c.Close()
		return nil, nil, fmt.Errorf("CONNECT %s: status %d (%s)", ps.name, resp.StatusCode, resp.Header.Get("X-ProxyMesh-Error"))
	}
	seen, err := r.ReadString('\n')
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("echo greeting: %w", err)
	}
	if err := checkExit(ps, strings.TrimSpace(seen)); err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, r, nil
}

// checkExit says whether the origin saw one of the proxy server's exits.
func checkExit(ps proxyServer, seen string) error {
	ip, err := netip.ParseAddr(seen)
	if err != nil || !slices.Contains(ps.exits, ip) {
		return fmt.Errorf("%w: origin saw %q through %s, whose exits are %v", errWrongExit, seen, ps.name, ps.exits)
	}
	return nil
}

var errWrongExit = fmt.Errorf("wrong exit")

// echoLoop sends a line every interval and checks it comes back, until ctx ends, an error, or
// churn closes the tunnel.
func (l *load) echoLoop(ctx context.Context, i int, c net.Conn, r *bufio.Reader) {
	for seq := 0; ; seq++ {
		if !sleep(ctx, jitter(l.o.tunnelInterval)) {
			return
		}
		msg := fmt.Sprintf("tunnel %d message %d\n", i, seq)
		begin := time.Now()
		c.SetDeadline(begin.Add(ioTimeout))
		if _, err := io.WriteString(c, msg); err != nil {
			l.fail(ctx, "tunnel echo write", err)
			return
		}
		got, err := r.ReadString('\n')
		if err != nil {
			l.fail(ctx, "tunnel echo read", err)
			return
		}
		if got != msg {
			l.errs.add("tunnel echo: wrong bytes", fmt.Sprintf("sent %q, got %q", msg, got))
			return
		}
		l.lat.echo.observe(time.Since(begin))
		l.n.echoes.Add(1)
		if rand.Float64() < l.o.churn {
			l.n.tunnelsChurned.Add(1)
			return
		}
	}
}

// httpClient runs keep-alive HTTP client i until ctx ends: one connection to its proxy server,
// reused for every request.
func (l *load) httpClient(ctx context.Context, i int) {
	ps, acct := l.proxyFor(i)
	dialer := &net.Dialer{Timeout: ioTimeout, LocalAddr: clientSource(i)}
	tr := &http.Transport{
		Proxy:               http.ProxyURL(proxyURL(ps, acct)),
		MaxConnsPerHost:     1,
		MaxIdleConnsPerHost: 1,
		DisableCompression:  true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			l.n.clientDials.Add(1)
			return dialer.DialContext(ctx, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: ioTimeout}
	// Start spread over the first interval, so the clients do not ask in step.
	if !sleep(ctx, rand.N(l.o.reqInterval+1)) {
		return
	}
	for ctx.Err() == nil {
		begin := time.Now()
		if err := l.request(ctx, hc, ps); err != nil {
			if ctx.Err() != nil {
				return
			}
			if httpErr, ok := err.(*httpError); ok {
				l.errs.add("http: "+httpErr.class, err.Error())
			} else {
				l.fail(ctx, "http", err)
			}
		} else {
			l.lat.request.observe(time.Since(begin))
			l.n.requests.Add(1)
		}
		sleep(ctx, l.o.reqInterval)
	}
}

// httpError is a wrong answer, as opposed to a failed exchange.
type httpError struct{ class, detail string }

func (e *httpError) Error() string { return e.detail }

func (l *load) request(ctx context.Context, hc *http.Client, ps proxyServer) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, l.origin.httpURL+"/ip", nil)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return &httpError{fmt.Sprintf("status %d", resp.StatusCode),
			fmt.Sprintf("GET /ip through %s: status %d (%s)", ps.name, resp.StatusCode, resp.Header.Get("X-ProxyMesh-Error"))}
	}
	seen := strings.TrimSpace(string(body))
	if err := checkExit(ps, seen); err != nil {
		return &httpError{"wrong exit", err.Error()}
	}
	if h := resp.Header.Get("X-ProxyMesh-IP"); h != seen {
		return &httpError{"X-ProxyMesh-IP differs from the exit", fmt.Sprintf("X-ProxyMesh-IP %q, origin saw %q", h, seen)}
	}
	return nil
}

// countingTransport sees every attempt the API client makes, so that a failure the client's own
// retries hide is still counted.
type countingTransport struct {
	l    *load
	next http.RoundTripper
}

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.l.n.apiAttempts.Add(1)
	resp, err := t.next.RoundTrip(req)
	switch {
	case err != nil && req.Context().Err() == nil:
		t.l.errs.add("api attempt: "+errorClass(err), fmt.Sprintf("%s %s: %v", req.Method, req.URL.Path, err))
	case err == nil && resp.StatusCode >= 500:
		t.l.errs.add(fmt.Sprintf("api attempt: status %d", resp.StatusCode), fmt.Sprintf("%s %s: status %d", req.Method, req.URL.Path, resp.StatusCode))
	}
	return resp, err
}

// apiWriter changes accounts through the HTTPS API until ctx ends, one call every interval,
// checking every answer. Each cycle, on the next account: authorize an IP, create a sub-account
// on it, edit it, delete it, withdraw the IP, with reads between that must show each change. The
// IPs are RFC 2544 benchmarking addresses: stored, never connected to, never the load's own.
func (l *load) apiWriter(ctx context.Context) {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: l.apiCerts}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Timeout: 30 * time.Second, Transport: countingTransport{l: l, next: tr}}
	clients := make([]*client.Client, len(l.accounts))
	for i, a := range l.accounts {
		c, err := client.New(l.apiURL, a.user, a.password, client.WithHTTPClient(hc))
		if err != nil {
			l.errs.add("api: client", err.Error())
			return
		}
		clients[i] = c
	}
	ip := netip.MustParseAddr("198.18.0.1")
	for cycle := 0; ctx.Err() == nil; cycle++ {
		a := cycle % len(l.accounts)
		sub := fmt.Sprintf("%s-sub%d", l.accounts[a].user, cycle)
		for _, step := range apiCycle(clients[a], ip.String(), sub, proxyServers) {
			if !sleep(ctx, l.o.apiInterval) {
				return
			}
			callCtx, cancel := context.WithTimeout(ctx, time.Minute)
			begin := time.Now()
			err := step.call(callCtx)
			elapsed := time.Since(begin)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				l.errs.add("api: "+step.name, err.Error())
				// The rest of the cycle depends on this step; a fresh IP and name start clean.
				break
			}
			l.lat.api.observe(elapsed)
			l.n.apiCalls.Add(1)
		}
		ip = ip.Next()
	}
}

// apiStep is one API call and the check of its answer.
type apiStep struct {
	name string
	call func(ctx context.Context) error
}

func apiCycle(c *client.Client, ip, sub string, ps []proxyServer) []apiStep {
	password := "soak-" + cryptorand.Text()
	return []apiStep{
		{"add IP", func(ctx context.Context) error {
			got, err := c.AddIP(ctx, ip)
			if err == nil && got != ip {
				err = fmt.Errorf("AddIP(%s) answered %q", ip, got)
			}
			return err
		}},
		{"list IPs", func(ctx context.Context) error {
			ips, err := c.IPs(ctx)
			if err == nil && !slices.Contains(ips, ip) {
				err = fmt.Errorf("IPs lacks %s just added: %v", ip, ips)
			}
			return err
		}},
		{"create sub-account", func(ctx context.Context) error {
			s, err := c.CreateSubAccount(ctx, client.NewSubAccount{Username: sub, Password: password,
				Proxies: []string{ps[0].name}, IPs: []string{ip}})
			if err == nil && (s.Username != sub || !s.Active || len(s.Proxies) != 1 || !slices.Equal(s.IPs, []string{ip})) {
				err = fmt.Errorf("CreateSubAccount(%s) answered %+v", sub, s)
			}
			return err
		}},
		{"edit sub-account", func(ctx context.Context) error {
			active, names := false, []string{ps[0].name, ps[1].name}
			s, err := c.EditSubAccount(ctx, sub, client.SubAccountChange{Active: &active, Proxies: &names})
			if err == nil && (s.Username != sub || s.Active || len(s.Proxies) != 2) {
				err = fmt.Errorf("EditSubAccount(%s) answered %+v", sub, s)
			}
			return err
		}},
		{"delete sub-account", func(ctx context.Context) error { return c.DeleteSubAccount(ctx, sub) }},
		{"list sub-accounts", func(ctx context.Context) error {
			subs, err := c.SubAccounts(ctx)
			if err == nil && slices.ContainsFunc(subs, func(s client.SubAccount) bool { return s.Username == sub }) {
				err = fmt.Errorf("SubAccounts still lists %s after its deletion", sub)
			}
			return err
		}},
		{"delete IP", func(ctx context.Context) error { return c.DeleteIP(ctx, ip) }},
	}
}

// loadCerts reads the node's self-signed API certificate.
func loadCerts(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no certificate", path)
	}
	return pool, nil
}
