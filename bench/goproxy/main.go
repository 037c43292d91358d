// Command goproxy is the load harness's reference Go proxy: a minimal forward proxy built on
// github.com/elazarl/goproxy with its defaults (plain HTTP forwarded through an http.Transport,
// CONNECT tunnelled with io.Copy), except that the transport ignores HTTP_PROXY and keeps as many
// idle origin connections as the load needs, so the comparison measures the proxy rather than a
// connection pool of two. It is a module of its own so that exitmesh does not depend on goproxy.
package main

import (
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/elazarl/goproxy"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:3130", "address to listen on")
	flag.Parse()
	p := goproxy.NewProxyHttpServer()
	p.Logger = log.New(io.Discard, "", 0)
	p.Tr = &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
	}
	p.ConnectDial = nil // dial targets directly, never through HTTPS_PROXY
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.Serve(ln))
}
