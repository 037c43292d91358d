//go:build !linux

package peek

import "syscall"

func wait(syscall.RawConn) error { return nil }

func idle(syscall.RawConn) bool { return true }

func closed(syscall.RawConn) bool { return false }
