// Package operator is what the operator's two tools share: `exitmesh admin` and the dashboard's
// operator pages check new passwords, describe accounts, bandwidth and exit health, and read the
// month's bandwidth the same way, so both say the same thing about the same network.
package operator

import (
	"context"
	"time"

	"github.com/exitmesh/exitmesh/internal/auth"
	"github.com/exitmesh/exitmesh/internal/config"
	"github.com/exitmesh/exitmesh/internal/domain"
)

// PasswordHash checks pw against the password rules and returns its argon2id hash.
func PasswordHash(pw string) (string, error) {
	if err := domain.ValidatePassword(pw); err != nil {
		return "", err
	}
	return auth.HashPassword(pw)
}

// AccountStatus is "disabled", "unconfirmed" or "active".
func AccountStatus(a domain.Account) string {
	switch {
	case a.Disabled:
		return "disabled"
	case !a.Confirmed:
		return "unconfirmed"
	}
	return "active"
}

// MonthBandwidth reads every account's bandwidth in now's month (UTC) from the store: what the
// nodes have flushed, which trails the proxies by up to usage.flush_interval.
func MonthBandwidth(ctx context.Context, st domain.Store, now time.Time) (domain.MonthBandwidth, error) {
	return st.MonthBandwidth(ctx, now.UTC().Format("2006-01"), "")
}

// BandwidthUsed describes used bytes against a plan's monthly bandwidth: "1.2 GB of 10 GB".
func BandwidthUsed(used, limit int64) string {
	s := config.Size(used).Human()
	switch {
	case limit == 0:
		return s + " (unlimited plan)"
	case used >= limit:
		return s + " of " + config.Size(limit).Human() + " (spent: the proxies answer 402)"
	}
	return s + " of " + config.Size(limit).Human()
}

// ExitHealth is "up" or "DOWN", with how long it has been so when the exit ever changed: "DOWN 12s".
func ExitHealth(e domain.ExitStatus, now time.Time) string {
	health := "up"
	if !e.Healthy {
		health = "DOWN"
	}
	if !e.Since.IsZero() {
		health += " " + now.Sub(e.Since).Round(time.Second).String()
	}
	return health
}

// ExitLatency is the last check's latency, or "-" before any check succeeded.
func ExitLatency(e domain.ExitStatus) string {
	if e.Latency <= 0 {
		return "-"
	}
	return e.Latency.Round(10 * time.Microsecond).String()
}

// ReportAge is how long ago the exit's node reported it: "3s ago". A node that stopped reporting
// shows as an ever older report.
func ReportAge(e domain.ExitStatus, now time.Time) string {
	return now.Sub(e.Updated).Round(time.Second).String() + " ago"
}
