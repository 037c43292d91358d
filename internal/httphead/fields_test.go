package httphead

import (
	"bufio"
	"bytes"
	"net/http"
	"net/textproto"
	"slices"
	"testing"
)

func TestResponseHead(t *testing.T) {
	for _, tt := range []struct {
		head string
		n    int
		ok   bool
	}{
		{"HTTP/1.1 200 OK\r\nA: 1\r\n\r\nbody", 25, true},
		{"HTTP/1.1 204\r\n\r\n", 16, true},
		{"HTTP/1.0 200 OK\r\nA: 1\r\n", 0, true},            // more to come
		{"HTTP/1.1 200 OK\r\nA: 1\r\n", 0, true},            // more to come
		{"HTTP/1.1 200 OK\nA: 1\r\n\r\n", 0, false},         // bare LF
		{"HTTP/1.1 200 OK\r\nA: 1\n", 0, false},             // bare LF, before the end arrives
		{"HTTP/1.1 200 OK\r\nA: 1\r\n b\r\n\r\n", 0, false}, // obs-fold
		{"HTTP/1.1 200 OK\r\nA : 1\r\n\r\n", 0, false},
		{"HTTP/1.1 200 OK\r\n: 1\r\n\r\n", 0, false},
		{"HTTP/1.1 200 OK\r\nA: 1\x002\r\n\r\n", 0, false},
		{"HTTP/2 200 OK\r\n\r\n", 0, false},
		{"HTTP/1.1 2000 OK\r\n\r\n", 0, false},
		{"HTTP/1.1 200 OK\r\nA: \xff\t1\r\n\r\n", 27, true}, // obs-text and tab are values
	} {
		n, ok := ResponseHead([]byte(tt.head))
		if n != tt.n || ok != tt.ok {
			t.Errorf("%q: %d %v, want %d %v", tt.head, n, ok, tt.n, tt.ok)
		}
	}
}

func TestFields(t *testing.T) {
	head := []byte("GET / HTTP/1.1\r\nhost: a\r\nX-B:  two  words \r\nx-b:x\r\n\r\n")
	var got []string
	for fs := FieldsOf(head); fs.Next(); {
		got = append(got, string(fs.Name)+"|"+string(fs.Value())+"|"+string(fs.Line))
	}
	want := []string{"host|a|host: a", "X-B|two  words|X-B:  two  words ", "x-b|x|x-b:x"}
	if !slices.Equal(got, want) {
		t.Errorf("fields %q, want %q", got, want)
	}
}

// FuzzResponseHead checks that a head ResponseHead finds strict is, field for field and in order,
// what net/http reads, so that relaying its lines relays what the proxy's framing was decided on.
func FuzzResponseHead(f *testing.F) {
	for _, h := range []string{
		"HTTP/1.1 200 OK\r\nA: 1\r\nb:2\r\nA: 3\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nSet-Cookie: a\r\n\r\nabc",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
		"HTTP/1.1 200 OK\r\nA: 1\r\n b\r\n\r\n",
	} {
		f.Add([]byte(h))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		n, ok := ResponseHead(in)
		if !ok || n == 0 {
			return
		}
		head := in[:n]
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), nil)
		if err != nil {
			return // net/http refuses more (a bad Content-Length, say): the proxy never relays it
		}
		got := http.Header{}
		for fs := FieldsOf(head); fs.Next(); {
			k := textproto.CanonicalMIMEHeaderKey(string(fs.Name))
			got[k] = append(got[k], string(fs.Value()))
		}
		for k, vs := range resp.Header {
			if !slices.Equal(got[k], vs) {
				t.Fatalf("%q: %s is %q line by line, %q to net/http", head, k, got[k], vs)
			}
		}
	})
}
