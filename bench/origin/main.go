// Command origin is the load harness's origin server, kept small and fast so that it costs every
// proxy under test the same and little:
//
//   - -http: HTTP/1.1 answering every request with a fixed small body, keeping connections alive
//     unless the request asks for Connection: close (or is HTTP/1.0 without keep-alive);
//   - -echo: TCP echo, the far end of CONNECT setups and of idle tunnels;
//   - -source: TCP bulk source: reads an 8-byte big-endian count, sends that many bytes, closes.
//
// Each takes a list of addresses: the harness gives every proxy under test ports of its own, so that
// one proxy's connections in TIME_WAIT never slow another's dials.
//
// It parses only what it needs of a request head and never allocates per request.
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"strings"
)

func main() {
	httpAddr := flag.String("http", "127.0.0.1:7080", "HTTP listen addresses, comma-separated")
	echoAddr := flag.String("echo", "127.0.0.1:7081", "TCP echo listen addresses, comma-separated")
	sourceAddr := flag.String("source", "127.0.0.1:7082", "TCP bulk source listen addresses, comma-separated")
	bodySize := flag.Int("body", 64, "bytes in each HTTP response body")
	flag.Parse()

	body := bytes.Repeat([]byte("x"), *bodySize)
	keep := response(body, false)
	closing := response(body, true)
	serve(*httpAddr, func(c net.Conn) { serveHTTP(c, keep, closing) })
	serve(*echoAddr, serveEcho)
	serve(*sourceAddr, serveSource)
	fmt.Println("ready")
	select {}
}

func response(body []byte, close bool) []byte {
	h := "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
	if close {
		h += "Connection: close\r\n"
	}
	return append([]byte(h+"\r\n"), body...)
}

// serve accepts on each of the comma-separated addrs and runs handle for each connection in its own
// goroutine.
func serve(addrs string, handle func(net.Conn)) {
	for addr := range strings.SplitSeq(addrs, ",") {
		serveOne(addr, handle)
	}
}

func serveOne(addr string, handle func(net.Conn)) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				log.Printf("accept %s: %v", addr, err)
				os.Exit(1)
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
}

var (
	headerConnection    = []byte("connection:")
	headerContentLength = []byte("content-length:")
)

// serveHTTP answers requests on c until the client closes or asks to.
func serveHTTP(c net.Conn, keep, closing []byte) {
	br := bufio.NewReaderSize(c, 4096)
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		close := bytes.Contains(line, []byte("HTTP/1.0"))
		var length int64
		for {
			line, err = br.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(line) <= 2 {
				break
			}
			switch {
			case hasPrefixFold(line, headerConnection):
				v := line[len(headerConnection):]
				if containsFold(v, "close") {
					close = true
				} else if containsFold(v, "keep-alive") {
					close = false
				}
			case hasPrefixFold(line, headerContentLength):
				length, _ = strconv.ParseInt(string(bytes.TrimSpace(line[len(headerContentLength):])), 10, 64)
			}
		}
		if length > 0 {
			if _, err := br.Discard(int(length)); err != nil {
				return
			}
		}
		if close {
			c.Write(closing)
			return
		}
		if _, err := c.Write(keep); err != nil {
			return
		}
	}
}

func hasPrefixFold(line, prefix []byte) bool {
	return len(line) >= len(prefix) && bytes.EqualFold(line[:len(prefix)], prefix)
}

// containsFold reports whether s contains the lower-case ASCII word, in any case.
func containsFold(s []byte, word string) bool {
	for i := 0; i+len(word) <= len(s); i++ {
		if bytes.EqualFold(s[i:i+len(word)], []byte(word)) {
			return true
		}
	}
	return false
}

// serveEcho sends back what it reads until the client closes.
func serveEcho(c net.Conn) {
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// serveSource sends as many bytes as the client asks for in its first 8 bytes.
func serveSource(c net.Conn) {
	var want [8]byte
	if _, err := io.ReadFull(c, want[:]); err != nil {
		return
	}
	n := int64(binary.BigEndian.Uint64(want[:]))
	buf := make([]byte, 256<<10)
	for n > 0 {
		chunk := buf[:min(int64(len(buf)), n)]
		w, err := c.Write(chunk)
		n -= int64(w)
		if err != nil {
			return
		}
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	io.Copy(io.Discard, c) // until the client closes
}
