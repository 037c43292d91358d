package main

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// fdKinds counts the open descriptors of process pid by what they are: a file (by path), a pipe,
// an epoll or other anonymous inode, or a TCP socket by state and by which endpoint of the soak
// each end is (names maps "127.0.0.1:port" to "api", "origin http", ...). When descriptors outlive
// the load, the difference of two of these says which.
func fdKinds(pid int, names map[string]string) (map[string]int, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	sockets := tcpSockets(pid, names)
	out := map[string]int{}
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		kind := target
		switch {
		case strings.HasPrefix(target, "socket:["):
			kind = "socket (not TCP)"
			if s, ok := sockets[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")]; ok {
				kind = s
			}
		case strings.HasPrefix(target, "pipe:"):
			kind = "pipe"
		}
		out[kind]++
	}
	return out, nil
}

// tcpStates are the kernel's TCP state numbers (include/net/tcp_states.h).
var tcpStates = map[string]string{"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
	"05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"}

// tcpSockets describes the IPv4 TCP sockets of pid's network namespace by inode.
func tcpSockets(pid int, names map[string]string) map[string]string {
	out := map[string]string{}
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 10 {
			continue
		}
		local, remote := procAddr(fs[1]), procAddr(fs[2])
		state := tcpStates[fs[3]]
		if state == "LISTEN" {
			out[fs[9]] = fmt.Sprintf("tcp LISTEN %s", endpoint(local, names, false))
			continue
		}
		out[fs[9]] = fmt.Sprintf("tcp %s %s → %s", state, endpoint(local, names, true), endpoint(remote, names, true))
	}
	return out
}

// endpoint names an address: a known listener by name, otherwise its IP (the port of a client's
// end is left out, so that the many ends of one kind count as one kind).
func endpoint(addr netip.AddrPort, names map[string]string, dropPort bool) string {
	if n, ok := names[addr.String()]; ok {
		return n
	}
	if dropPort {
		return addr.Addr().String()
	}
	return addr.String()
}

// procAddr decodes /proc/net/tcp's "0100007F:1F90" (the IPv4 address in host order, little-endian
// here) into 127.0.0.1:8080.
func procAddr(s string) netip.AddrPort {
	h, p, ok := strings.Cut(s, ":")
	b, err := hex.DecodeString(h)
	port, perr := strconv.ParseUint(p, 16, 16)
	if !ok || err != nil || perr != nil || len(b) != 4 {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{b[3], b[2], b[1], b[0]}), uint16(port))
}

// fdGrowth lists the kinds of descriptors there are more of in after than in before.
func fdGrowth(before, after map[string]int) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(after)) {
		if d := after[k] - before[k]; d > 0 {
			out = append(out, fmt.Sprintf("%+d %s (%d → %d)", d, k, before[k], after[k]))
		}
	}
	return out
}
