package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what the harness's wrk script prints when a run is done.
type wrkResult struct {
	Requests      int64 `json:"requests"`
	DurationUS    int64 `json:"duration_us"`
	ConnectErrors int64 `json:"connect_errors"`
	ReadErrors    int64 `json:"read_errors"`
	WriteErrors   int64 `json:"write_errors"`
	StatusErrors  int64 `json:"status_errors"`
	Timeouts      int64 `json:"timeouts"`
	P50US         int64 `json:"p50_us"`
	P99US         int64 `json:"p99_us"`
}

func (r wrkResult) errors() int64 {
	return r.ConnectErrors + r.ReadErrors + r.WriteErrors + r.StatusErrors + r.Timeouts
}

func (r wrkResult) rate() float64 {
	if r.DurationUS == 0 {
		return 0
	}
	return float64(r.Requests) / (float64(r.DurationUS) / 1e6)
}

// wrkScript is the Lua script for one kind of run: the request (absolute-URI through a proxy,
// origin-form straight to the origin) and a done hook printing the figures as JSON.
const wrkScript = `wrk.method = "GET"
wrk.path = %q
wrk.headers["Host"] = %q
%s
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH {"requests":%%d,"duration_us":%%d,"connect_errors":%%d,"read_errors":%%d,"write_errors":%%d,"status_errors":%%d,"timeouts":%%d,"p50_us":%%d,"p99_us":%%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`

// wrkRun is one wrk run: conns connections for dur against the origin, through proxy when it is
// not empty, with extra request headers.
type wrkRun struct {
	origin  string // host:port
	path    string
	proxy   string // host:port, or "" for direct
	headers map[string]string
	logins  []string // Proxy-Authorization values sent in turn, one per request
	conns   int
	dur     time.Duration
	cpu     int
}

func (w wrkRun) run(ctx context.Context, dir string) (wrkResult, error) {
	var res wrkResult
	target, path := w.origin, w.path
	if w.proxy != "" {
		target, path = w.proxy, "http://"+w.origin+w.path
	}
	var extra strings.Builder
	for k, v := range w.headers {
		fmt.Fprintf(&extra, "wrk.headers[%q] = %q\n", k, v)
	}
	if len(w.logins) > 0 {
		extra.WriteString("local logins = {")
		for _, l := range w.logins {
			fmt.Fprintf(&extra, "%q, ", l)
		}
		extra.WriteString("}\nlocal turn = 0\nfunction request()\n" +
			"  turn = turn % #logins + 1\n" +
			"  wrk.headers[\"Proxy-Authorization\"] = logins[turn]\n" +
			"  return wrk.format()\nend\n")
	}
	script := filepath.Join(dir, "wrk-"+strconv.FormatInt(time.Now().UnixNano(), 36)+".lua")
	if err := os.WriteFile(script, fmt.Appendf(nil, wrkScript, path, w.origin, extra.String()), 0o644); err != nil {
		return res, err
	}
	defer os.Remove(script)
	ctx, cancel := context.WithTimeout(ctx, w.dur+30*time.Second)
	defer cancel()
	secs := strconv.Itoa(max(1, int(w.dur.Round(time.Second)/time.Second)))
	cmd := exec.CommandContext(ctx, "taskset", "-c", strconv.Itoa(w.cpu), "wrk", "-t1",
		"-c"+strconv.Itoa(w.conns), "-d"+secs+"s", "--timeout", "5s", "-s", script, "http://"+target+"/")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return res, fmt.Errorf("wrk: %v: %s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		if j, ok := strings.CutPrefix(line, "BENCH "); ok {
			err := json.Unmarshal([]byte(j), &res)
			return res, err
		}
	}
	return res, fmt.Errorf("wrk printed no result: %s", out)
}
