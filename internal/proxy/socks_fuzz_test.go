package proxy

import (
	"bufio"
	"bytes"
	"net"
	"testing"
)

// FuzzSOCKSHandshake feeds the SOCKS5 parsers arbitrary bytes: they never panic, never read past
// what the format bounds, and a request they accept names a host:port.
func FuzzSOCKSHandshake(f *testing.F) {
	f.Add([]byte{5, 1, 2, 1, 5, 'a', 'l', 'i', 'c', 'e', 2, 'p', 'w', 5, 1, 0, 3, 4, 'a', '.', 'b', 'c', 0, 80})
	f.Add([]byte{5, 2, 0, 2, 1, 0, 0, 5, 1, 0, 1, 127, 0, 0, 1, 1, 187})
	f.Add([]byte{5, 1, 0, 5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80})
	f.Add([]byte{5, 0})
	f.Add([]byte{4, 1, 0, 80, 127, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReader(bytes.NewReader(data))
		methods, err := readGreeting(br)
		if err != nil {
			return
		}
		if len(methods) == 0 || len(methods) > 255 {
			t.Fatalf("methods %v", methods)
		}
		if bytes.IndexByte(methods, socksUserPass) >= 0 {
			user, pass, err := readUserPass(br)
			if err != nil {
				return
			}
			if user == "" || len(user) > 255 || len(pass) > 255 {
				t.Fatalf("user %q, password of %d bytes", user, len(pass))
			}
		}
		target, err := readRequest(br)
		if err != nil {
			return
		}
		if _, _, err := net.SplitHostPort(target); err != nil {
			t.Fatalf("accepted target %q: %v", target, err)
		}
	})
}
