package egress

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		ip   string
		want string
	}{
		{"8.8.8.8", ""},
		{"2606:4700::1111", ""},
		{"127.0.0.1", "loopback"},
		{"127.0.0.9", "loopback"},
		{"::1", "loopback"},
		{"10.1.2.3", "private"},
		{"172.16.0.1", "private"},
		{"192.168.1.1", "private"},
		{"fd00::1", "private"}, // ULA
		{"169.254.169.254", "link-local"},
		{"fe80::1", "link-local"},
		{"224.0.0.1", "multicast"},
		{"ff02::1", "multicast"},
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "unspecified"},
		{"::", "unspecified"},
		{"100.64.0.1", "shared (CGNAT)"},
		{"255.255.255.255", "broadcast"},
		{"::ffff:10.0.0.1", "private"},
		{"::ffff:127.0.0.1", "loopback"},
		{"64:ff9b::a00:1", "NAT64 private"},
		{"64:ff9b::808:808", ""},
		{"198.18.0.1", "benchmarking"},
		{"2002:a00:1::1", "6to4 private"},
		{"2002:7f00:1::", "6to4 loopback"},
		{"2002:a9fe:a9fe::1", "6to4 link-local"},
		{"2002:808:808::1", ""},
		{"::a00:1", "IPv4-compatible"},
		{"::808:808", "IPv4-compatible"},
		{"fd00:ec2::254", "private"}, // a cloud's IPv6 metadata address (ULA)
	}
	for _, tt := range tests {
		if got := Classify(netip.MustParseAddr(tt.ip)); got != tt.want {
			t.Errorf("Classify(%s) = %q, want %q", tt.ip, got, tt.want)
		}
	}
}

// recorder is a DialTCP hook that records every dial and refuses it, so no packet ever leaves.
type recorder struct {
	mu    sync.Mutex
	dials []netip.AddrPort
}

var errRefusedByTest = errors.New("dial refused by test hook")

func (r *recorder) dial(_ context.Context, _, remote netip.AddrPort) (net.Conn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dials = append(r.dials, remote)
	return nil, errRefusedByTest
}

func TestDialerRefusesInternalWithoutDialling(t *testing.T) {
	lookup := map[string][]netip.Addr{
		"internal.test": {netip.MustParseAddr("10.0.0.7")},
		"meta.test":     {netip.MustParseAddr("169.254.169.254")},
		"ula.test":      {netip.MustParseAddr("fd12::1")},
	}
	tests := []struct {
		dest, reason string
		local        string
	}{
		{"10.0.0.1:80", "private", "127.0.0.2"},
		{"192.168.0.1:443", "private", "127.0.0.2"},
		{"169.254.169.254:80", "link-local", "127.0.0.2"},
		{"[fd00::1]:80", "private", "::1"},
		{"[fe80::1]:80", "link-local", "::1"},
		{"127.0.0.1:80", "loopback", "127.0.0.2"},
		{"internal.test:80", "private", "127.0.0.2"},
		{"meta.test:80", "link-local", "127.0.0.2"},
		{"ula.test:80", "private", "::1"},
		{"[::ffff:10.0.0.1]:80", "private", "127.0.0.2"},
		{"8.8.8.8:25", "port", "127.0.0.2"},
	}
	for _, tt := range tests {
		t.Run(tt.dest, func(t *testing.T) {
			rec := &recorder{}
			d := &Dialer{
				Policy: &Policy{DenyPorts: DefaultDenyPorts},
				Lookup: func(_ context.Context, host string) ([]netip.Addr, error) {
					return lookup[host], nil
				},
				DialTCP: rec.dial,
			}
			_, err := d.Dial(context.Background(), netip.MustParseAddr(tt.local), tt.dest)
			var denied *DeniedError
			if !errors.As(err, &denied) {
				t.Fatalf("Dial(%s) error = %v, want *DeniedError", tt.dest, err)
			}
			if denied.Reason != tt.reason {
				t.Errorf("reason = %q, want %q", denied.Reason, tt.reason)
			}
			if len(rec.dials) != 0 {
				t.Errorf("dials made: %v, want none", rec.dials)
			}
		})
	}
}

func TestDialerDialsExactlyTheCheckedAddress(t *testing.T) {
	rec := &recorder{}
	calls := 0
	d := &Dialer{
		Policy: &Policy{},
		// A rebinding resolver: public on the first answer, internal afterwards. The dialer must
		// resolve once and dial the address it checked.
		Lookup: func(_ context.Context, host string) ([]netip.Addr, error) {
			calls++
			if calls == 1 {
				return []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("2606:2800::1")}, nil
			}
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		},
		DialTCP: rec.dial,
	}
	_, err := d.Dial(context.Background(), netip.MustParseAddr("127.0.0.2"), "rebind.test:443")
	if !errors.Is(err, errRefusedByTest) {
		t.Fatalf("error = %v, want the hook's refusal", err)
	}
	want := []netip.AddrPort{netip.MustParseAddrPort("93.184.216.34:443")}
	if len(rec.dials) != 1 || rec.dials[0] != want[0] {
		t.Errorf("dials = %v, want %v (public IPv4 only: private skipped, IPv6 not the exit's family)", rec.dials, want)
	}
	if calls != 1 {
		t.Errorf("lookups = %d, want 1", calls)
	}
}

