package relay

import (
	"errors"
	"io"
	"net"
	"os"
	"time"

	"github.com/exitmesh/exitmesh/internal/peek"
)

const canSplice = true

// maxBurst bounds how long one io.Copy runs before the tunnel's idle clock hears of its bytes.
const maxBurst = 500 * time.Millisecond

// splice copies src to dst with io.Copy, which between two *net.TCPConn on Linux moves the bytes with
// splice(2) through a kernel pipe, never through user space. Go's splice holds its pipe (two file
// descriptors) for as long as io.Copy runs, waiting included, so the copy first waits until src is
// readable without holding anything (peek.Wait), then splices for one burst, then waits again: an
// idle tunnel holds no pipe and no buffer, only its two sockets. A burst ends at a deadline short
// against the idle timeout, so a busy direction reports its bytes often enough to keep the other,
// silent direction from taking the tunnel for idle.
func (t *tunnel) splice(dst, src *net.TCPConn) (int64, error) {
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
		src.SetReadDeadline(begin.Add(burst))
		if t.idle > 0 {
			dst.SetWriteDeadline(begin.Add(t.idle)) // a receiver that takes nothing for idle ends it
		}
		n, err := io.Copy(dst, src)
		total += n
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
