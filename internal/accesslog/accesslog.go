// Package accesslog writes one JSON line per proxied request and per tunnel, for operators to ship
// and rotate. The proxy hands each entry over without waiting: entries go through a bounded queue to
// one writer goroutine, and when the queue is full (a stuck disk, a slow pipe) the entry is dropped
// and counted, never the request delayed. Reopen (on SIGUSR1) makes the writer open the file again,
// for logrotate's rename-then-signal.
package accesslog

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Stdout is the path that means the process's standard output.
const Stdout = "-"

// queueLen bounds the entries waiting for the writer: at 50,000 requests a second, a fifth of a
// second of traffic, about 10 MB at most.
const queueLen = 10_000

// Entry is one request or tunnel. Strings are copied into the line as they are (JSON-escaped); no
// credential is ever an Entry's field.
type Entry struct {
	Time       time.Time // when the request arrived
	Proxy      string    // the proxy server's name
	Account    string    // "" when the client was not authenticated
	SubAccount string
	Client     netip.Addr
	Exit       netip.Addr // invalid when no exit was used
	Method     string     // the HTTP method; CONNECT for a tunnel, SOCKS5 for a SOCKS5 tunnel
	Host       string
	Port       int
	Path       string // the path and query, kept only when Config.Paths is true
	Status     int    // the answer's status (200 for a tunnel that opened); SOCKS5: its reply code
	BytesIn    int64  // client to origin
	BytesOut   int64  // origin to client
	Duration   time.Duration
	Error      string // the X-ProxyMesh-Error reason, if the proxy refused or failed
}

// Config is where lines go and what they hold.
type Config struct {
	Path    string // a file, appended to and created 0640 if missing; Stdout for standard output
	Paths   bool   // log request paths and query strings (they may hold customers' secrets)
	Node    string // the node's name, in every line
	Dropped func() // counts an entry dropped because the queue was full; nil: none
	Log     *slog.Logger
	Writer  io.Writer // tests only: written to instead of Path
	Queue   int       // entries waiting for the writer at most; default 10,000
}

// Log is an open access log. Its zero value is not usable; a nil *Log logs nothing.
type Log struct {
	cfg     Config
	queue   chan Entry
	reopen  chan struct{}
	dropped atomic.Int64
	out     io.Writer
	file    *os.File // nil for standard output and Config.Writer
	done    chan struct{}
	once    sync.Once
}

// Open opens the log's file and starts its writer, which runs until Close.
func Open(cfg Config) (*Log, error) {
	if cfg.Queue <= 0 {
		cfg.Queue = queueLen
	}
	l := &Log{cfg: cfg, queue: make(chan Entry, cfg.Queue), reopen: make(chan struct{}, 1), done: make(chan struct{})}
	switch {
	case cfg.Writer != nil:
		l.out = cfg.Writer
	case cfg.Path == Stdout:
		l.out = os.Stdout
	default:
		f, err := openFile(cfg.Path)
		if err != nil {
			return nil, err
		}
		l.out, l.file = f, f
	}
	go l.run()
	return l, nil
}

func openFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("access log: %w", err)
	}
	return f, nil
}

// Add queues e for writing, or drops it when the queue is full. It never waits.
func (l *Log) Add(e Entry) {
	if l == nil {
		return
	}
	select {
	case l.queue <- e:
	default:
		l.dropped.Add(1)
		if l.cfg.Dropped != nil {
			l.cfg.Dropped()
		}
	}
}

// Enabled reports whether entries are written: callers skip building one otherwise.
func (l *Log) Enabled() bool { return l != nil }

// Reopen makes the writer close the file and open its path again before the next line.
func (l *Log) Reopen() {
	if l == nil {
		return
	}
	select {
	case l.reopen <- struct{}{}:
	default: // a reopen is pending already
	}
}

