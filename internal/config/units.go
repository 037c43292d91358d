package config

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written in YAML as "60s", "15m", "500ms" (time.ParseDuration) or as
// a bare integer number of seconds.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d as time.Duration does ("1m0s").
func (d Duration) String() string { return time.Duration(d).String() }

// ParseDuration parses "60s", "1h30m", "500ms" or a bare integer number of seconds ("60").
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if isInteger(s) {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n > math.MaxInt64/int64(time.Second) || n < math.MinInt64/int64(time.Second) {
			return 0, fmt.Errorf("invalid duration %q: out of range", s)
		}
		return Duration(time.Duration(n) * time.Second), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: want a number and a unit such as 60s, 15m or 500ms", s)
	}
	return Duration(d), nil
}

// isInteger reports whether s is an optionally signed run of decimal digits.
func isInteger(s string) bool {
	s = strings.TrimLeft(s, "+-")
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// UnmarshalYAML decodes a duration scalar.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return nodeError(n, "want a duration such as 60s or 15m")
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return nodeError(n, err.Error())
	}
	*d = v
	return nil
}

// Size is a number of bytes, written in YAML as a bare integer or with a unit: "10GB", "64KiB",
// "1.5 MB". Units are case-insensitive: B, KB, MB, GB, TB (powers of 1000) and KiB, MiB, GiB, TiB
// (powers of 1024).
type Size int64

// Byte-size units.
const (
	B   Size = 1
	KB  Size = 1000 * B
	MB  Size = 1000 * KB
	GB  Size = 1000 * MB
	TB  Size = 1000 * GB
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
	TiB Size = 1 << 40
)

// sizeUnits lists the units from largest to smallest, so String picks the largest exact one.
var sizeUnits = []struct {
	name string
	size Size
}{
	{"TiB", TiB}, {"TB", TB}, {"GiB", GiB}, {"GB", GB}, {"MiB", MiB}, {"MB", MB}, {"KiB", KiB}, {"KB", KB},
}

// String formats s with the largest unit that divides it exactly ("10GB", "64KiB", "1500B"), a
// form ParseSize reads back to the same value.
func (s Size) String() string {
	if s != 0 {
		for _, u := range sizeUnits {
			if s%u.size == 0 {
				return strconv.FormatInt(int64(s/u.size), 10) + u.name
			}
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}

// Human formats s for people in the decimal units bandwidth is sold in, rounded down to one
// decimal: "999 B", "1.2 GB", "10 GB". Rounding down keeps a figure below a limit shown below it.
func (s Size) Human() string {
	for _, u := range []struct {
		name string
		size Size
	}{{"TB", TB}, {"GB", GB}, {"MB", MB}, {"KB", KB}} {
		if s >= u.size {
			tenths := int64(s / (u.size / 10))
			if tenths%10 == 0 {
				return fmt.Sprintf("%d %s", tenths/10, u.name)
			}
			return fmt.Sprintf("%d.%d %s", tenths/10, tenths%10, u.name)
		}
	}
	return fmt.Sprintf("%d B", int64(s))
}

// ParseSize parses a byte size: digits with an optional fraction, optional space, optional unit.
// Negative sizes, fractions of a byte, overflow and unknown units are errors.
func ParseSize(s string) (Size, error) {
	n, err := parseSize(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %w", s, err)
	}
	return n, nil
}

func parseSize(s string) (Size, error) {
	if strings.HasPrefix(s, "-") {
		return 0, errors.New("must not be negative")
	}
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(s)
	}
	num, unit := s[:i], strings.TrimSpace(s[i:])
	mult, ok := unitSize(unit)
	if !ok {
		return 0, fmt.Errorf("unknown unit %q (want B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", unit)
	}
	r, ok := new(big.Rat).SetString(num)
	if num == "" || !ok {
		return 0, errors.New("want a number of bytes such as 512, 64KiB or 10GB")
	}
	r.Mul(r, new(big.Rat).SetInt64(int64(mult)))
	switch {
	case !r.IsInt():
		return 0, errors.New("not a whole number of bytes")
	case !r.Num().IsInt64():
		return 0, errors.New("too large")
	}
	return Size(r.Num().Int64()), nil
}

// unitSize returns the size of a unit name, case-insensitively; no unit means bytes.
func unitSize(unit string) (Size, bool) {
	if unit == "" || strings.EqualFold(unit, "B") {
		return B, true
	}
	for _, u := range sizeUnits {
		if strings.EqualFold(unit, u.name) {
			return u.size, true
		}
	}
	return 0, false
}

// UnmarshalYAML decodes a size scalar.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return nodeError(n, "want a size such as 512, 64KiB or 10GB")
	}
	v, err := ParseSize(n.Value)
	if err != nil {
		return nodeError(n, err.Error())
	}
	*s = v
	return nil
}
