package config

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestChangedKeys(t *testing.T) {
	base := func() *Config {
		c, err := Load(specFile)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		name   string
		change func(*Config)
		want   []string
	}{
		{"nothing", func(*Config) {}, nil},
		{"a removed plan", func(c *Config) { c.Plans = nil }, []string{"plans"}},
		{"scalars in sections", func(c *Config) {
			c.Store = "sqlite:other.db"
			c.API.Listen = "127.0.0.1:9443"
			c.Timeouts.Idle = Duration(time.Minute)
			c.Log.Level = "debug"
		}, []string{"store", "api.listen", "timeouts.idle", "log.level"}},
		{"a list is one value", func(c *Config) {
			c.Proxies[0].Exits[1].IP = netip.MustParseAddr("127.0.0.9")
			c.Egress.Allow = nil
		}, []string{"proxies", "egress.allow"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := base(), base()
			tt.change(b)
			if got := ChangedKeys(a, b); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestChangedKeysAbsentEqualsEmpty(t *testing.T) {
	a, b := Default(), Default()
	a.Egress.Allow, b.Egress.Allow = nil, []netip.Prefix{}
	if got := ChangedKeys(a, b); got != nil {
		t.Errorf("got %q, want none", got)
	}
}
