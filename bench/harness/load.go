package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The load generators for what wrk cannot do: CONNECT tunnels. Each runs as its own process, pinned
// by the harness to the load CPU, and prints one JSON line.

// loadFlags are the flags every load generator takes.
type loadFlags struct {
	proxy, target, auth *string
	socks               *bool
}

func declareLoadFlags(fs *flag.FlagSet) loadFlags {
	return loadFlags{
		proxy:  fs.String("proxy", "", "proxy address host:port; empty connects to the target directly"),
		target: fs.String("target", "", "target host:port"),
		auth:   fs.String("auth", "", "Proxy-Authorization value, if any"),
		socks:  fs.Bool("socks5", false, "open tunnels with SOCKS5 (no authentication) instead of HTTP CONNECT"),
	}
}

// handshakeTimeout bounds opening one tunnel: connecting, and the proxy's answer to CONNECT.
var handshakeTimeout = 10 * time.Second

// open connects to target, through the proxy with CONNECT when one is given. The bytes the proxy
// sent after its answer's head, if any, are returned with the connection.
func (f loadFlags) open() (net.Conn, []byte, error) {
	if *f.proxy == "" {
		c, err := net.DialTimeout("tcp", *f.target, handshakeTimeout)
		return c, nil, err
	}
	c, err := net.DialTimeout("tcp", *f.proxy, handshakeTimeout)
	if err != nil {
		return nil, nil, err
	}
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	if *f.socks {
		if err := socksConnect(c, *f.target); err != nil {
			c.Close()
			return nil, nil, err
		}
		c.SetDeadline(time.Time{})
		return c, nil, nil
	}
	req := "CONNECT " + *f.target + " HTTP/1.1\r\nHost: " + *f.target + "\r\n"
	if *f.auth != "" {
		req += "Proxy-Authorization: " + *f.auth + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		c.Close()
		return nil, nil, err
	}
	var head []byte
	buf := make([]byte, 1024)
	for {
		n, err := c.Read(buf)
		head = append(head, buf[:n]...)
		if i := bytes.Index(head, []byte("\r\n\r\n")); i >= 0 {
			if !bytes.HasPrefix(head, []byte("HTTP/1.1 200")) && !bytes.HasPrefix(head, []byte("HTTP/1.0 200")) {
				c.Close()
				line, _, _ := bytes.Cut(head, []byte("\r\n"))
				return nil, nil, fmt.Errorf("CONNECT answered %q", line)
			}
			c.SetDeadline(time.Time{})
			return c, head[i+4:], nil
		}
		if err != nil || len(head) > 16<<10 {
			c.Close()
			return nil, nil, fmt.Errorf("CONNECT answer: %v", err)
		}
	}
}

// socksConnect opens a SOCKS5 tunnel to target (an IPv4 host:port) on c, without authentication.
func socksConnect(c net.Conn, target string) error {
	ap, err := netip.ParseAddrPort(target)
	if err != nil || !ap.Addr().Is4() {
		return fmt.Errorf("SOCKS5 target %q: want an IPv4 address and port", target)
	}
	// The greeting and the request go one after the other, not pipelined: small servers (microsocks)
	// read the greeting with one recv and drop what came behind it.
	if _, err := c.Write([]byte{5, 1, 0}); err != nil {
		return err
	}
	var choice [2]byte
	if _, err := io.ReadFull(c, choice[:]); err != nil || choice[1] != 0 {
		return fmt.Errorf("SOCKS5 method answer %v: %v", choice, err)
	}
	req := binary.BigEndian.AppendUint16(append([]byte{5, 1, 0, 1}, ap.Addr().AsSlice()...), ap.Port())
	if _, err := c.Write(req); err != nil {
		return err
	}
	var reply [10]byte // a reply with an IPv4 bound address
	if _, err := io.ReadFull(c, reply[:]); err != nil {
		return fmt.Errorf("SOCKS5 answer: %w", err)
	}
	if reply[1] != 0 || reply[3] != 1 {
		return fmt.Errorf("SOCKS5 answered %v", reply)
	}
	return nil
}

// ping sends a line through c to an echo server and reads it back.
func ping(c net.Conn, early []byte) error {
	const msg = "ping\n"
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	n := copy(got, early)
	if _, err := io.ReadFull(c, got[n:]); err != nil {
		return err
	}
	if string(got) != msg {
		return fmt.Errorf("echo answered %q", got)
	}
	return nil
}

// rateResult is what the connection-rate generator prints.
type rateResult struct {
	Count  int64   `json:"count"`
	Errors int64   `json:"errors"`
	Secs   float64 `json:"secs"`
	P50US  float64 `json:"p50_us"`
	P99US  float64 `json:"p99_us"`
	Error  string  `json:"error,omitempty"` // the first error, if any
}

