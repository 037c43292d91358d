package domain

import (
	"strconv"
	"strings"
)

// NormalizeRegion reads an ISO 3166-2 subdivision code ("US-CA": a country code, a separator and one
// to three letters or digits) and returns it upper-case with a dash. It also takes "_" as the
// separator, because a dash ends a parameter inside a proxy username ("-region-us_ca").
func NormalizeRegion(v string) (string, bool) {
	if len(v) < 4 || len(v) > 6 || !isAlpha(v[0]) || !isAlpha(v[1]) || v[2] != '-' && v[2] != '_' {
		return "", false
	}
	for i := 3; i < len(v); i++ {
		if !isAlpha(v[i]) && !isDigit(v[i]) {
			return "", false
		}
	}
	return strings.ToUpper(v[:2]) + "-" + strings.ToUpper(v[3:]), true
}

// NormalizeCity reads a city slug ("los_angeles": 1 to 64 letters, digits and _) and returns it
// lower-case.
func NormalizeCity(v string) (string, bool) {
	if v == "" || len(v) > 64 {
		return "", false
	}
	for i := range len(v) {
		if !isAlpha(v[i]) && !isDigit(v[i]) && v[i] != '_' {
			return "", false
		}
	}
	return strings.ToLower(v), true
}

// ParseASN reads an autonomous system number, bare ("64500") or prefixed ("AS64500", any case).
func ParseASN(v string) (uint32, bool) {
	if len(v) > 2 && (v[0]|0x20) == 'a' && (v[1]|0x20) == 's' {
		v = v[2:]
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || n == 0 {
		return 0, false
	}
	return uint32(n), true
}

func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
