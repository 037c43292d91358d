//go:build !linux

package relay

import (
	"net"
	"sync/atomic"
)

const canSplice = false

func (t *tunnel) splice(dst, src *net.TCPConn, moved *atomic.Int64) (int64, error) {
	return t.copyBuffered(dst, src, moved)
}