// Close writes what is queued (within ctx) and closes the file. Add must not be called after.
func (l *Log) Close(ctx context.Context) error {
	if l == nil {
		return nil
	}
	l.once.Do(func() { close(l.queue) })
	select {
	case <-l.done:
	case <-ctx.Done():
		return fmt.Errorf("access log: %d lines not written at shutdown: %w", len(l.queue), ctx.Err())
	}
	if l.file != nil {
		return l.file.Close()
	}
	return nil
}

// run writes queued entries, as many as are waiting in one write, and reports drops once a minute
// at most.
func (l *Log) run() {
	defer close(l.done)
	buf := make([]byte, 0, 64<<10)
	var reported int64
	lastReport := time.Now()
	for {
		var e Entry
		var ok bool
		select {
		case e, ok = <-l.queue:
		case <-l.reopen:
			l.reopenFile()
			continue
		}
		if !ok {
			return
		}
		buf = l.appendLine(buf[:0], &e)
		for more := true; more && len(buf) < cap(buf)/2; {
			select {
			case e, ok = <-l.queue:
				if !ok {
					more = false
					break
				}
				buf = l.appendLine(buf, &e)
			default:
				more = false
			}
		}
		if _, err := l.out.Write(buf); err != nil {
			l.cfg.Log.Error("access log write failed", "path", l.cfg.Path, "err", err)
		}
		if n := l.dropped.Load(); n != reported && time.Since(lastReport) > time.Minute {
			l.cfg.Log.Warn("access log lines dropped: the log could not keep up", "dropped", n-reported, "path", l.cfg.Path)
			reported, lastReport = n, time.Now()
		}
		if !ok {
			return
		}
	}
}

func (l *Log) reopenFile() {
	if l.file == nil {
		return
	}
	f, err := openFile(l.cfg.Path)
	if err != nil {
		l.cfg.Log.Error("access log not reopened; writing to the old file", "err", err)
		return
	}
	l.file.Close()
	l.out, l.file = f, f
	l.cfg.Log.Info("access log reopened", "path", l.cfg.Path)
}

// appendLine appends e as one JSON object and a newline. Written by hand: a line per request must
// not cost reflection.
func (l *Log) appendLine(b []byte, e *Entry) []byte {
	b = append(b, `{"time":"`...)
	b = e.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","node":`...)
	b = appendString(b, l.cfg.Node)
	b = append(b, `,"proxy":`...)
	b = appendString(b, e.Proxy)
	b = append(b, `,"account":`...)
	b = appendString(b, e.Account)
	b = append(b, `,"sub_account":`...)
	b = appendString(b, e.SubAccount)
	b = append(b, `,"client_ip":`...)
	b = appendAddr(b, e.Client)
	b = append(b, `,"exit_ip":`...)
	b = appendAddr(b, e.Exit)
	b = append(b, `,"method":`...)
	b = appendString(b, e.Method)
	b = append(b, `,"host":`...)
	b = appendString(b, e.Host)
	b = append(b, `,"port":`...)
	b = strconv.AppendInt(b, int64(e.Port), 10)
	if l.cfg.Paths && e.Path != "" {
		b = append(b, `,"path":`...)
		b = appendString(b, e.Path)
	}
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `,"bytes_in":`...)
	b = strconv.AppendInt(b, e.BytesIn, 10)
	b = append(b, `,"bytes_out":`...)
	b = strconv.AppendInt(b, e.BytesOut, 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(e.Duration.Microseconds())/1000, 'f', 3, 64)
	b = append(b, `,"error":`...)
	b = appendString(b, e.Error)
	return append(b, "}\n"...)
}

func appendAddr(b []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return append(b, `""`...)
	}
	b = append(b, '"')
	b = a.AppendTo(b)
	return append(b, '"')
}

// appendString appends s as a JSON string, escaped as encoding/json escapes it (HTML-safe).
func appendString(b []byte, s string) []byte {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // rare: a value that needs escaping
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
