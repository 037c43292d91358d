package egress

import "syscall"

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT (Linux 4.2), missing from package syscall.
const ipBindAddressNoPort = 24

// bindAddressNoPort lets an exit bind its source address without choosing the source port at bind
// time. Without it the kernel must pick a port free for every destination at once, so a few tens
// of thousands of connections in TIME_WAIT (a busy exit's recent CONNECTs) make bind scan the whole
// port range on every dial and then fail with "address already in use"; with it the port is chosen
// at connect, per destination, as for a dial without a source address.
func bindAddressNoPort(_, _ string, c syscall.RawConn) error {
	return c.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1) // best effort: older kernels bind as before
	})
}
