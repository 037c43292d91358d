package relay

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"testing"
	"time"
)

// pair returns the two ends of a real loopback TCP connection.
func pair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-accepted
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

type pipeResult struct {
	up, down int64
	idled    bool
}

// startPipe relays between two loopback connections and returns the outer ends: what the client
// holds and what the origin holds.
func startPipe(t *testing.T, idle time.Duration) (client, origin net.Conn, done chan pipeResult) {
	return startPipeCounted(t, idle, nil)
}

// startPipeCounted is startPipe with the Pipe's running counters.
func startPipeCounted(t *testing.T, idle time.Duration, moved *Counters) (client, origin net.Conn, done chan pipeResult) {
	client, proxyClientSide := pair(t)
	proxyUpstreamSide, origin := pair(t)
	done = make(chan pipeResult, 1)
	go func() {
		up, down, idled := Pipe(proxyClientSide, proxyUpstreamSide, idle, moved)
		done <- pipeResult{up, down, idled}
	}()
	return client, origin, done
}

func wait(t *testing.T, done chan pipeResult) pipeResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("Pipe did not return")
		return pipeResult{}
	}
}

func TestPipeCopiesBothWaysWithHalfClose(t *testing.T) {
	client, origin, done := startPipe(t, time.Minute)
	request := make([]byte, 3<<20)
	response := make([]byte, 5<<20)
	rand.Read(request)
	rand.Read(response)

	// The origin reads the whole request (until the client's half-close) and only then answers.
	originErr := make(chan error, 1)
	go func() {
		got, err := io.ReadAll(origin)
		if err == nil && !bytes.Equal(got, request) {
			err = io.ErrUnexpectedEOF
		}
		if err == nil {
			_, err = origin.Write(response)
		}
		origin.Close()
		originErr <- err
	}()
	if _, err := client.Write(request); err != nil {
		t.Fatal(err)
	}
	client.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(client)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-originErr; err != nil {
		t.Fatalf("origin: %v", err)
	}
	if !bytes.Equal(got, response) {
		t.Fatalf("client got %d bytes, want the %d-byte response", len(got), len(response))
	}
	r := wait(t, done)
	if r.up != int64(len(request)) || r.down != int64(len(response)) || r.idled {
		t.Errorf("counted up=%d down=%d idled=%v, want %d and %d, not idled", r.up, r.down, r.idled, len(request), len(response))
	}
}

func TestPipeClosesIdleTunnel(t *testing.T) {
	client, _, done := startPipe(t, 200*time.Millisecond)
	if r := wait(t, done); !r.idled {
		t.Error("Pipe did not report the idle timeout that ended it")
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("client read after idle close = %d, %v; want EOF", n, err)
	}
}

func TestPipeKeepsTunnelAliveWhileOneSideTalks(t *testing.T) {
	idle := 600 * time.Millisecond
	client, origin, done := startPipe(t, idle)
	// The origin trickles one byte every idle/6 for 4 idle periods while the client stays silent:
	// a server push stream. The tunnel must stay open throughout. (A sixth of the idle time between
	// bytes leaves room for a loaded CI machine's scheduling stalls.)
	go func() {
		for range 24 {
			if _, err := origin.Write([]byte{'x'}); err != nil {
				return
			}
			time.Sleep(idle / 6)
		}
		origin.Close()
	}()
	got, err := io.ReadAll(client)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 24 {
		t.Errorf("client received %d bytes, want 24 (the tunnel closed while active)", len(got))
	}
	client.Close()
	wait(t, done)
}

func BenchmarkPipe(b *testing.B) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	conns := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	client, _ := net.Dial("tcp", ln.Addr().String())
	pc := <-conns
	pu, _ := net.Dial("tcp", ln.Addr().String())
	origin := <-conns
	go Pipe(pc, pu, time.Minute, nil)
	go io.Copy(io.Discard, origin)
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for range b.N {
		client.Write(buf)
	}
	b.StopTimer()
	client.Close()
	origin.Close()
}

// TestCountersFollowARunningPipe: the counters show the bytes each way while the tunnel is open, bulk
// (spliced) and small writes alike, and end equal to what Pipe returns.
func TestCountersFollowARunningPipe(t *testing.T) {
	var moved Counters
	client, origin, done := startPipeCounted(t, time.Minute, &moved)
	for _, size := range []int{100, 4 << 20} {
		data := make([]byte, size)
		rand.Read(data)
		upBefore, downBefore := moved.Up.Load(), moved.Down.Load()
		go client.Write(data)
		if _, err := io.ReadFull(origin, make([]byte, size)); err != nil {
			t.Fatal(err)
		}
		go origin.Write(data)
		if _, err := io.ReadFull(client, make([]byte, size)); err != nil {
			t.Fatal(err)
		}
		// A splice burst reports when it ends (within maxBurst): wait for the figures, bounded.
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if moved.Up.Load()-upBefore == int64(size) && moved.Down.Load()-downBefore == int64(size) {
				break
			}
		}
		if up, down := moved.Up.Load()-upBefore, moved.Down.Load()-downBefore; up != int64(size) || down != int64(size) {
			t.Fatalf("%d bytes each way moved while open: counters up %d, down %d", size, up, down)
		}
	}
	client.Close()
	origin.Close()
	r := wait(t, done)
	if r.up != moved.Up.Load() || r.down != moved.Down.Load() {
		t.Errorf("Pipe returned up %d, down %d; the counters hold %d and %d", r.up, r.down, moved.Up.Load(), moved.Down.Load())
	}
}
