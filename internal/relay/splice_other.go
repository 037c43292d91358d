//go:build !linux

package relay

import "net"

const canSplice = false

func (t *tunnel) splice(dst, src *net.TCPConn) (int64, error) { return t.copyBuffered(dst, src) }
