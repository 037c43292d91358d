package upstreamtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// envDatabaseURL is the variable that, like CI, marks a run that must not skip the tests needing
// outside programs (see internal/store/pgtest).
const envDatabaseURL = "EXITMESH_TEST_DATABASE_URL"

// stopTimeout bounds the wait for a killed microsocks to be reaped.
const stopTimeout = 10 * time.Second

// StartSOCKS5 starts microsocks on a free 127.0.0.1 port, requiring a generated username and
// password, with its outgoing connections bound to bindIP; it is killed when the test ends. Without
// microsocks the test is skipped, or fails when CI or EXITMESH_TEST_DATABASE_URL is set.
func StartSOCKS5(t testing.TB, bindIP string) *Proxy {
	t.Helper()
	bin := microsocks(t)
	p := &Proxy{Scheme: "socks5", User: "exit-" + strings.ToLower(secret()[:6]), Pass: secret()}
	p.launch = func() (func(), error) { return launchMicrosocks(bin, p.Addr, p.User, p.Pass, bindIP) }
	p.run(t)
	return p
}

// microsocks returns the path of the microsocks binary, or ends the test when there is none.
func microsocks(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("microsocks")
	if err == nil {
		return bin
	}
	const hint = "microsocks is not installed: apt-get install microsocks (.ci/run installs it)"
	if os.Getenv("CI") != "" || os.Getenv(envDatabaseURL) != "" {
		t.Fatalf("%s; CI must run the SOCKS5 upstream tests", hint)
	}
	t.Skipf("%s; skipping the SOCKS5 upstream test", hint)
	return ""
}

// launchMicrosocks runs microsocks on addr and returns once it accepts connections, with a function
// that kills it and waits for it to exit.
func launchMicrosocks(bin, addr, user, pass, bindIP string) (stop func(), err error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-i", host, "-p", port, "-u", user, "-P", pass, "-b", bindIP)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start microsocks: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	kill := func() {
		cmd.Process.Kill() // this process only, by its id
		select {
		case <-exited:
		case <-time.After(stopTimeout):
		}
	}
	if err := waitAccepting(addr, exited); err != nil {
		kill()
		return nil, fmt.Errorf("microsocks on %s did not start: %w (output: %q)", addr, err, out.String())
	}
	return kill, nil
}

// lockedBuffer collects a child's output, up to 64 KiB; exec copies into it from its own goroutine.
type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() < 64<<10 {
		l.b.Write(p)
	}
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
