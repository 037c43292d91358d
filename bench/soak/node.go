package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// proxyServer is one proxy server of the node under soak and the exits it may leave through.
type proxyServer struct {
	name  string
	addr  string
	exits []netip.Addr
}

// The node's proxy servers: two, so that the load crosses listeners, with two loopback exits each.
var proxyServers = []proxyServer{
	{name: "soak-a", exits: []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")}},
	{name: "soak-b", exits: []netip.Addr{netip.MustParseAddr("127.0.0.4"), netip.MustParseAddr("127.0.0.5")}},
}

// nodeConfig is the node's config: SQLite in the work directory, every listener on a loopback
// port of the system's choosing (announced in the log), egress allowed to the harness's origin
// only. Health checks stay off: their probes would be load the report does not account for.
const nodeConfig = `store: sqlite:%[1]s/exitmesh.db
node: {name: soak}
api: {listen: "127.0.0.1:0"}
metrics: {listen: "127.0.0.1:0"}
proxies:
  - {name: soak-a, listen: "127.0.0.1:0", exits: [{ip: 127.0.0.2}, {ip: 127.0.0.3}]}
  - {name: soak-b, listen: "127.0.0.1:0", exits: [{ip: 127.0.0.4}, {ip: 127.0.0.5}]}
egress: {allow: [127.0.0.1/32]}
plans:
  - {name: soak, proxies: 2, subs: 2, ips: 4, hostnames: 0, bandwidth: 0}
timeouts: {shutdown: 5s}
log: {level: info}
`

// node is the running exitmesh process.
type node struct {
	bin, dir, config string
	cmd              *exec.Cmd
	done             chan error // receives the exit status once
	apiAddr          string
	metricsAddr      string
	logs             *logWatch
}

// buildExitmesh builds ./cmd/exitmesh into dir, as a user would.
func buildExitmesh(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "exitmesh")
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/exitmesh").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/exitmesh: %v\n%s", err, out)
	}
	return bin, nil
}

// startNode writes the config and runs "exitmesh serve", and waits until every listener is
// announced.
func startNode(ctx context.Context, bin, dir string) (*node, error) {
	n := &node{bin: bin, dir: dir, config: filepath.Join(dir, "exitmesh.yaml"), done: make(chan error, 1)}
	if err := os.WriteFile(n.config, fmt.Appendf(nil, nodeConfig, dir), 0o600); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "exitmesh.log"))
	if err != nil {
		return nil, err
	}
	n.cmd = exec.Command(bin, "serve", "--config", n.config)
	n.cmd.Dir = dir
	pr, pw := io.Pipe()
	n.cmd.Stdout, n.cmd.Stderr = pw, pw
	n.logs = watchLog(pr, logFile)
	if err := n.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		err := n.cmd.Wait()
		pw.Close()
		n.done <- err
	}()

	listening := regexp.MustCompile(`msg="?(proxy server|api|metrics) listening.*?(?:proxy=(\S+) )?addr=(\S+)`)
	want := len(proxyServers) + 2
	deadline := time.After(30 * time.Second)
	for found := 0; found < want; {
		select {
		case line := <-n.logs.announce:
			m := listening.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			found++
			switch m[1] {
			case "api":
				n.apiAddr = m[3]
			case "metrics":
				n.metricsAddr = m[3]
			default:
				for i := range proxyServers {
					if proxyServers[i].name == m[2] {
						proxyServers[i].addr = m[3]
					}
				}
			}
		case err := <-n.done:
			n.done <- err
			return nil, fmt.Errorf("exitmesh exited (%v) before listening; see %s", err, logFile.Name())
		case <-deadline:
			n.stop()
			return nil, fmt.Errorf("exitmesh announced %d of %d listeners within 30s; see %s", found, want, logFile.Name())
		case <-ctx.Done():
			n.stop()
			return nil, ctx.Err()
		}
	}
	return n, nil
}

// admin runs "exitmesh admin" against the node's config, as an operator does.
func (n *node) admin(ctx context.Context, stdin string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.bin, append([]string{"admin", "--config", n.config}, args...)...)
	cmd.Dir = n.dir
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("exitmesh admin %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// stop asks the node to stop and waits for it, killing it after its grace and some more.
func (n *node) stop() error {
	if n == nil || n.cmd.Process == nil {
		return nil
	}
	n.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-n.done:
		n.done <- err
		return err
	case <-time.After(20 * time.Second):
		n.cmd.Process.Kill()
		err := <-n.done
		n.done <- err
		return fmt.Errorf("exitmesh did not stop within 20s of SIGINT (%v)", err)
	}
}

// metrics reads the node's /metrics.
func (n *node) metrics(ctx context.Context) (metrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.metricsAddr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: status %d", resp.StatusCode)
	}
	return parseMetrics(resp.Body)
}

// metrics are the values of a Prometheus text exposition, by series ("name{labels}") and, summed
// over their labels, by name.
type metrics map[string]float64

func parseMetrics(r io.Reader) (metrics, error) {
	m := metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("metrics line %q has no value", line)
		}
		series := line[:i]
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %v", line, err)
		}
		m[series] = v
		if name, _, ok := strings.Cut(series, "{"); ok {
			m[name] += v
		}
	}
	return m, sc.Err()
}

// series returns the series of the metric name with their values, e.g. every reason of the
// errors counter.
func (m metrics) series(name string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if strings.HasPrefix(k, name+"{") {
			out[k] = v
		}
	}
	return out
}

// logWatch copies the node's output to a file, hands the first lines to whoever waits for the
// listeners, and keeps the warnings and errors for the report.
type logWatch struct {
	announce chan string
	mu       sync.Mutex // guards the following
	warnings []string
	errors   []string
}

// maxKeptLines bounds what the report quotes of the node's warnings and errors; all are counted.
const maxKeptLines = 20

func watchLog(r io.Reader, f *os.File) *logWatch {
	w := &logWatch{announce: make(chan string, 100)}
	go func() {
		defer f.Close()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(f, line)
			select {
			case w.announce <- line:
			default: // nobody waits any more
			}
			w.mu.Lock()
			switch {
			case strings.Contains(line, "level=ERROR"):
				w.errors = append(w.errors, line)
			case strings.Contains(line, "level=WARN"):
				w.warnings = append(w.warnings, line)
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// counts returns the number of warning and error lines so far.
func (w *logWatch) counts() (warnings, errors int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.warnings), len(w.errors)
}

// since returns the warning and error lines after the first fromW and fromE.
func (w *logWatch) since(fromW, fromE int) (warnings, errors []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.warnings[fromW:]...), append([]string(nil), w.errors[fromE:]...)
}
