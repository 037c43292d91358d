package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/exitmesh/exitmesh/internal/origin"
)

// originServers are the far ends of the load, in this process on 127.0.0.1: the tests' origin for
// HTTP (its /ip answers the source address it saw), and a TCP echo for the tunnels that first
// sends the source address it saw, then echoes. The HTTP origin has no idle timeout: a kept-alive
// connection lasts until the node closes it.
type originServers struct {
	httpURL  string
	echoAddr string
	http     *http.Server
	echoLn   net.Listener
	echoOpen atomic.Int64 // echo connections open now
}

func startOrigin() (*originServers, error) {
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	el, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		hl.Close()
		return nil, err
	}
	o := &originServers{httpURL: "http://" + hl.Addr().String(), echoAddr: el.Addr().String(), echoLn: el,
		http: &http.Server{Handler: origin.Handler(), ReadHeaderTimeout: 10 * time.Second}}
	go o.http.Serve(hl)
	go o.acceptEcho()
	return o, nil
}

func (o *originServers) acceptEcho() {
	for {
		c, err := o.echoLn.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return // closed
		}
		o.echoOpen.Add(1)
		go func() {
			defer o.echoOpen.Add(-1)
			defer c.Close()
			ip := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr()
			if _, err := fmt.Fprintf(c, "%s\n", ip); err != nil {
				return
			}
			io.Copy(c, c)
		}()
	}
}

func (o *originServers) close() {
	o.http.Close()
	o.echoLn.Close()
}
