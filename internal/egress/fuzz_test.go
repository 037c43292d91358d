package egress

import (
	"net"
	"strconv"
	"testing"
)

// FuzzSplitHostPort checks that a CONNECT target is accepted only as host:port with a port of 1 to
// 65535 and a non-empty host, whatever the bytes.
func FuzzSplitHostPort(f *testing.F) {
	for _, s := range []string{"example.com:443", "[::1]:80", "1.2.3.4:0", "host:65536", ":80", "a:b:c", "[::1]", "x:+1", "x:0x50"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		host, port, err := SplitHostPort(target)
		if err != nil {
			return
		}
		h, p, err := net.SplitHostPort(target)
		n, perr := strconv.ParseUint(p, 10, 16)
		if err != nil || perr != nil || h != host || n != uint64(port) {
			t.Fatalf("%q → %q %d, but net.SplitHostPort says %q %q %v", target, host, port, h, p, err)
		}
		if host == "" || port == 0 {
			t.Fatalf("%q accepted with host %q port %d", target, host, port)
		}
	})
}
