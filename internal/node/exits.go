package node

import (
	"context"
	"time"

	"github.com/exitmesh/exitmesh/internal/loop"
)

// publishExitStatus reports the health of this node's exits to the store every interval until ctx
// ends, so operators see every node's exits in one place.
func (n *Node) publishExitStatus(ctx context.Context, node string, interval time.Duration) {
	loop.Loop{Interval: interval, Now: true, Log: n.log,
		Failing: "cannot report exit health to the store", Recovered: "exit health reported to the store again",
		Step: func(ctx context.Context) error {
			return n.store.PutExitStatuses(ctx, node, n.proxies.ExitStatuses(node))
		},
	}.Run(ctx)
}
