package accesslog_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/accesslog"
)

func entry(i int) accesslog.Entry {
	return accesslog.Entry{Time: time.Date(2026, 12, 3, 14, 32, 0, i, time.UTC), Proxy: "us-ca", Account: "alice",
		SubAccount: "alice-1", Client: netip.MustParseAddr("127.0.0.7"), Exit: netip.MustParseAddr("127.0.0.2"),
		Method: "GET", Host: "example.com", Port: 80, Path: "/search?q=secret", Status: 200, BytesIn: 10, BytesOut: 2000,
		Duration: 1500 * time.Microsecond}
}

func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
}

// Every field of an entry is on its line, as JSON; the path only when asked for.
func TestLineHoldsEveryField(t *testing.T) {
	for _, paths := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "access.log")
		l, err := accesslog.Open(accesslog.Config{Path: path, Paths: paths, Node: "node-a", Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		e := entry(0)
		e.Error = `odd "reason"`
		l.Add(e)
		if err := l.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		lines := readLines(t, path)
		if len(lines) != 1 {
			t.Fatalf("%d lines, want 1", len(lines))
		}
		want := map[string]any{"time": "2026-12-03T14:32:00Z", "node": "node-a", "proxy": "us-ca", "account": "alice",
			"sub_account": "alice-1", "client_ip": "127.0.0.7", "exit_ip": "127.0.0.2", "method": "GET", "host": "example.com",
			"port": 80.0, "status": 200.0, "bytes_in": 10.0, "bytes_out": 2000.0, "duration_ms": 1.5, "error": `odd "reason"`}
		if paths {
			want["path"] = "/search?q=secret"
		}
		for k, v := range want {
			if lines[0][k] != v {
				t.Errorf("paths=%v: %s = %#v, want %#v", paths, k, lines[0][k], v)
			}
		}
		if len(lines[0]) != len(want) {
			t.Errorf("paths=%v: %d fields %v, want %d", paths, len(lines[0]), lines[0], len(want))
		}
	}
}

// logrotate renames the file and sends SIGUSR1 (Reopen): lines before go to the renamed file, lines
// after to a new file at the path, and none is lost.
func TestReopenAfterRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	l, err := accesslog.Open(accesslog.Config{Path: path, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		l.Add(entry(i))
	}
	// The writer may still hold some of the 500: whichever file they reach, none may be lost.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	l.Reopen()
	for i := 500; i < 1000; i++ {
		l.Add(entry(i))
	}
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	old, cur := readLines(t, path+".1"), readLines(t, path)
	if len(old)+len(cur) != 1000 || len(cur) == 0 {
		t.Fatalf("%d lines in the renamed file and %d in the new one, want 1000 in all and some in the new one", len(old), len(cur))
	}
	seen := map[string]bool{}
	for _, m := range append(old, cur...) {
		seen[m["time"].(string)] = true
	}
	if len(seen) != 1000 {
		t.Errorf("%d distinct lines, want 1000", len(seen))
	}
	if last := cur[len(cur)-1]["time"].(string); !strings.HasPrefix(last, "2026-12-03T14:32:00.000000999") {
		t.Errorf("the new file ends with %s, want the last entry", last)
	}
}

// A writer that never takes a byte (a stuck disk) never makes Add wait: entries beyond the queue are
// dropped and counted.
func TestStuckWriterNeverBlocks(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var dropped atomic.Int64
	l, err := accesslog.Open(accesslog.Config{Writer: w, Queue: 8, Dropped: func() { dropped.Add(1) }, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200_000 { // far more than the pipe's buffer and the queue hold
			l.Add(entry(i))
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second): // only a broken build waits; a working one returns at once
		t.Fatal("Add waited for a stuck writer")
	}
	if dropped.Load() == 0 {
		t.Error("no entry was counted as dropped")
	}
	go io.Copy(io.Discard, r) // unstick the writer so Close can finish
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		t.Error(err)
	}
	w.Close()
}
