package operator

import (
	"testing"
	"time"

	"github.com/exitmesh/exitmesh/internal/domain"
)

func TestDescriptions(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	tests := []struct{ got, want string }{
		{AccountStatus(domain.Account{Confirmed: true}), "active"},
		{AccountStatus(domain.Account{}), "unconfirmed"},
		{AccountStatus(domain.Account{Confirmed: true, Disabled: true}), "disabled"},
		{BandwidthUsed(1_200_000_000, 10_000_000_000), "1.2 GB of 10 GB"},
		{BandwidthUsed(10_000_000_000, 10_000_000_000), "10 GB of 10 GB (spent: the proxies answer 402)"},
		{BandwidthUsed(999, 0), "999 B (unlimited plan)"},
		{ExitHealth(domain.ExitStatus{Healthy: true}, now), "up"},
		{ExitHealth(domain.ExitStatus{Since: now.Add(-12 * time.Second)}, now), "DOWN 12s"},
		{ExitLatency(domain.ExitStatus{}), "-"},
		{ExitLatency(domain.ExitStatus{Latency: 1234567 * time.Nanosecond}), "1.23ms"},
		{ReportAge(domain.ExitStatus{Updated: now.Add(-2500 * time.Millisecond)}, now), "3s ago"},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%d: got %q, want %q", i, tt.got, tt.want)
		}
	}
	if _, err := PasswordHash("short"); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("PasswordHash(short) = %v, want EINVALID", err)
	}
	if h, err := PasswordHash("long-enough"); err != nil || h == "" {
		t.Errorf("PasswordHash = %q, %v", h, err)
	}
}
