package peek

import "syscall"

// state peeks one byte without waiting: syscall.EAGAIN means nothing is queued.
func state(fd uintptr) error {
	var b [1]byte
	n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	if err == nil && n == 0 {
		return errClosed
	}
	return err
}

type closedError struct{}

func (closedError) Error() string { return "closed by peer" }

var errClosed error = closedError{}

func wait(rc syscall.RawConn) error {
	// RawConn.Read calls the function again each time the poller reports the socket readable; the
	// function is done as soon as anything other than "nothing queued" is seen.
	return rc.Read(func(fd uintptr) bool { return state(fd) != syscall.EAGAIN })
}

func idle(rc syscall.RawConn) bool {
	var st error
	if err := rc.Control(func(fd uintptr) { st = state(fd) }); err != nil {
		return false
	}
	return st == syscall.EAGAIN
}

func closed(rc syscall.RawConn) bool {
	var st error
	if err := rc.Control(func(fd uintptr) { st = state(fd) }); err != nil {
		return false
	}
	return st != nil && st != syscall.EAGAIN
}
