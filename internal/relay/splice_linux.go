package relay

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/exitmesh/exitmesh/internal/peek"
)

const canSplice = true

// maxBurst bounds how long one io.Copy runs before the tunnel's idle clock hears of its bytes.
const maxBurst = 500 * time.Millisecond

// splice copies src to dst with io.Copy, which between two *net.TCPConn on Linux moves the bytes with
// splice(2) through a kernel pipe, never through user space. Go's splice holds its pipe (two file
// descriptors) for as long as io.Copy runs, waiting included, and keeps it pooled afterwards, so
// splice is kept for bulk: the copy waits until src is readable without holding anything
// (peek.Wait), reads what arrived through a pooled buffer, and only when that fills the buffer —
// more is coming — splices for one burst. An interactive tunnel (a TLS handshake, a request and its
// answer) never takes a pipe, and an idle one holds nothing but its two sockets. A burst ends at a
// deadline short against the idle timeout, so a busy direction reports its bytes often enough to
// keep the other, silent direction from taking the tunnel for idle.
func (t *tunnel) splice(dst, src *net.TCPConn, moved *atomic.Int64) (int64, error) {
	burst := maxBurst
	if t.idle > 0 {
		burst = min(burst, max(t.idle/8, time.Millisecond))
	}
	var total int64
	for {
		if t.idle > 0 {
			src.SetReadDeadline(time.Unix(0, t.last.Load()).Add(t.idle))
		}
		err := peek.Wait(src)
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded) && !t.idleFor():
			continue // the other direction moved bytes meanwhile
		default:
			return total, err
		}
		begin := time.Now()
		if t.idle > 0 {
			dst.SetWriteDeadline(begin.Add(t.idle)) // a receiver that takes nothing for idle ends it
		}
		n, more, err := copyOnce(dst, src)
		total += n
		moved.Add(n)
		if n > 0 {
			t.touch()
		}
		switch {
		case errors.Is(err, io.EOF):
			return total, nil
		case err != nil:
			return total, err
		case !more:
			continue
		}
		src.SetReadDeadline(begin.Add(burst))
		n, err = io.Copy(dst, src)
		total += n
		moved.Add(n)
		if n > 0 {
			t.touch()
		}
		switch {
		case err == nil:
			return total, nil // EOF
		case !errors.Is(err, os.ErrDeadlineExceeded):
			return total, err
		case t.idle > 0 && time.Since(begin) >= t.idle:
			// The write deadline: the receiver took nothing for idle (a read deadline only ends a
			// burst while the pipe is empty, so it loses nothing; this one may, and ends the tunnel).
			return total, err
		case n == 0 && t.idleFor():
			return total, err
		}
		// The burst is over; wait for more without holding the pipe.
	}
}

// copyOnce copies what one read of src returns, through a pooled buffer; more reports that the read
// filled the buffer.
func copyOnce(dst, src net.Conn) (n int64, more bool, err error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	nr, err := src.Read(buf)
	if nr > 0 {
		nw, werr := dst.Write(buf[:nr])
		if werr != nil {
			return int64(nw), false, werr
		}
	}
	return int64(nr), nr == len(buf), err
}
