//go:build !linux

package egress

import "syscall"

func bindAddressNoPort(string, string, syscall.RawConn) error { return nil }
