package config

import "testing"

// FuzzParseSize checks sizes: parse or fail, never negative.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"10GB", "500MiB", "0", "1.5 TB", "-1", "9999999999999999999999PB", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := ParseSize(s); err == nil && n < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
	})
}
