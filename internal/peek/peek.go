// Package peek looks at a socket's receive queue without taking anything from it: whether an idle
// keep-alive connection is still open, and waiting until a socket has something to read without
// holding a buffer meanwhile.
package peek

import "syscall"

// Wait blocks until c has bytes to read, the peer has closed it, it failed, or its read deadline
// passed (os.ErrDeadlineExceeded). It reads nothing. Where peeking is not available it returns at
// once.
func Wait(c syscall.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	return wait(rc)
}

// Idle reports whether c is open with nothing to read: a pooled connection the peer has neither
// closed nor written to since its last response, which is safe to send a request on. Where peeking
// is not available it reports true.
func Idle(c syscall.Conn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	return idle(rc)
}

// Closed reports whether c's peer has closed it or reset it: nothing more will come. It reads
// nothing. Where peeking is not available it reports false.
func Closed(c syscall.Conn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	return closed(rc)
}