func TestDialerAllowList(t *testing.T) {
	rec := &recorder{}
	d := &Dialer{
		Policy:  &Policy{Allow: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}},
		DialTCP: rec.dial,
	}
	if _, err := d.Dial(context.Background(), netip.Addr{}, "10.9.1.1:8080"); !errors.Is(err, errRefusedByTest) {
		t.Fatalf("allowed CIDR: error = %v, want the dial to be attempted", err)
	}
	var denied *DeniedError
	if _, err := d.Dial(context.Background(), netip.Addr{}, "10.8.1.1:8080"); !errors.As(err, &denied) {
		t.Fatalf("outside allowed CIDR: error = %v, want *DeniedError", err)
	}
	if len(rec.dials) != 1 || rec.dials[0] != netip.MustParseAddrPort("10.9.1.1:8080") {
		t.Errorf("dials = %v, want only 10.9.1.1:8080", rec.dials)
	}
}

// An upstream proxy is where the operator said it is, usually on a private network: DialTrusted
// skips the policy but still resolves through Lookup and dials through the DialTCP hook, from any
// local address.
func TestDialTrustedSkipsPolicyButUsesHooks(t *testing.T) {
	rec := &recorder{}
	lookups := 0
	d := &Dialer{
		Policy: &Policy{DenyPorts: []int{3128}},
		Lookup: func(_ context.Context, host string) ([]netip.Addr, error) {
			lookups++
			return []netip.Addr{netip.MustParseAddr("10.0.0.8"), netip.MustParseAddr("::ffff:10.0.0.9")}, nil
		},
		DialTCP: rec.dial,
	}
	_, err := d.DialTrusted(context.Background(), "squid.internal:3128")
	if !errors.Is(err, errRefusedByTest) {
		t.Fatalf("error = %v, want the hook's refusal", err)
	}
	want := []netip.AddrPort{netip.MustParseAddrPort("10.0.0.8:3128"), netip.MustParseAddrPort("10.0.0.9:3128")}
	if len(rec.dials) != 2 || rec.dials[0] != want[0] || rec.dials[1] != want[1] {
		t.Errorf("dials = %v, want %v (every resolved address, unmapped, policy not applied)", rec.dials, want)
	}
	if lookups != 1 {
		t.Errorf("lookups = %d, want 1", lookups)
	}
	if _, err := d.DialTrusted(context.Background(), "squid.internal"); !errors.Is(err, ErrBadDestination) {
		t.Errorf("no port: error = %v, want ErrBadDestination", err)
	}
}

func TestDialerRealLoopbackFromExitAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	seen := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		seen <- c.RemoteAddr().(*net.TCPAddr).IP.String()
		c.Close()
	}()
	d := &Dialer{Policy: &Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}}
	c, err := d.Dial(context.Background(), netip.MustParseAddr("127.0.0.5"), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := <-seen; got != "127.0.0.5" {
		t.Errorf("listener saw %s, want 127.0.0.5", got)
	}
}

func TestSplitHostPort(t *testing.T) {
	for _, bad := range []string{"example.com", "example.com:0", "example.com:70000", ":80", "example.com:http", ""} {
		if _, _, err := SplitHostPort(bad); !errors.Is(err, ErrBadDestination) {
			t.Errorf("SplitHostPort(%q) error = %v, want ErrBadDestination", bad, err)
		}
	}
	host, port, err := SplitHostPort("[::1]:443")
	if err != nil || host != "::1" || port != 443 {
		t.Errorf("SplitHostPort([::1]:443) = %q, %d, %v", host, port, err)
	}
}

func TestNumericLookalikesAreRefused(t *testing.T) {
	for _, host := range []string{"127.2", "2130706434", "0x7f.1", "0177.0.0.1", "0x7f000001", "127.0.0.01", "1.2.3", "0x.1"} {
		if _, _, err := SplitHostPort(host + ":80"); !errors.Is(err, ErrBadDestination) {
			t.Errorf("SplitHostPort(%q) = %v, want ErrBadDestination", host+":80", err)
		}
	}
	for _, host := range []string{"127.0.0.2", "example.com", "ab.cd", "1e100.net", "[::1]", "0xdead.example", "10.0.0.1"} {
		if _, _, err := SplitHostPort(host + ":80"); err != nil && host != "[::1]" {
			t.Errorf("SplitHostPort(%q) = %v, want it accepted", host+":80", err)
		}
	}
}