// loadConnect opens tunnels as fast as it can from -c workers for -d: each opens a tunnel to the
// echo target, sends one line, reads it back and closes.
func loadConnect(args []string) error {
	fs := flag.NewFlagSet("load-connect", flag.ContinueOnError)
	lf := declareLoadFlags(fs)
	workers := fs.Int("c", 64, "concurrent workers")
	dur := fs.Duration("d", 5*time.Second, "duration")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var count, errs atomic.Int64
	var firstErr sync.Once
	var res rateResult
	lat := make([][]time.Duration, *workers)
	begin := time.Now()
	end := begin.Add(*dur)
	var wg sync.WaitGroup
	for w := range *workers {
		wg.Go(func() {
			for time.Now().Before(end) {
				t0 := time.Now()
				err := connectOnce(lf)
				if err != nil {
					errs.Add(1)
					firstErr.Do(func() { res.Error = err.Error() })
					time.Sleep(10 * time.Millisecond) // a failing proxy is not hammered in a tight loop
					continue
				}
				count.Add(1)
				if len(lat[w]) < 1<<20 {
					lat[w] = append(lat[w], time.Since(t0))
				}
			}
		})
	}
	wg.Wait()
	res.Secs = time.Since(begin).Seconds()
	res.Count, res.Errors = count.Load(), errs.Load()
	res.P50US, res.P99US = percentiles(slices.Concat(lat...))
	return printJSON(res)
}

func connectOnce(lf loadFlags) error {
	c, early, err := lf.open()
	if err != nil {
		return err
	}
	defer c.Close()
	return ping(c, early)
}

func percentiles(d []time.Duration) (p50, p99 float64) {
	if len(d) == 0 {
		return 0, 0
	}
	slices.Sort(d)
	at := func(q float64) float64 { return float64(d[int(q*float64(len(d)-1))].Microseconds()) }
	return at(0.50), at(0.99)
}

// bulkResult is what the bulk generator prints.
type bulkResult struct {
	Bytes int64   `json:"bytes"`
	Secs  float64 `json:"secs"`
}

// loadBulk opens one tunnel to the source target, asks it for -bytes and reads them all.
func loadBulk(args []string) error {
	fs := flag.NewFlagSet("load-bulk", flag.ContinueOnError)
	lf := declareLoadFlags(fs)
	total := fs.Int64("bytes", 2<<30, "bytes to receive")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, early, err := lf.open()
	if err != nil {
		return err
	}
	defer c.Close()
	if len(early) > 0 {
		return errors.New("the proxy sent bytes before the source did")
	}
	var want [8]byte
	binary.BigEndian.PutUint64(want[:], uint64(*total))
	begin := time.Now()
	if _, err := c.Write(want[:]); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Minute))
	buf := make([]byte, 256<<10)
	var got int64
	for got < *total {
		n, err := c.Read(buf)
		got += int64(n)
		if err != nil {
			return fmt.Errorf("after %d of %d bytes: %w", got, *total, err)
		}
	}
	return printJSON(bulkResult{Bytes: got, Secs: time.Since(begin).Seconds()})
}

// idleResult is what the idle-tunnel generator prints once its tunnels are open.
type idleResult struct {
	Opened int    `json:"opened"`
	Errors int    `json:"errors"`
	Error  string `json:"error,omitempty"`
}

// loadIdle opens -n tunnels to the echo target, checks each with one line, prints how many are
// open, and holds them until its standard input closes (or -hold passes), then closes them.
func loadIdle(args []string) error {
	fs := flag.NewFlagSet("load-idle", flag.ContinueOnError)
	lf := declareLoadFlags(fs)
	n := fs.Int("n", 5000, "tunnels")
	hold := fs.Duration("hold", 2*time.Minute, "longest time to hold the tunnels")
	fs.DurationVar(&handshakeTimeout, "timeout", 3*time.Second, "bound on opening one tunnel")
	if err := fs.Parse(args); err != nil {
		return err
	}
	conns := make([]net.Conn, *n)
	var errs atomic.Int64
	var res idleResult
	var firstErr sync.Once
	next := atomic.Int64{}
	// A proxy out of file descriptors fails every new tunnel: after a tenth of them failed, stop.
	maxErrors := int64(max(*n/10, 10))
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= *n || errs.Load() >= maxErrors {
					return
				}
				c, early, err := lf.open()
				if err == nil {
					if err = ping(c, early); err != nil {
						c.Close()
					}
				}
				if err != nil {
					errs.Add(1)
					firstErr.Do(func() { res.Error = err.Error() })
					continue
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	for _, c := range conns {
		if c != nil {
			res.Opened++
		}
	}
	res.Errors = int(errs.Load())
	if err := printJSON(res); err != nil {
		return err
	}
	released := make(chan struct{})
	go func() {
		io.Copy(io.Discard, bufio.NewReader(os.Stdin))
		close(released)
	}()
	select {
	case <-released:
	case <-time.After(*hold):
	}
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	return nil
}

func printJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Printf("%s\n", b)
	return err
}
