package node

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/config"
)

// TestMergeReloadable checks that the keys a reload applies and the keys it reports as needing a
// restart split every key of the config between them.
func TestMergeReloadable(t *testing.T) {
	old := config.Default()
	changed := config.Default()
	changed.Store = "sqlite:other.db"
	changed.API.Listen = "127.0.0.1:1"
	changed.Node.Name = "other"
	changed.Metrics.Listen = ""
	changed.Proxies = []config.Proxy{{Name: "us-ca", Listen: "127.0.0.1:0",
		Exits: []config.Exit{{IP: netip.MustParseAddr("127.0.0.2")}}}}
	changed.Egress.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	changed.Bans.Window = config.Duration(time.Hour)
	changed.Hostnames.Interval = config.Duration(time.Minute)
	changed.Plans = []config.Plan{{Name: "starter"}}
	changed.Timeouts.Idle = config.Duration(time.Second)
	changed.Limits.MaxHeaderBytes = config.KiB
	changed.Sync.Interval = config.Duration(time.Second)
	changed.Usage.FlushInterval = config.Duration(time.Second)
	changed.Log.Level = "debug"
	changed.Health.Target = "127.0.0.1:80"
	changed.Sessions.TTL = config.Duration(time.Hour)

	running, restart := mergeReloadable(old, changed)
	if got := config.ChangedKeys(running, changed); !slices.Equal(got, restart) {
		t.Errorf("the running config differs from the new one in %q, want exactly the restart keys %q", got, restart)
	}
	applied := config.ChangedKeys(old, running)
	for _, key := range applied {
		if top, _, _ := strings.Cut(key, "."); !slices.Contains(reloadable, top) {
			t.Errorf("reload applied %s, which is not reloadable", key)
		}
	}
	if len(applied) != 4 || len(restart) != 12 {
		t.Errorf("applied %q and restart %q, want the 4 reloadable keys and the 12 others", applied, restart)
	}
}
