package config

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    Size
		wantErr string
	}{
		{"0", 0, ""},
		{"512", 512, ""},
		{"512B", 512, ""},
		{"1KB", 1000, ""},
		{"10GB", 10_000_000_000, ""},
		{"10 GB", 10_000_000_000, ""},
		{"2TB", 2_000_000_000_000, ""},
		{"64KiB", 65536, ""},
		{"64kib", 65536, ""},
		{"64KIB", 65536, ""},
		{"3MiB", 3 << 20, ""},
		{"1mb", 1_000_000, ""},
		{"1GiB", 1 << 30, ""},
		{"1TiB", 1 << 40, ""},
		{"1.5GB", 1_500_000_000, ""},
		{"0.5KiB", 512, ""},
		{" 7 b ", 7, ""},
		{"9223372036854775807", math.MaxInt64, ""},
		{"", 0, "want a number"},
		{"GB", 0, "want a number"},
		{"-1", 0, "must not be negative"},
		{"-5GB", 0, "must not be negative"},
		{"10QB", 0, `unknown unit "QB"`},
		{"10K", 0, `unknown unit "K"`},
		{"10 G B", 0, "unknown unit"},
		{"1.2.3MB", 0, "want a number"},
		{"1.5B", 0, "not a whole number of bytes"},
		{"9223372036854775808", 0, "too large"},
		{"10000000TB", 0, "too large"},
		{"0x10", 0, "unknown unit"},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseSize(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestSizeString(t *testing.T) {
	tests := []struct {
		in   Size
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{1500, "1500B"},
		{1000, "1KB"},
		{1024, "1KiB"},
		{64 * KiB, "64KiB"},
		{10 * GB, "10GB"},
		{1000 * KiB, "1000KiB"},
		{3 * TiB, "3TiB"},
		{-2048, "-2KiB"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
		if tt.in < 0 {
			continue
		}
		if back, err := ParseSize(tt.want); err != nil || back != tt.in {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.want, back, err, tt.in)
		}
	}
}

func TestSizeHuman(t *testing.T) {
	tests := []struct {
		in   Size
		want string
	}{
		{0, "0 B"},
		{999, "999 B"},
		{1000, "1 KB"},
		{10_000, "10 KB"},
		{12_345, "12.3 KB"},
		{1_250_000_000, "1.2 GB"},
		{9_999_999_999, "9.9 GB"}, // rounded down: below a 10 GB limit, shown below it
		{10 * GB, "10 GB"},
		{GiB, "1 GB"},
		{3 * TB, "3 TB"},
	}
	for _, tt := range tests {
		if got := tt.in.Human(); got != tt.want {
			t.Errorf("Size(%d).Human() = %q, want %q", int64(tt.in), got, tt.want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"60s", time.Minute, ""},
		{"15m", 15 * time.Minute, ""},
		{"500ms", 500 * time.Millisecond, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"60", time.Minute, ""},
		{"0", 0, ""},
		{" 5 ", 5 * time.Second, ""},
		{"-5s", -5 * time.Second, ""}, // Validate rejects it with the key
		{"9223372036", 9223372036 * time.Second, ""},
		{"9223372037", 0, "out of range"},
		{"99999999999999999999", 0, "out of range"},
		{"", 0, "invalid duration"},
		{"1.5", 0, "invalid duration"},
		{"60x", 0, "invalid duration"},
		{"s", 0, "invalid duration"},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseDuration(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got.D() != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

// TestYAMLScalars checks that sizes and durations decode from both YAML strings and integers.
func TestYAMLScalars(t *testing.T) {
	tests := []struct {
		yaml     string
		wantSize Size
		wantDur  Duration
	}{
		{"{s: 1024, d: 30}", 1024, Duration(30 * time.Second)},
		{"{s: '64KiB', d: '500ms'}", 64 * KiB, Duration(500 * time.Millisecond)},
		{"{s: 10 GB, d: 1m}", 10 * GB, Duration(time.Minute)},
	}
	for _, tt := range tests {
		var got struct {
			S Size     `yaml:"s"`
			D Duration `yaml:"d"`
		}
		if err := yaml.Unmarshal([]byte(tt.yaml), &got); err != nil {
			t.Errorf("Unmarshal(%q): %v", tt.yaml, err)
			continue
		}
		if got.S != tt.wantSize || got.D != tt.wantDur {
			t.Errorf("Unmarshal(%q) = %v, %v; want %v, %v", tt.yaml, got.S, got.D, tt.wantSize, tt.wantDur)
		}
	}
}

func ExampleSize_String() {
	s, _ := ParseSize("65536")
	fmt.Println(s)
	// Output: 64KiB
}
