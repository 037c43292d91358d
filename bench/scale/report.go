package main

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/exitmesh/exitmesh/bench/benchdoc"
)

// startOrigin serves a 64-byte answer to any request on a loopback port.
func startOrigin() (*httptest.Server, error) {
	body := strings.Repeat("x", 64)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(body))
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	return srv, nil
}

func thousands(n int) string { return benchdoc.Thousands(int64(n)) }

// The targets of issue 15 at a million accounts.
const (
	targetPropagation = time.Second
	targetCPU         = time.Millisecond
	targetThroughput  = 0.95
	targetRSS         = 1024 // bytes per login
	targetServing     = 20 * time.Second
)

// report renders the results section of docs/SCALE.md.
func report(o options, rows []result, began time.Time, load string, steal float64) string {
	var b strings.Builder
	m := benchdoc.Describe(o.doc)
	fmt.Fprintf(&b, "Run of %s, %s to %s UTC (load average %s before, %s after).", began.UTC().Format("2006-01-02"),
		began.UTC().Format("15:04"), time.Now().UTC().Format("15:04"), load, benchdoc.LoadAverage())
	if steal > 0.02 {
		fmt.Fprintf(&b, " **The hypervisor took %.0f%% of the CPU time for other machines during the run: every figure"+
			" is from a slower and noisier machine than the one described.**", 100*steal)
	}
	if o.label != "" {
		fmt.Fprintf(&b, " **%s**", o.label)
	}
	backend, flag := "SQLite, one node", ""
	if o.pg != "" {
		backend, flag = "PostgreSQL, two nodes (the one measured and one more following the store)", " -pg URL"
	}
	fmt.Fprintf(&b, "\nCommand: `bench/scale/run -n %s -storm %v -rate %d%s`; %s, changes made by another process.\n\n",
		sizesFlag(o.sizes), o.storm, o.rate, flag, backend)
	fmt.Fprintf(&b, "| machine | |\n|---|---|\n| CPU | %s, %d cores |\n| memory | %s |\n| system | %s, Linux %s |\n| toolchain | %s |\n| exitmesh | %s |\n\n",
		m.CPU, m.Cores, m.Memory, m.OS, m.Kernel, runtime.Version(), m.Commit)
	fmt.Fprintf(&b, "A node holding no account but the probe takes %.0f MiB; RSS per login is the node's whole RSS over its logins, and in brackets what the logins add to that.\n\n",
		float64(rows[0].baseKiB)/1024)
	b.WriteString("| accounts | logins | seeding (bulk path) | start to serving | full load (node's log) | RSS | RSS per login | propagation p50 | p99 | max | lost | node CPU per change | keep-alive quiet | during changes |\n")
	b.WriteString("|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		p50, p99, worst := percentiles(r.propagation)
		fmt.Fprintf(&b, "| %s | %s | %v | %v | `%s` | %.0f MiB | %.0f B (%.0f B) | %v | %v | %v | %d | %v | %s req/s (node CPU %.0f%%) | %s req/s (%.0f%%; node CPU %.0f%%) |\n",
			thousands(r.n), thousands(r.logins), r.seed.Round(time.Second), r.serving.Round(10*time.Millisecond), r.loadLine,
			float64(r.rssKiB)/1024, r.rssPerLogin(), r.rssPerLoginAdded(), p50, p99, worst, r.lost, r.cpuPerChange.Round(time.Microsecond),
			thousands(int(r.quiet)), 100*r.quietBusy, thousands(int(r.storm)), 100*r.storm/max(r.quiet, 1), 100*r.stormBusy)
	}
	big := rows[len(rows)-1]
	_, p99, _ := percentiles(big.propagation)
	fmt.Fprintf(&b, "\n### Targets at %s accounts\n\n| target | measured | met |\n|---|---|---|\n", thousands(big.n))
	row := func(name, measured string, met bool) {
		yes := "yes"
		if !met {
			yes = "**no**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", name, measured, yes)
	}
	row("propagation p99 ≤ 1 s", p99.String(), p99 <= targetPropagation && big.lost == 0)
	row("node CPU per applied change ≤ 1 ms", big.cpuPerChange.Round(time.Microsecond).String(), big.cpuPerChange <= targetCPU)
	row("keep-alive throughput during the storm ≥ 95% of quiet", fmt.Sprintf("%.1f%% (the node used %.0f%% of its CPU quiet, %.0f%% during the storm)",
		100*big.storm/max(big.quiet, 1), 100*big.quietBusy, 100*big.stormBusy), big.storm >= targetThroughput*big.quiet)
	row("≤ 1 KiB RSS per login", fmt.Sprintf("%.0f B (%.0f B added by the logins)", big.rssPerLogin(), big.rssPerLoginAdded()), big.rssPerLogin() <= targetRSS)
	row("serving ≤ 20 s after start", big.serving.Round(10*time.Millisecond).String(), big.serving <= targetServing)
	return b.String()
}

func sizesFlag(sizes []int) string {
	s := make([]string, len(sizes))
	for i, n := range sizes {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ",")
}

// freshSchema creates an empty schema on the PostgreSQL server at base and returns a URL whose
// connections use it, and what drops it.
func freshSchema(ctx context.Context, base string) (string, func(), error) {
	db, err := sql.Open("pgx", base)
	if err != nil {
		return "", nil, err
	}
	schema := fmt.Sprintf("scale_%d", time.Now().UnixNano())
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		db.Close()
		return "", nil, fmt.Errorf("create schema: %w", err)
	}
	drop := func() {
		db.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		db.Close()
	}
	u, err := url.Parse(base)
	if err != nil {
		drop()
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), drop, nil
}
