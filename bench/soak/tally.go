package main

import (
	"errors"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// expected lists the error classes a soak may see without failing, each with the reason it is not
// a fault of the node. It is empty: on loopback, with limits raised and nothing restarting, every
// failed tunnel, request or API call is a finding.
var expected = map[string]string{}

// tally counts the errors by class and keeps the first of each.
type tally struct {
	mu    sync.Mutex // guards the following
	count map[string]int
	first map[string]string
}

func newTally() *tally { return &tally{count: map[string]int{}, first: map[string]string{}} }

// add counts one error of class ("tunnel: echo mismatch"); detail is quoted once.
func (t *tally) add(class, detail string) { t.addN(class, detail, 1) }

// addN counts n errors of class.
func (t *tally) addN(class, detail string, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.count[class] == 0 {
		t.first[class] = oneLine(detail)
	}
	t.count[class] += n
}

// errorClass is a short name for what kind of failure err is, for grouping.
func errorClass(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "out of file descriptors"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "out of local ports"
	case strings.Contains(err.Error(), "EOF"):
		return "closed (EOF)"
	}
	return "other"
}

type classCount struct {
	class, first string
	count        int
	reason       string // why it is expected; "" when it is not
}

// classes returns every class seen, unexpected ones first, most frequent first.
func (t *tally) classes() []classCount {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []classCount
	for c, n := range t.count {
		out = append(out, classCount{class: c, first: t.first[c], count: n, reason: expected[c]})
	}
	slices.SortFunc(out, func(a, b classCount) int {
		if (a.reason == "") != (b.reason == "") {
			if a.reason == "" {
				return -1
			}
			return 1
		}
		if a.count != b.count {
			return b.count - a.count
		}
		return strings.Compare(a.class, b.class)
	})
	return out
}

// unexpected is the number of errors of classes not in expected.
func (t *tally) unexpected() int {
	n := 0
	for _, c := range t.classes() {
		if c.reason == "" {
			n += c.count
		}
	}
	return n
}

func oneLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
