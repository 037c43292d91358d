// Package relay copies bytes between the two ends of a tunnel until both are done, the tunnel idles,
// or either side fails. Between two TCP connections on Linux the bytes never enter user space (see
// splice); otherwise they go through pooled 32 KiB buffers.
package relay

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

const bufSize = 32 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// Counters are the bytes a running Pipe has moved each way so far, for a meter to read while it runs.
// A splice burst adds its bytes when it ends, so they trail the wire by at most maxBurst.
type Counters struct {
	Up, Down atomic.Int64
}

// Pipe relays between client and upstream and closes both before it returns. A side that ends
// cleanly (EOF) is half-closed towards the other, so request/response protocols that shut down their
// write side still get their answer. When no byte has moved either way for idle (0 = never), or a side
// fails, both are closed; so are both when a receiver takes nothing for idle. It returns the bytes
// copied from client to upstream and back, and whether idle is what ended the tunnel. moved, when not
// nil, follows the bytes as they go.
func Pipe(client, upstream net.Conn, idle time.Duration, moved *Counters) (up, down int64, idled bool) {
	t := &tunnel{idle: idle}
	if moved == nil {
		moved = &Counters{}
	}
	t.touch()
	upDone := make(chan int64, 1) // buffered: the sender never waits for a reader that left
	go func() {
		n := t.copyAndClose(upstream, client, &moved.Up)
		upDone <- n
	}()
	down = t.copyAndClose(client, upstream, &moved.Down)
	up = <-upDone
	client.Close()
	upstream.Close()
	return up, down, t.idled.Load()
}

type tunnel struct {
	idle  time.Duration
	last  atomic.Int64 // unix nanoseconds of the last byte read either way
	idled atomic.Bool  // a direction ended at its idle deadline
}

func (t *tunnel) touch() { t.last.Store(time.Now().UnixNano()) }

// idleFor reports whether the whole tunnel, both directions, has been silent for t.idle.
func (t *tunnel) idleFor() bool {
	return time.Since(time.Unix(0, t.last.Load())) >= t.idle
}

// copyAndClose copies src to dst; on EOF it half-closes dst, on any other end it closes both, which
// also ends the opposite direction.
func (t *tunnel) copyAndClose(dst, src net.Conn, moved *atomic.Int64) int64 {
	n, err := t.copy(dst, src, moved)
	if err == nil {
		closeWrite(dst)
	} else {
		// The only deadlines on either side are the idle ones: a read with nothing either way, or a
		// write the receiver did not take.
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.idled.Store(true)
		}
		src.Close()
		dst.Close()
	}
	return n
}

func (t *tunnel) copy(dst, src net.Conn, moved *atomic.Int64) (int64, error) {
	if d, s, ok := tcpPair(dst, src); ok && canSplice {
		return t.splice(d, s, moved)
	}
	return t.copyBuffered(dst, src, moved)
}

func tcpPair(dst, src net.Conn) (*net.TCPConn, *net.TCPConn, bool) {
	d, ok1 := dst.(*net.TCPConn)
	s, ok2 := src.(*net.TCPConn)
	return d, s, ok1 && ok2
}

// copyBuffered copies through a pooled buffer, pushing the idle deadline forward at every read.
func (t *tunnel) copyBuffered(dst, src net.Conn, moved *atomic.Int64) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var total int64
	for {
		if t.idle > 0 {
			src.SetReadDeadline(time.Unix(0, t.last.Load()).Add(t.idle))
		}
		n, err := src.Read(buf)
		if n > 0 {
			t.touch()
			if t.idle > 0 {
				dst.SetWriteDeadline(time.Now().Add(t.idle))
			}
			w, werr := dst.Write(buf[:n])
			total += int64(w)
			moved.Add(int64(w))
			if werr != nil {
				return total, werr
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			return total, nil
		case errors.Is(err, os.ErrDeadlineExceeded) && !t.idleFor():
			// The other direction moved bytes meanwhile: the tunnel is alive, wait again.
		default:
			return total, err
		}
	}
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	c.Close()
}
